"""The one way ibtui checks a path, creates a file and says a name in a message.

- `check_input` / `check_output`: every path ibtui opens goes through one of them first, so an empty path, a
  folder, a FIFO or device, an over-long name, a denied folder or an input named as an output is one sentence
  (an `IbtuiError` from the caller's error class), never a traceback or a blocked read.
- `create_temp` / `atomic_write`: a temporary file is created exclusively (O_EXCL|O_NOFOLLOW, a unique name in
  the target's folder, so never through a link and never shared by two writers), then renamed over the target.
- `WriterLock`: one writer a target (an exclusive flock on `.NAME.lock` beside it, released when the process
  ends, however it ends), and `process_start` so a PID reused by another process is not taken for the writer.
- `printable`: control characters (terminal escapes, NUL, line separators) escaped in every message.
"""
from __future__ import annotations

import os
import secrets
import stat
import unicodedata
from pathlib import Path

from ibtui.errors import ExportError, IbtuiError

NAME_MAX = 255  # bytes in one path component on the file systems ibtui runs on (ext4, xfs, btrfs, tmpfs, apfs)


def printable(text: object) -> str:
    """`text` with control and separator characters (ESC, NUL, U+2028, bidi overrides…) written as escapes."""
    out = []
    for ch in str(text):
        if ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii") if ord(ch) < 0x10000 or ch.isprintable()
                       else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _show(path: object) -> str:
    return printable(os.fsdecode(path) if isinstance(path, (bytes, os.PathLike)) else path)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _check_name(path: Path, what: str, error: type[IbtuiError]) -> None:
    text = os.fspath(path)
    if not text.strip():
        raise error(f"{what} is empty; give a file path.")
    if "\x00" in text:
        raise error(f"{what} {_show(path)} holds a NUL character; give a file path without one.")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise error(f"{what} {_show(text)[:60]}…: the name {_show(part)[:30]}… is {len(os.fsencode(part))} bytes, "
                        f"over the {NAME_MAX}-byte limit of a file name; use a shorter name.")


def check_input(path: str | Path, what: str, error: type[IbtuiError] = IbtuiError) -> os.stat_result:
    """The stat of a plain, readable file at `path`, or `error` (one sentence) saying why not. Never opens the
    file, so a FIFO or device is refused without blocking."""
    path = Path(path) if not isinstance(path, Path) else path
    _check_name(path, what, error)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {_show(path)}: no such file; check the path.") from None
    except PermissionError:
        raise error(f"{what} {_show(path)}: permission denied (on the file or a folder above it); make it readable "
                    f"or copy it somewhere readable.") from None
    except OSError as exc:
        raise error(f"{what} {_show(path)}: cannot read it ({exc.strerror or exc}); check the path.") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {_show(path)} is {_kind(st.st_mode)}, not a file ibtui can read; give a plain file.")
    if not os.access(path, os.R_OK):
        raise error(f"{what} {_show(path)}: permission denied; make it readable or copy it somewhere readable.")
    return st


def same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.abspath(a) == os.path.abspath(b)


def check_output(path: str | Path, what: str, error: type[IbtuiError] = ExportError, *,
                 inputs: tuple = (), folder_ok: bool = False) -> Path:
    """`path` as a Path if ibtui may create or replace a file there, else `error` (one sentence): not empty, not
    a folder (unless `folder_ok`), a device or FIFO, not an input of the run (scenario, data), and in a folder
    that exists and takes new files. Whether an existing file may be replaced is the caller's rule."""
    path = Path(path) if not isinstance(path, Path) else path
    _check_name(path, what, error)
    text = os.fspath(path)
    for given in inputs:
        if given is not None and (same_file(path, given) if os.path.exists(path) else
                                  os.path.abspath(path) == os.path.abspath(given)):
            raise error(f"{what} {_show(path)} is an input of this run ({_show(given)}), and an input is never "
                        f"written over; pick another path.")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except PermissionError:
        raise error(f"{what} {_show(path)}: permission denied (on a folder above it); pick a folder you may write "
                    f"in.") from None
    except OSError as exc:
        raise error(f"{what} {_show(path)}: cannot use it ({exc.strerror or exc}); pick another path.") from None
    if st is not None and not stat.S_ISREG(st.st_mode) and not (folder_ok and stat.S_ISDIR(st.st_mode)):
        raise error(f"{what} {_show(path)} is {_kind(st.st_mode)}, so ibtui cannot write its file there; "
                    f"pick another path.")
    if (text.endswith(os.sep) or path.name in ("", ".", "..") or text in (".", "..")) and not folder_ok:
        raise error(f"{what} {_show(path)} names a folder, not a file; give a file name.")
    folder = path if st is not None and stat.S_ISDIR(st.st_mode) else path.parent
    try:
        fst = os.stat(folder)
    except FileNotFoundError:
        raise error(f"{what} {_show(path)}: the folder {_show(folder)} does not exist; create it or pick another "
                    f"path.") from None
    except OSError as exc:
        raise error(f"{what} {_show(path)}: cannot reach the folder {_show(folder)} ({exc.strerror or exc}); pick "
                    f"another path.") from None
    if not stat.S_ISDIR(fst.st_mode):
        raise error(f"{what} {_show(path)}: {_show(folder)} is not a folder; pick another path.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"{what} {_show(path)}: permission denied in the folder {_show(folder)}; pick a folder you may "
                    f"write in.")
    return path


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def create_temp(path: str | Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """(fd, name) of a new, empty file in `path`'s folder under a unique hidden name, created exclusively: never
    an existing file, never through a symlink, never another writer's."""
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name[:200]}.{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` at once: a temporary file (create_temp), synced, then renamed over it. On any
    failure the target is as it was and the temporary file is gone."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = create_temp(path)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AtomicFile:
    """`with AtomicFile(path) as f:` a binary file object that replaces `path` only when the block ends without an
    error (figures, merged exports): an interrupted write never leaves a truncated target."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self):
        fd, self.tmp = create_temp(self.path)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                self.file.flush()
                os.fsync(self.file.fileno())
        finally:
            self.file.close()
            if kind is None:
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink(missing_ok=True)


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), None where unknown: with the PID it names
    one process, so a PID reused by another process is not mistaken for it."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
        return text[text.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def lock_path(target: str | Path) -> Path:
    p = Path(target)
    return p.with_name(f".{p.name[:240]}.lock")


class WriterLock:
    """One writer a target: an exclusive, non-blocking flock on `.NAME.lock` beside it. A second writer gets
    `ExportError`; the kernel releases the lock when the holder exits (even killed), so none goes stale."""

    def __init__(self, target: str | Path, what: str = "--export"):
        import fcntl

        self.path = lock_path(target)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                         0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ExportError(f"{what} {_show(target)}: another ibtui is writing it right now; wait for that run "
                                  f"to end or pick another path.") from None
            try:  # the file we locked must still be the one at that name (a releasing holder unlinks it)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def locked(target: str | Path) -> bool | None:
    """Whether a writer holds `target`'s lock now (True), not (False), or there is no lock file (None)."""
    import fcntl

    try:
        fd = os.open(lock_path(target), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
