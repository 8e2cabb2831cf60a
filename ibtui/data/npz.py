"""A researcher's own data: `data.dataset = "npz"`, `data.path` naming a NumPy .npz archive.

The archive holds `x` (N × d numbers) and `y` (N integer class ids 0…C−1, every class present), and
optionally `x_test` / `y_test` (then the test set is theirs and the scenario's split settings are not
used; otherwise data.split, data.train_fraction and data.split_seed split the N points as for SZT). It is
read with `numpy.load(allow_pickle=False)`: an object array is stored as a pickle, and is refused before
anything in it is unpickled, so no code in a data file ever runs. Every other fault (a missing array,
wrong shapes, NaN or inf, labels out of range, mismatched lengths) is one sentence (DataFormatError,
exit 2). The MLP's input width is d and its output width C (models/factory.py reads both from the data).

Save one from numpy:  numpy.savez("mine.npz", x=x.astype("float32"), y=y.astype("int64")).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ibtui.errors import DataFormatError, DataMissingError

SAVE_HINT = 'save it with numpy.savez(path, x=x.astype("float32"), y=y.astype("int64"))'
NUMBER_KINDS = "fiub"  # float, signed and unsigned integer, bool
LABEL_KINDS = "iu"


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The checked arrays {x, y[, x_test, y_test]} of an own-data file (x as float32, y as int64)."""
    p = Path(path)
    where = f"data.path = {str(p)!r}"
    if not p.is_file():
        raise DataMissingError(f"{where}: no such file{' (it is a folder)' if p.is_dir() else ''}; a relative "
                               f"data.path is taken from the scenario file's folder; {SAVE_HINT}.")
    try:
        archive = np.load(p, allow_pickle=False)
    except ValueError as exc:  # numpy refuses a pickle (or any file that is neither .npy nor .npz) here
        why = "a pickle, which ibtui never loads (loading it could run code)" if "pickle" in str(exc) else "unreadable"
        raise DataFormatError(f"{where} is not a NumPy .npz archive of arrays but {why}; {SAVE_HINT}.") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{where} cannot be read as a .npz archive ({exc}); {SAVE_HINT}.") from None
    if isinstance(archive, np.ndarray):
        raise DataFormatError(f"{where} holds one bare array (.npy), not the named arrays x and y of a .npz; "
                              f"{SAVE_HINT}.")
    with archive:
        names = set(archive.files)
        missing = [k for k in ("x", "y") if k not in names]
        if missing:
            raise DataFormatError(f"{where} has no array {' and no array '.join(missing)} (it holds "
                                  f"{sorted(names) or 'no arrays'}); {SAVE_HINT}.")
        if ("x_test" in names) != ("y_test" in names):
            have, lack = ("x_test", "y_test") if "x_test" in names else ("y_test", "x_test")
            raise DataFormatError(f"{where} has {have} but no {lack}; give both (a test set of your own) or "
                                  f"neither (the scenario's split applies).")
        arrays = {}
        for key in ("x", "y", "x_test", "y_test"):
            if key in names:
                arrays[key] = _array(archive, key, where)
    return check_arrays(arrays, where)


def _array(archive, key: str, where: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:
        if "pickle" in str(exc):  # dtype=object: numpy stops before unpickling
            raise DataFormatError(f"{where}: array {key} is an object array, stored as a pickle, which ibtui never "
                                  f"loads (loading it could run code); save numbers, e.g. "
                                  f"numpy.asarray({key}, dtype=\"float32\").") from None
        raise DataFormatError(f"{where}: array {key} cannot be read ({exc}); {SAVE_HINT}.") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{where}: array {key} cannot be read ({exc}); {SAVE_HINT}.") from None


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
        xf = x.astype(np.float32)
        bad = ~np.isfinite(xf)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise DataFormatError(f"{where}: {xk}[{row}, {col}] is {xf[row, col]} (and {int(bad.sum()) - 1} more "
                                  f"non-finite values); every feature must be a finite number (float32).")
        out[xk], out[yk] = xf, y.astype(np.int64)
    y = out["y"]
    if len(y) < 2:
        raise DataFormatError(f"{where}: x has {len(y)} point; a data set needs at least 2.")
    if y.min() < 0:
        raise DataFormatError(f"{where}: y has label {int(y.min())}; class ids are 0…C−1.")
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
