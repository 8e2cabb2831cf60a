"""A researcher's own data: `data.dataset = "npz"`, `data.path` naming a NumPy .npz archive.

The archive holds `x` (N × d numbers) and `y` (N integer class ids 0…C−1, every class present), and
optionally `x_test` / `y_test` (then the test set is theirs and the scenario's split settings are not
used; otherwise data.split, data.train_fraction and data.split_seed split the N points as for SZT). It is
read member by member with the zip module and NumPy's .npy header reader: each member's header (dtype and
shape) is checked before any of its data is read or inflated (kind, and size against MAX_NPZ_BYTES and the
member's size in the zip), then inflated once into its final array. An object array (a pickle) is refused
from its header, so no code in a data file ever runs. Every other fault (not a zip, a symbolic-link,
encrypted, Deflate64 or corrupt member, a missing array, wrong shapes, NaN or inf, values beyond float32,
labels out of range, mismatched lengths) is one sentence (DataFormatError, exit 2). The MLP's input width is
d and its output width C (models/factory.py reads both from the data).

Save one from numpy:  numpy.savez("mine.npz", x=x.astype("float32"), y=y.astype("int64")).
"""
from __future__ import annotations

import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ibtui.errors import DataFormatError, DataMissingError

SAVE_HINT = 'save it with numpy.savez(path, x=x.astype("float32"), y=y.astype("int64"))'
NUMBER_KINDS = "fiub"  # float, signed and unsigned integer, bool
LABEL_KINDS = "iu"


# The most bytes one array of own data may announce (x as float64: 2 GiB is 268 M values, e.g. 65,000 points
# of 4,096 features): a header beyond it is refused before anything is read or inflated, like the IDX reader's.
MAX_NPZ_BYTES = 2 << 30
NPY_MAGIC, ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")
CHUNK = 16 << 20  # inflated into the final array this many bytes at a time
KEYS = ("x", "y", "x_test", "y_test")
WANTED_KINDS = {"x": NUMBER_KINDS, "y": LABEL_KINDS, "x_test": NUMBER_KINDS, "y_test": LABEL_KINDS}


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The checked arrays {x, y[, x_test, y_test]} of an own-data file (x as float32, y as int64)."""
    from ibtui.files import check_input

    p = Path(path)
    where = f"data.path = {str(p)!r}"
    if not os.path.lexists(p):
        raise DataMissingError(f"{where}: no such file; a relative data.path is taken from the scenario file's "
                               f"folder; {SAVE_HINT}.")
    check_input(p, where, DataMissingError)  # a folder, FIFO, device (/dev/zero) or a link to one: said so
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataMissingError(f"{where}: cannot read it ({exc.strerror or exc}); check the path.") from None
    if head.startswith(NPY_MAGIC):
        raise DataFormatError(f"{where} holds one bare array (.npy), not the named arrays x and y of a .npz; "
                              f"{SAVE_HINT}.")
    if not head.startswith(ZIP_MAGICS):
        raise DataFormatError(f"{where} is not an .npz/.npy file ({_looks_like(head)}); {SAVE_HINT}.")
    try:
        with zipfile.ZipFile(p) as archive:
            members = _members(archive, where)
            missing = [k for k in ("x", "y") if k not in members]
            if missing:
                raise DataFormatError(f"{where} has no array {' and no array '.join(missing)} (it holds "
                                      f"{sorted(members) or 'no arrays'}); {SAVE_HINT}.")
            if ("x_test" in members) != ("y_test" in members):
                have, lack = ("x_test", "y_test") if "x_test" in members else ("y_test", "x_test")
                raise DataFormatError(f"{where} has {have} but no {lack}; give both (a test set of your own) or "
                                      f"neither (the scenario's split applies).")
            headers = {k: _header(archive, members[k], k, where) for k in KEYS if k in members}
            total = sum(math.prod(shape) * dtype.itemsize for shape, _, dtype, _ in headers.values())
            if total > MAX_NPZ_BYTES:
                raise DataFormatError(f"{where}: its arrays announce {total:,} bytes in all, more than the "
                                      f"{MAX_NPZ_BYTES:,} ibtui reads as own data; use a subset of the points.")
            arrays = {k: _array(archive, members[k], k, where, headers[k]) for k in headers}
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, ValueError, RuntimeError,
            NotImplementedError, OverflowError, MemoryError) as exc:
        raise DataFormatError(f"{where} cannot be read as a .npz archive ({_first_line(exc)}); it is corrupt: "
                              f"{SAVE_HINT}.") from None
    return check_arrays(arrays, where)


def _looks_like(head: bytes) -> str:
    """What a file that is not a zip seems to be, from its first bytes (for the message)."""
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]"):
        return "it looks like a pickle, which ibtui never loads: loading it could run code"
    if not head:
        return "it is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = "\x00"
    if all(ch.isprintable() or ch in "\t\n\r" for ch in text.replace("\x00", "")) and text.strip("\x00"):
        return "it starts like text"  # (NULs too: /proc/self/environ separates its lines with them)
    return "it is another kind of binary file"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else type(exc).__name__).rstrip(".")


def _members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's x, y, x_test, y_test members (`x.npy` as numpy.savez names them), each checked as a plain,
    unencrypted member in a compression the zip module reads; other members are never read."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name not in KEYS or (name in members and members[name].filename.endswith(".npy")):
            continue
        members[name] = info
    for name, info in members.items():
        kind = (info.external_attr >> 16) & 0o170000
        if kind == stat.S_IFLNK:
            raise DataFormatError(f"{where}: member {info.filename} is a symbolic link, not an array; {SAVE_HINT}.")
        if info.is_dir():
            raise DataFormatError(f"{where}: member {info.filename} is a folder, not an array; {SAVE_HINT}.")
        if info.flag_bits & 0x1:
            raise DataFormatError(f"{where}: member {info.filename} is encrypted; save the arrays unencrypted: "
                                  f"{SAVE_HINT}.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            method = {9: "Deflate64"}.get(info.compress_type, f"method {info.compress_type}")
            raise DataFormatError(f"{where}: member {info.filename} is compressed with {method}, which cannot be read "
                                  f"here; {SAVE_HINT} (or numpy.savez_compressed).")
    return members


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, where: str):
    """(shape, fortran_order, dtype, header bytes) of a member's .npy header, checked before any data is read: a
    number dtype (an object array is a pickle: refused here, never unpickled), and a size that fits both
    MAX_NPZ_BYTES and the member's size in the zip."""
    fmt = np.lib.format
    with archive.open(info) as f:
        try:
            version = fmt.read_magic(f)
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = reader(f, max_header_size=10_000)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise DataFormatError(f"{where}: member {info.filename} is not a NumPy array ({_first_line(exc)}); "
                                  f"{SAVE_HINT}.") from None
        header = f.tell()
    if dtype.hasobject:
        raise DataFormatError(f"{where}: array {key} is an object array, stored as a pickle, which ibtui never "
                              f"loads (loading it could run code); save numbers, e.g. "
                              f"numpy.asarray({key}, dtype=\"float32\").")
    if dtype.kind not in WANTED_KINDS[key] or dtype.fields is not None or dtype.subdtype is not None:
        want = ", not numbers; save it as float32" if key.startswith("x") else \
            "; it must hold integer class ids 0…C−1 (y.astype(\"int64\"))"
        raise DataFormatError(f"{where}: {key} has dtype {_dtype_name(dtype)}{want}.")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_NPZ_BYTES:
        raise DataFormatError(f"{where}: {key} announces shape {shape} of {dtype} ({nbytes:,} bytes), more than the "
                              f"{MAX_NPZ_BYTES:,} ibtui reads as own data; use a subset of the points.")
    if info.file_size != header + nbytes:
        raise DataFormatError(f"{where}: member {info.filename} holds {info.file_size - header:,} data bytes but its "
                              f"header announces {nbytes:,} (shape {shape} of {dtype}); it is truncated or corrupt.")
    return shape, fortran, dtype, header


def _dtype_name(dtype: np.dtype) -> str:
    text = str(dtype)
    return text if len(text) <= 40 else text[:37] + "…"


def _array(archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, where: str, head) -> np.ndarray:
    """A member's data inflated once, straight into its final array (no second copy); the zip's CRC checked."""
    shape, fortran, dtype, header = head
    out = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(out.reshape(-1, order="A").view(np.uint8))  # the array's own bytes
    with archive.open(info) as f:
        f.read(header)
        done = 0
        while done < len(view):
            n = f.readinto(view[done:done + CHUNK])
            if not n:
                raise DataFormatError(f"{where}: member {info.filename} ends after {done:,} of its {len(view):,} "
                                      f"data bytes; it is truncated or corrupt.")
            done += n
        if f.read(1):  # reading to the end also checks the member's CRC (zipfile raises BadZipFile)
            raise DataFormatError(f"{where}: member {info.filename} holds more data than its header announces; it "
                                  f"is corrupt.")
    return out


def check_arrays(arrays: dict[str, np.ndarray], where: str = "data.path") -> dict[str, np.ndarray]:
    """One sentence for the first fault; else x (and x_test) as float32 [N, d], y (and y_test) as int64 [N]."""
    out = {}
    d = None
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if xk not in arrays:
            continue
        x, y = arrays[xk], arrays[yk]
        if x.dtype.kind not in NUMBER_KINDS:
            raise DataFormatError(f"{where}: {xk} has dtype {x.dtype}, not numbers; save it as float32.")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise DataFormatError(f"{where}: {xk} has shape {x.shape}; it must be N × d (one row a point, "
                                  f"d ≥ 1 features), e.g. x.reshape(len(x), -1).")
        if d is not None and x.shape[1] != d:
            raise DataFormatError(f"{where}: {xk} has {x.shape[1]} features a row but x has {d}; they must match.")
        d = x.shape[1]
        if y.dtype.kind not in LABEL_KINDS:
            raise DataFormatError(f"{where}: {yk} has dtype {y.dtype}; it must hold integer class ids 0…C−1 "
                                  f"(y.astype(\"int64\")).")
        if y.ndim != 1:
            raise DataFormatError(f"{where}: {yk} has shape {y.shape}; it must be one class id a point (shape "
                                  f"(N,)), not one-hot: y = onehot.argmax(1).")
        if len(y) != len(x):
            raise DataFormatError(f"{where}: {xk} has {len(x)} rows but {yk} has {len(y)} labels; they must match.")
        with np.errstate(over="ignore", invalid="ignore"):  # a float64 beyond float32: said below, no warning
            xf = x.astype(np.float32)
        bad = ~np.isfinite(xf)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            if np.isfinite(x[row, col]):
                raise DataFormatError(f"{where}: {xk}[{row}, {col}] is {x[row, col]:g}, beyond float32's range "
                                      f"(±{np.finfo(np.float32).max:.3g}), in which the engine computes; scale the "
                                      f"features (e.g. standardise them).")
            raise DataFormatError(f"{where}: {xk}[{row}, {col}] is {xf[row, col]} (and {int(bad.sum()) - 1} more "
                                  f"non-finite values); every feature must be a finite number (float32).")
        if len(y) and (int(y.min()) < 0 or int(y.max()) > np.iinfo(np.int64).max):  # as themselves, not wrapped
            bad_label = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise DataFormatError(f"{where}: {yk} has label {bad_label}; class ids are 0…C−1.")
        out[xk], out[yk] = xf, y.astype(np.int64)
    y = out["y"]
    if len(y) < 2:
        raise DataFormatError(f"{where}: x has {len(y)} point; a data set needs at least 2.")
    n_classes = int(y.max()) + 1
    present = np.unique(y)
    if len(present) != n_classes:
        gap = int(np.setdiff1d(np.arange(min(n_classes, len(present) + 1)), present)[0])
        raise DataFormatError(f"{where}: y has labels up to {n_classes - 1} but no point of class {gap}; class ids "
                              f"must be 0…C−1 with every class present (renumber them, e.g. with "
                              f"numpy.unique(y, return_inverse=True)[1]).")
    if n_classes < 2:
        raise DataFormatError(f"{where}: y holds class 0 only; a classifier needs at least two classes.")
    if "y_test" in out:
        yt = out["y_test"]
        if len(yt) and (yt.min() < 0 or yt.max() >= n_classes):
            bad_label = int(yt.min()) if yt.min() < 0 else int(yt.max())
            raise DataFormatError(f"{where}: y_test has label {bad_label}, outside the classes 0…{n_classes - 1} of "
                                  f"y; test labels must be classes the training labels have.")
    return out


def load_npz(sc, seeds: list[int], device):
    """The own-data set on `device`: the archive's own test set when it has one, else the scenario's split."""
    from ibtui.data.dataset import Dataset, Split, make_split

    d = sc.data
    arrays = read_npz(d.path)
    x, y = arrays["x"], arrays["y"]
    n_classes = int(y.max()) + 1
    if "x_test" in arrays:
        n, m = len(x), len(arrays["x_test"])
        x, y = np.concatenate([x, arrays["x_test"]]), np.concatenate([y, arrays["y_test"]])
        train = np.zeros((len(seeds), n + m), dtype=bool)
        train[:, :n] = True
        split = Split(train=train, test=~train)
        how = f"{n} training and {m} test points (the file's own test set; data.split is not used)"
    else:
        split = make_split(len(x), seeds, d.split, d.train_fraction, d.split_seed, d.split_per_seed)
        how = f"{len(x)} points split by data.split = {d.split!r}, train_fraction {d.train_fraction:g}"
        if int(split.train[0].sum()) == 0:
            raise DataFormatError(f"data.train_fraction = {d.train_fraction:g} leaves no training points of "
                                  f"{len(x)} in data.path = {d.path!r}; raise it.")
    if sc.model.fixed_readout and n_classes != 2:
        raise DataFormatError(f"model.fixed_readout needs two classes, but y in data.path = {d.path!r} has "
                              f"{n_classes}; set model.fixed_readout = false.")
    _, ids = np.unique(x, axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    distinct = int(ids.max()) + 1 == len(x)
    notes = (f"own data {Path(d.path).name}: {how}, {x.shape[1]} features, {n_classes} classes"
             + ("" if distinct else "; inputs repeat, so binning computes H(T|X)"),)
    return Dataset.from_arrays("npz", x, y, split, device, distinct_inputs=distinct, notes=notes,
                               input_ids=None if distinct else ids, n_classes=n_classes)
