"""Small C kernels built once per machine with the system's C compiler and loaded with ctypes; None where no
compiler works, so that callers fall back to PyTorch.

A library is cached under $XDG_CACHE_HOME/ibtui (else ~/.cache/ibtui; where that cannot be written, a folder of
the temporary directory owned by the user alone), named by a hash of the source, the compiler and the flags, so a
changed source or compiler builds a new one and nothing else is ever overwritten. IBTUI_NATIVE=0 turns every
kernel off (PyTorch alone, for comparison); CC names the compiler (default: cc, gcc, clang).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

# What a run's notes say when a kernel could not be built (its caller then runs PyTorch's operations).
NO_COMPILER = "no working C compiler (cc, gcc or clang; or IBTUI_NATIVE=0)"


def enabled() -> bool:
    return os.environ.get("IBTUI_NATIVE", "1").strip() != "0"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ibtui"


def _folders():
    """Where a library may be kept: the user's cache, else a folder of the temporary directory that only
    this user owns and can write (a read-only home on a cluster, say)."""
    yield cache_dir()
    uid = getattr(os, "getuid", lambda: None)()
    if uid is not None:
        folder = Path(tempfile.gettempdir()) / f"ibtui-{uid}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.stat()
        except OSError:
            return
        if info.st_uid == uid and not info.st_mode & 0o022:
            yield folder


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


def _build(cc: str, source: str, flags: Sequence[str], target: Path) -> bool:
    """Compile into a temporary file beside `target`, then rename it into place (atomic: a process that
    builds the same library at the same time replaces it with an identical file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    src = Path(tmp).with_suffix(".c")
    try:
        src.write_text(source)
        done = subprocess.run([cc, *flags, "-std=c11", "-fPIC", "-shared", str(src), "-o", tmp],
                              capture_output=True, timeout=120)
        if done.returncode != 0:
            return False
        os.replace(tmp, target)
        return True
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        for leftover in (Path(tmp), src):
            leftover.unlink(missing_ok=True)


def load(name: str, source: str, flag_sets: Sequence[Sequence[str]]) -> ctypes.CDLL | None:
    """The library built from C `source` with the first of `flag_sets` the compiler accepts (-march=native is
    not known to every compiler), cached as NAME-<hash>.so; None without a working compiler or with
    IBTUI_NATIVE=0."""
    if not enabled():
        return None
    cc = compiler()
    if cc is None:
        return None
    version = _version(cc)
    for folder in _folders():
        for flags in flag_sets:
            key = hashlib.sha256("\0".join([source, cc, version, platform.machine(), *flags]).encode())
            target = folder / f"{name}-{key.hexdigest()[:16]}.so"
            try:
                if target.exists() or _build(cc, source, flags, target):
                    return ctypes.CDLL(str(target))
            except OSError:  # an unwritable folder or a library that does not load
                continue
    return None


def library(package: str, filename: str, flag_sets: Sequence[Sequence[str]],
            bind: Callable[[ctypes.CDLL], ctypes.CDLL]) -> ctypes.CDLL | None:
    """The kernel in C file `filename` of `package`, built by `load` (cached under the file's stem) and given its
    signatures by `bind`; None where `load` gives None."""
    source = resources.files(package).joinpath(filename).read_text()
    lib = load(Path(filename).stem, source, flag_sets)
    return None if lib is None else bind(lib)
