"""ibtui/files.py: the one path check, the one way to create a file, the writer lock, escaped messages (issue 22)."""
from __future__ import annotations

import os
import pickle
import stat

import pytest

from ibtui.errors import ExportError, IbtuiError
from ibtui.files import (AtomicFile, WriterLock, atomic_write, check_input, check_output, create_temp, locked,
                         printable, process_start)


def as_nobody(fn):
    """fn() in a forked child that dropped root (uid nobody): permission cases run even as root (CI). Returns
    what fn returned or the exception it raised."""
    if os.getuid() != 0:
        return _call(fn)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            out = _call(fn)
            try:
                data = pickle.dumps(out)
            except Exception:
                data = pickle.dumps(RuntimeError(repr(out)))
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(data)


def _call(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - handed back to the parent
        return exc


def test_printable_escapes_controls_and_keeps_text():
    assert printable("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert printable("x\x00y\u2028z\u202e") == "x\\x00y\\u2028z\\u202e"
    assert printable("σ² = 1e-3 … ok") == "σ² = 1e-3 … ok"


@pytest.mark.parametrize("name", ["", ".", "/", "..", "sub/"])
def test_output_that_names_a_folder_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(ExportError, match="folder|empty"):
        check_output(name, "--export")


def test_output_kinds_refused(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, says in [(fifo, "FIFO"), ("/dev/zero", "device"), (tmp_path / ("x" * 300 + ".csv"), "255-byte"),
                         (tmp_path / "nope" / "a.csv", "does not exist"), (tmp_path, "folder")]:
        with pytest.raises(ExportError, match=says):
            check_output(target, "--export")
    sc = tmp_path / "sc.toml"
    sc.write_text("x")
    with pytest.raises(ExportError, match="input of this run"):
        check_output(sc, "--export", inputs=(sc,))
    assert check_output(tmp_path / "new.csv", "--export") == tmp_path / "new.csv"


def test_input_kinds_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block forever: check_input only stats
    for target, says in [(fifo, "FIFO"), ("/dev/zero", "device"), (tmp_path, "folder"),
                         (tmp_path / "missing", "no such file"), (tmp_path / ("y" * 300), "255-byte")]:
        with pytest.raises(IbtuiError, match=says):
            check_input(target, "scenario")


def test_permission_denied_is_a_sentence(tmp_path):
    locked_dir = tmp_path / "locked"
    locked_dir.mkdir()
    (locked_dir / "sc.toml").write_text("x")
    locked_dir.chmod(0o700)
    os.chmod(tmp_path, 0o755)
    got = as_nobody(lambda: check_input(locked_dir / "sc.toml", "scenario"))
    assert isinstance(got, IbtuiError) and "permission denied" in str(got)
    got = as_nobody(lambda: check_output(locked_dir / "out.csv", "--export"))
    assert isinstance(got, ExportError) and ("permission denied" in str(got) or "cannot reach" in str(got))


def test_temporary_files_never_follow_a_link(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    target = tmp_path / "out.csv"
    for i in range(20):  # links at plausible names: none is ever written through
        (tmp_path / f".out.csv.{i:012x}.tmp").symlink_to(precious)
    atomic_write(target, "new")
    assert precious.read_text() == "keep" and target.read_text() == "new"
    fd, tmp = create_temp(target)
    os.close(fd)
    assert stat.S_ISREG(os.lstat(tmp).st_mode) and tmp.parent == tmp_path and tmp.name.startswith(".out.csv.")
    link = tmp_path / "link.csv"
    link.symlink_to(precious)
    atomic_write(link, "replaced the link")  # the rename replaces the link itself, never the file it points to
    assert precious.read_text() == "keep" and not link.is_symlink()


def test_atomic_file_interrupted_leaves_the_old_target(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with AtomicFile(target) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    with AtomicFile(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_writer_lock_is_exclusive_and_released(tmp_path):
    target = tmp_path / "run.csv"
    assert locked(target) is None
    first = WriterLock(target)
    assert locked(target) is True
    with pytest.raises(ExportError, match="another ibtui is writing"):
        WriterLock(target)
    first.release()
    assert locked(target) is None
    WriterLock(target).release()


def test_process_start_tells_processes_apart():
    me = process_start(os.getpid())
    if me is None:
        pytest.skip("no /proc here")
    assert me == process_start(os.getpid()) and me != process_start(1)

