"""Small C kernels built once per machine with the system's C compiler and loaded with ctypes; None where no
compiler works, so that callers fall back to PyTorch.

A library is cached under $XDG_CACHE_HOME/ibtui (else ~/.cache/ibtui; where that cannot be written, or is not a
folder of the user's that only the user can write, a folder of the temporary directory owned by the user alone),
named by a hash of the source, the compiler and the flags, so a changed source or compiler builds a new one. The
hash is the same for every user, so a library is loaded only if the user alone could have written it: opened
without following a link, checked on the opened file (owner, no write bit for group or others), loaded through
that open file; anything else is built again, and the run's info says so (`notes`). IBTUI_NATIVE=0 turns every
kernel off (PyTorch alone, for comparison); CC names the compiler (default: cc, gcc, clang).

A kernel is built for this machine's vector unit (-march=native; the C sources pick their vector width and
register blocking from the compiler's predefined macros). IBTUI_CFLAGS replaces that target flag, e.g.
IBTUI_CFLAGS=-march=x86-64-v3 (AVX2) or -march=x86-64 (SSE2), to build and time another instruction set on the
machine at hand; the flags are part of the cached library's name, so each target has its own.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import math
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# What a run's notes say when a kernel could not be built (its caller then runs PyTorch's operations).
NO_COMPILER = "no working C compiler (cc, gcc or clang; or IBTUI_NATIVE=0)"


FALSE_WORDS = ("0", "false", "off", "no")  # IBTUI_NATIVE's usual ways to say no, in any case


def enabled() -> bool:
    return os.environ.get("IBTUI_NATIVE", "1").strip().lower() not in FALSE_WORDS


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ibtui"


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_notes: list[str] = []  # what the run's info says about the cache (a folder or library not trusted, a rebuild)
_held: list[int] = []  # descriptors of loaded libraries, kept open: /proc/self/fd/N names one file for good


def notes() -> tuple[str, ...]:
    """Notes for the run's info: cache folders or libraries passed over, and why."""
    return tuple(_notes)


def _note(text: str) -> None:
    if text not in _notes:
        _notes.append(text)


def _mine(st: os.stat_result) -> bool:
    """Whether only this user (or root) could have written it: owned by the user, no write bit for group or others."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _open_folder(folder: Path) -> int | None:
    """A descriptor of `folder` (created 0700 if absent) if it is a real folder, not a link, that only this user
    can write; else None. Everything after is opened relative to it, so a folder swapped in later is never used."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
    except OSError:
        return None
    if _mine(os.fstat(fd)):
        return fd
    os.close(fd)
    return None


def _folders():
    """(path, descriptor) of each folder a library may be kept in: the user's cache, else a folder of the
    temporary directory, each only if this user alone can write it (another user's library planted there would
    run as this user), with a note when the cache is passed over."""
    if not hasattr(os, "getuid"):
        return
    first = True
    for folder in (cache_dir(), Path(tempfile.gettempdir()) / f"ibtui-{os.getuid()}"):
        fd = _open_folder(folder)
        if fd is None:
            if first:
                _note(f"kernels: the cache folder {folder} is a link, another user's, or writable by others, so "
                      f"nothing in it was loaded; kernels are kept in a private folder of the temporary directory "
                      f"instead")
            first = False
            continue
        try:
            yield folder, fd
        finally:
            os.close(fd)
        first = False


def compiler() -> str | None:
    for name in ([os.environ["CC"]] if os.environ.get("CC") else []) + ["cc", "gcc", "clang"]:
        path = shutil.which(name)
        if path:
            return path
    return None


def _version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(cc: str, source: str, flags: Sequence[str], dfd: int, name: str) -> bool:
    """Compile in a new private folder, copy the result into the checked folder (descriptor `dfd`) under an
    exclusively created temporary name, then rename it to `name` there (atomic: a process that builds the same
    library at the same time replaces it with an identical file)."""
    import secrets

    try:
        work = Path(tempfile.mkdtemp(prefix="ibtui-build-"))
    except OSError:
        return False
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        (work / "k.c").write_text(source)
        done = subprocess.run([cc, *flags, "-std=c11", "-fPIC", "-shared", str(work / "k.c"), "-o",
                               str(work / "k.so")], capture_output=True, timeout=120)
        if done.returncode != 0:
            return False
        data = (work / "k.so").read_bytes()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o755, dir_fd=dfd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        return True
    except (OSError, subprocess.SubprocessError):
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        return False
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _via(fd: int) -> str | None:
    """A path that names the open file `fd` itself (Linux's /proc/self/fd), None where there is none."""
    path = f"/proc/self/fd/{fd}"
    return path if os.path.exists(path) else None


def _open_library(folder: Path, dfd: int, name: str) -> tuple[ctypes.CDLL | None, str]:
    """(library, "") or (None, why): `name` in the checked folder, opened without following a link, loaded only if
    it is a plain file this user alone could have written (checked on the opened file, then loaded through it)."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dfd)
    except FileNotFoundError:
        return None, "absent"
    except OSError as exc:  # a link (ELOOP) or unreadable
        return None, f"{folder / name} is a link or unreadable ({exc.strerror or exc})"
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or not _mine(st):
        os.close(fd)
        return None, f"{folder / name} is not a plain file of yours that only you can write"
    via = _via(fd)
    if via is None:  # no /proc: the path must still name the file checked
        path = folder / name
        try:
            same = os.stat(path, follow_symlinks=False)
        except OSError:
            same = None
        if same is None or (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            return None, f"{path} changed while it was checked"
        via = str(path)
    try:
        lib = ctypes.CDLL(via)
    except OSError as exc:
        os.close(fd)
        return None, f"{folder / name} does not load ({str(exc).splitlines()[0] if str(exc) else exc})"
    _held.append(fd)  # never reused while the library is loaded: the same /proc name never means another file
    return lib, ""


def cached_name(name: str, source: str, cc: str, version: str, flags: Sequence[str]) -> str:
    """NAME-<hash>.so: the hash covers the source, the compiler and its version, the machine and the flags."""
    key = hashlib.sha256("\0".join([source, cc, version, platform.machine(), *flags]).encode())
    return f"{name}-{key.hexdigest()[:16]}.so"


TARGET = "-march=native"  # the target flag of a kernel's first flag set, which IBTUI_CFLAGS replaces


def target_flags(flag_sets: Sequence[Sequence[str]]) -> list[list[str]]:
    """`flag_sets` as given where IBTUI_CFLAGS is unset or blank; else only the sets with TARGET, each with TARGET
    replaced by IBTUI_CFLAGS's words (no quietly portable fallback: the build asked for is the one timed)."""
    custom = os.environ.get("IBTUI_CFLAGS", "").split()
    if not custom:
        return [list(flags) for flags in flag_sets]
    return [[g for f in flags for g in (custom if f == TARGET else [f])] for flags in flag_sets if TARGET in flags]


def load(name: str, source: str, flag_sets: Sequence[Sequence[str]], rebuild: bool = False) -> ctypes.CDLL | None:
    """The library built from C `source` with the first of `flag_sets` the compiler accepts (-march=native is
    not known to every compiler), cached as NAME-<hash>.so in a folder only the user can write (`_folders`); a
    cached library that is not the user's alone, or does not load, is built again (`rebuild`: always). None
    without a working compiler or with IBTUI_NATIVE=0. IBTUI_CFLAGS replaces the target flag (`target_flags`)."""
    if not enabled():
        return None
    cc = compiler()
    if cc is None:
        return None
    version = _version(cc)
    flag_sets = target_flags(flag_sets)
    for folder, dfd in _folders():
        for flags in flag_sets:
            target = cached_name(name, source, cc, version, flags)
            lib, why = (None, "absent") if rebuild else _open_library(folder, dfd, target)
            if lib is not None:
                return lib
            if why != "absent":
                _note(f"kernels: {why}, so it was not loaded; built again")
            if not _build(cc, source, flags, dfd, target):
                continue  # these flags do not compile here: try the next set
            lib, why = _open_library(folder, dfd, target)
            if lib is not None:
                return lib
            _note(f"kernels: {why}, so it was not loaded")
    if os.environ.get("IBTUI_CFLAGS", "").split():
        _note(f"kernels: {name} did not build with IBTUI_CFLAGS={os.environ['IBTUI_CFLAGS'].strip()}; "
              "unset it or give flags this compiler takes")
    return None


def library(package: str, filename: str, flag_sets: Sequence[Sequence[str]],
            bind: Callable[[ctypes.CDLL], ctypes.CDLL]) -> ctypes.CDLL | None:
    """The kernel in C file `filename` of `package`, built by `load` (cached under the file's stem) and given its
    signatures by `bind`; a cached library without them is built again once, then skipped with a note; None where
    `load` gives None."""
    source = resources.files(package).joinpath(filename).read_text()
    for rebuild in (False, True):
        lib = load(Path(filename).stem, source, flag_sets, rebuild=rebuild)
        if lib is None:
            return None
        try:
            return bind(lib)
        except AttributeError as exc:  # a symbol is missing: not the library this source builds
            _note(f"kernels: the cached {Path(filename).stem} library lacks {exc}; "
                  + ("built again" if not rebuild else "PyTorch's operations run instead"))
    return None


# ---------------------------------------------------------------------------------------------------------------
# Which of two paths that compute the same numbers is faster on this machine, for given shapes: timed once (at most
# about CHOICE_BUDGET_S at a run's start) and recorded in CHOICES beside the kernels, so a rule measured on one CPU
# never decides for another (an AVX2 machine ran the compiled step at half PyTorch's speed where an AVX-512 one ran
# it at three times).
CHOICES = "choices.json"
CHOICE_BUDGET_S = 1.0  # seconds of timing for one choice, every path together
_CHOICES_MAX_BYTES = 1 << 20  # a larger record is not read (and is replaced)


@dataclass(frozen=True)
class Choice:
    path: str  # the path taken: the faster one
    seconds: dict  # path -> best seconds of one call
    timed_now: bool  # False: read from the record of an earlier run on this machine

    def describe(self) -> str:
        """e.g. 'compiled 2.10 ms, pytorch 4.31 ms a step (timed now)'."""
        times = ", ".join(f"{name} {s * 1e3:.3g} ms" for name, s in sorted(self.seconds.items(), key=lambda kv: kv[1]))
        return f"{times} (timed {'now' if self.timed_now else 'on this machine earlier'})"


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "Hardware", "CPU part")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_key(package: str, filename: str, flag_sets: Sequence[Sequence[str]]) -> str:
    """A hash of what a kernel's speed depends on besides its shapes: its source, the flag sets, IBTUI_CFLAGS (which
    replaces the target flags) and the compiler."""
    source = resources.files(package).joinpath(filename).read_text()
    parts = [source, *("\0".join(f) for f in flag_sets), os.environ.get("IBTUI_CFLAGS", ""), compiler() or ""]
    return hashlib.sha256("\x01".join(parts).encode()).hexdigest()[:16]


def choice_key(kind: str, parts: dict) -> str:
    """The record's key: the kind of choice, the machine, the CPU and IBTUI_CFLAGS, and the caller's `parts`
    (source_key, shapes, threads…)."""
    whole = {"kind": kind, "machine": platform.machine(), "cpu": cpu_name(),
             "cflags": os.environ.get("IBTUI_CFLAGS", ""), **parts}
    return kind + "-" + hashlib.sha256(json.dumps(whole, sort_keys=True, default=str).encode()).hexdigest()[:24]


def time_paths(paths: dict, budget_s: float = CHOICE_BUDGET_S, rounds: int = 7) -> dict:
    """Best seconds of one call of each of `paths` (name -> callable), interleaved round by round after one
    warm-up call each, stopping after `rounds` rounds or once `budget_s` is spent (where the warm-ups alone spend
    it, their times decide: a slow call is not repeated)."""
    start = time.perf_counter()
    best = {}
    for name, fn in paths.items():
        t0 = time.perf_counter()
        fn()
        best[name] = time.perf_counter() - t0
    if time.perf_counter() - start > budget_s:
        return best
    best = {name: math.inf for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return best


def _record_path() -> Path | None:
    """The record in the first kernel folder only this user can write (`_folders`), None where there is none."""
    for folder, _ in _folders():
        return folder / CHOICES
    return None


def _read_choices(path: Path) -> dict:
    """The record, or {} where it is absent, a link, not the user's alone, too large or not a JSON object."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _mine(st) or st.st_size > _CHOICES_MAX_BYTES:
            return {}
        with os.fdopen(os.dup(fd), "rb") as f:
            data = json.loads(f.read(_CHOICES_MAX_BYTES))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        os.close(fd)


def choose(kind: str, parts: dict, paths: dict, budget_s: float = CHOICE_BUDGET_S) -> Choice:
    """The faster of `paths` (name -> a callable doing one call at the run's shapes) on this machine: read from
    the record under choice_key(kind, parts), else timed (`time_paths`) and recorded (files.atomic_write; a
    record that cannot be written is only a lost cache)."""
    from ibtui.files import atomic_write

    key = choice_key(kind, parts)
    where = _record_path()
    record = _read_choices(where) if where is not None else {}
    saved = record.get(key)
    if (isinstance(saved, dict) and saved.get("path") in paths and isinstance(saved.get("seconds"), dict)
            and all(isinstance(v, (int, float)) for v in saved["seconds"].values())):
        return Choice(saved["path"], dict(saved["seconds"]), timed_now=False)
    seconds = time_paths(paths, budget_s)
    path = min(seconds, key=seconds.get)
    if where is not None:
        record[key] = {"path": path, "seconds": seconds, "parts": {k: str(v) for k, v in parts.items()}}
        try:
            atomic_write(where, json.dumps(record, indent=1, sort_keys=True))
        except OSError:
            pass
    return Choice(path, seconds, timed_now=True)
