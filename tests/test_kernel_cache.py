"""The kernel cache loads only a library the user alone could have written (issue 34, item 1).

The cached name is the same for every user (a hash of the public source, the compiler and the flags), so a
library another user plants at that name must never run: each case plants one whose constructor writes a file,
loads through `ibtui.compiled` in a child process, and checks that the file never appears and that the library
loaded is one ibtui built (its symbol answers)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibtui import compiled

pytestmark = pytest.mark.skipif(compiled.compiler() is None or not hasattr(os, "getuid"),
                                reason="needs a C compiler and POSIX owners")

SOURCE = "int ibtui_answer(void) { return 42; }\n"
EVIL = """#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(getenv("IBTUI_TEST_MARK"), "w");
    if (f) { fputs("ran", f); fclose(f); }
}
int ibtui_answer(void) { return 666; }
"""
EMPTY = "int ibtui_other(void) { return 0; }\n"

CHILD = """
import ctypes, json, sys
from ibtui import compiled
lib = compiled.load("probe", sys.argv[1], [[]])
print(json.dumps({"answer": None if lib is None else lib.ibtui_answer(), "notes": compiled.notes()}))
"""


def _env(tmp_path: Path, cache: Path) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp_path / "tmp"),
               IBTUI_TEST_MARK=str(tmp_path / "planted-ran"))
    env.pop("IBTUI_NATIVE", None)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def _name() -> str:
    cc = compiled.compiler()
    return compiled.cached_name("probe", SOURCE, cc, compiled._version(cc), [])


def _compile(tmp_path: Path, source: str, out: Path) -> None:
    src = tmp_path / f"{out.stem}.c"
    src.write_text(source)
    subprocess.run([compiled.compiler(), "-shared", "-fPIC", str(src), "-o", str(out)], check=True)


def _load(tmp_path: Path, cache: Path, preexec=None) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, SOURCE], env=_env(tmp_path, cache), capture_output=True,
                          text=True, timeout=120, preexec_fn=preexec)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_library_in_a_folder_others_can_write_never_runs(tmp_path):
    cache = tmp_path / "cache"  # XDG_CACHE_HOME on a shared folder: mode 1777, like /tmp
    folder = cache / "ibtui"
    folder.mkdir(parents=True)
    os.chmod(cache, 0o1777)
    os.chmod(folder, 0o1777)
    _compile(tmp_path, EVIL, folder / _name())
    out = _load(tmp_path, cache)
    assert not (tmp_path / "planted-ran").exists()
    assert out["answer"] == 42  # built again, in the private folder of the temporary directory
    assert (tmp_path / "tmp" / f"ibtui-{os.getuid()}" / _name()).is_file()
    assert any("cache folder" in n and str(folder) in n for n in out["notes"])


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="planting as another user needs root")
def test_another_user_plants_the_cache_in_a_shared_folder(tmp_path):
    """The issue's attack end to end: XDG_CACHE_HOME on a folder every user can write (mode 1777, like /tmp);
    another user (a process that dropped to uid 12345) creates ibtui/ there first and plants a library at the
    hashed name. The victim's run never loads it."""
    import shutil
    import tempfile

    shared = Path(tempfile.mkdtemp(prefix="ibtui-shared-", dir="/tmp"))
    try:
        os.chmod(shared, 0o1777)
        evil = shared / "evil.so"
        _compile(tmp_path, EVIL, evil)
        os.chmod(evil, 0o755)
        plant = ["/bin/sh", "-c", 'mkdir -m 755 "$1/ibtui" && cp "$2" "$1/ibtui/$3"', "sh", str(shared), str(evil),
                 _name()]

        def as_other_user():
            os.setgid(12345)
            os.setuid(12345)

        subprocess.run(plant, check=True, preexec_fn=as_other_user, cwd="/")  # the other user, not root
        planted = shared / "ibtui" / _name()
        assert planted.stat().st_uid == 12345
        out = _load(tmp_path, shared)
        assert not (tmp_path / "planted-ran").exists()
        assert out["answer"] == 42
        assert any("cache folder" in n for n in out["notes"])
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.parametrize("how", ["group-writable", "link", "other-owner", "not-a-library"])
def test_a_planted_library_in_the_users_own_folder_never_runs(tmp_path, how):
    cache = tmp_path / "cache"
    folder = cache / "ibtui"
    folder.mkdir(parents=True, mode=0o700)
    target = folder / _name()
    if how == "not-a-library":  # the user's own file, damaged (a full disk during a copy): it does not load
        target.write_bytes(b"\x7fELF" + b"\0" * 60)
    elif how == "link":  # a link at the name to a library elsewhere (even one of the user's)
        _compile(tmp_path, EVIL, tmp_path / "evil.so")
        target.symlink_to(tmp_path / "evil.so")
    else:
        _compile(tmp_path, EVIL, target)
        if how == "group-writable":
            os.chmod(target, 0o775)
        elif os.getuid() == 0:
            os.chown(target, 12345, 12345)  # another user's file (only root can make one here)
        else:
            pytest.skip("making a file owned by another user needs root")
    out = _load(tmp_path, cache)
    assert not (tmp_path / "planted-ran").exists()
    assert out["answer"] == 42  # built again in place: the folder is the user's alone
    assert not target.is_symlink() and target.stat().st_uid == os.getuid()
    assert any("not loaded" in n for n in out["notes"])


def test_a_cached_library_without_its_symbols_is_built_again(tmp_path):
    """A stale or foreign library of the user's own at the name (without the symbol the binding needs), loaded by
    `compiled.library` from a package's C file: built again once, with a note, instead of a traceback."""
    package = tmp_path / "pkg" / "kpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "k.c").write_text(SOURCE)
    cache = tmp_path / "cache"
    folder = cache / "ibtui"
    folder.mkdir(parents=True, mode=0o700)
    cc = compiled.compiler()
    _compile(tmp_path, EMPTY, folder / compiled.cached_name("k", SOURCE, cc, compiled._version(cc), []))
    child = ("import json, sys; sys.path.insert(0, sys.argv[1]); from ibtui import compiled\n"
             "def bind(lib):\n    lib.ibtui_answer.restype = __import__('ctypes').c_int\n    return lib\n"
             "lib = compiled.library('kpkg', 'k.c', [[]], bind)\n"
             "print(json.dumps({'answer': lib.ibtui_answer(), 'notes': compiled.notes()}))")
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path / "pkg")], env=_env(tmp_path, cache),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["answer"] == 42
    assert any("lacks" in n and "built again" in n for n in out["notes"])


def test_the_users_private_cache_is_used_without_a_note(tmp_path):
    cache = tmp_path / "cache"
    out = _load(tmp_path, cache)
    assert out == {"answer": 42, "notes": []}
    st = (cache / "ibtui").stat()
    assert st.st_uid == os.getuid() and not st.st_mode & 0o077  # created 0700
    again = _load(tmp_path, cache)  # the cached file itself, now
    assert again == {"answer": 42, "notes": []}
