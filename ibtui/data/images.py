"""Real image data sets (MNIST, CIFAR-10, CIFAR-100) read from their official files, offline.

Why this module exists: the MNIST and CIFAR experiments of the source papers (Goldfeld et al. 2019's
MNIST CNN; Shwartz-Ziv, Painsky & Tishby 2019's ResNet-32 on CIFAR-10/100) need the real images, and
ibtui must run on machines without a network. So it reads the files users already have, in the
layouts they usually come in:

- MNIST: the four official IDX files (`train-images-idx3-ubyte`, ...), gzipped or not, in the folder
  itself, in `folder/MNIST/raw` (torchvision's layout) or in `folder/mnist`. IDX is parsed with numpy;
  the magic numbers (0x803 images, 0x801 labels) and the sizes are checked.
- CIFAR-10: `cifar-10-batches-py/` (`data_batch_1..5`, `test_batch`, `batches.meta`), either inside
  the folder or the folder itself. CIFAR-100: `cifar-100-python/` (`train`, `test`, `meta`; the
  `fine_labels` are used), same rule. Batches may be subsets of the official ones (a reduced test
  copy is), so sizes come from the files, never from `batches.meta`.

Images become float32 tensors scaled to [0, 1], shaped [N, 1, 28, 28] or [N, 3, 32, 32]; labels
int64. Anything missing or malformed raises `DataMissingError` with a one-sentence message that
names the folder, the files expected and where to get them, so the CLI can print it and exit 2.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ibtui.data.dataset import Dataset
from ibtui.data.sampling import fixed_subset
from ibtui.errors import DataFormatError, DataMissingError
from ibtui.measures.discrete import row_keys, rows_per_chunk
from ibtui.scenario import DATA_SHAPES

ENV_VAR = "IBTUI_DATA"

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_SOURCE = ("the official MNIST page (http://yann.lecun.com/exdb/mnist/) "
                "or torchvision.datasets.MNIST(root, download=True)")
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR100_DIR = "cifar-100-python"
CIFAR100_FILES = ("train", "test")
CIFAR_SOURCE = ("the official CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html, the python "
                "version) or torchvision.datasets.CIFAR{n}(root, download=True)")

IDX_IMAGES_MAGIC = 0x803  # 0x00 0x00, dtype 0x08 (uint8), 3 dimensions
IDX_LABELS_MAGIC = 0x801  # 0x00 0x00, dtype 0x08 (uint8), 1 dimension


@dataclass(frozen=True, eq=False)
class ImageData:
    """A train/test image set in memory.

    x_*: float32 [N, C, H, W] in [0, 1]; y_*: int64 [N]; `source` lists the files read.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    name: str
    source: tuple[Path, ...]
    class_names: tuple[str, ...] = ()

    def subset(self, n: int, seed: int, split: str = "train") -> torch.Tensor:
        """A fixed, seeded subset of n indices into `split` ("train" or "test"), int64 [n], sorted.

        The first n entries of a permutation drawn from torch.Generator().manual_seed(seed), so the
        same (n, seed, split) always gives the same points, on any device, and a subset of size n is
        contained in the subset of size n' > n for the same seed. n ≥ N gives all N indices.
        Used to measure MI on a manageable number of images.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        if n < 1:
            raise ValueError(f"subset size must be at least 1, not {n}")
        total = len(self.y_train if split == "train" else self.y_test)
        keep = fixed_subset(total, n, seed)
        return torch.arange(total) if keep is None else keep


# --------------------------------------------------------------------------------------------
# Locating the data folder


def resolve_data_dir(setting: str | None, cli_value: str | None) -> Path:
    """The data folder: CLI `--data-dir` > scenario setting > environment IBTUI_DATA > error.

    `~` is expanded. A relative data.dir written in a scenario file was already made relative to the
    file's folder when the scenario was loaded (`ibtui.scenario.load_scenario`); any other relative
    path is relative to the working directory. Raises DataMissingError when no source names a folder
    or the folder named does not exist.
    """
    if cli_value:
        raw, origin = cli_value, "--data-dir"
    elif setting:
        raw, origin = setting, "data.dir, set in the scenario or by --data-dir"
    elif os.environ.get(ENV_VAR):
        raw, origin = os.environ[ENV_VAR], f"the environment variable {ENV_VAR}"
    else:
        raise DataMissingError(
            f"No data folder is set: pass --data-dir DIR, set the scenario's data directory, or "
            f"export {ENV_VAR}=DIR, where DIR holds the MNIST IDX files or cifar-10-batches-py/.")
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataMissingError(f"The data folder {path} (from {origin}) does not exist or is not a folder; "
                               f"name the folder that holds the MNIST IDX files or cifar-10-batches-py/.")
    return path


# --------------------------------------------------------------------------------------------
# MNIST


MAX_IDX_BYTES = 1 << 30  # an IDX data set this large is not MNIST-like (MNIST's largest file: 47 MB)
IDX_CHUNK = 16 << 20  # bytes read or inflated at a time into the final array (a file is never held twice)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one IDX file (gzipped if its name ends in .gz) into a uint8 array of its dimensions.

    IDX layout (LeCun's MNIST page): big-endian int32 magic (0x00 0x00, type 0x08 = uint8, ndim),
    then ndim big-endian int32 sizes, then the data. The header's size is checked against the file (a plain
    file's size, a gzip's ISIZE trailer) and MAX_IDX_BYTES before any data is read or inflated.
    """
    from ibtui.files import check_input

    st = check_input(path, "the data file", DataFormatError)
    try:
        gz = path.suffix == ".gz"
        isize = None
        if gz and st.st_size >= 4:
            with open(path, "rb") as f:
                f.seek(-4, os.SEEK_END)
                isize = int.from_bytes(f.read(4), "little")  # the inflated size mod 2**32 (RFC 1952)
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4:
                raise DataFormatError(f"{path} is too short to be an IDX file ({len(head)} bytes).")
            found = int.from_bytes(head, "big")
            if found != magic:
                raise DataFormatError(f"{path} has magic number {found:#x}, expected {magic:#x}; "
                                      f"it is not an MNIST IDX file of that kind.")
            ndim = head[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataFormatError(f"{path} ends inside its header; it is truncated or corrupt.")
            dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
            expected = math.prod(dims)
            header = 4 + 4 * ndim
            if expected > MAX_IDX_BYTES:
                raise DataFormatError(f"{path}: its header announces {expected:,} bytes of data (dimensions {dims}), "
                                      f"more than an MNIST-like file holds ({MAX_IDX_BYTES:,} at most); it is corrupt "
                                      f"or not MNIST: get a good copy from {MNIST_SOURCE}.")
            if (not gz and st.st_size != header + expected) or (isize is not None and isize != (header + expected) % 2**32):
                size = st.st_size - header if not gz else isize - header
                raise DataFormatError(f"{path} holds {size} data bytes but its header announces {expected} "
                                      f"(dimensions {dims}); it is truncated or corrupt.")
            data = np.empty(expected, dtype=np.uint8)  # inflated straight into the final array, a chunk at a time
            view, done = memoryview(data), 0
            while done < expected:
                n = f.readinto(view[done:done + IDX_CHUNK])
                if not n:
                    break
                done += n
            extra = f.read(1)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(f"Cannot read {path}: {exc}.") from exc
    if done != expected or extra:
        raise DataFormatError(f"{path} holds {done + len(extra)}{'+' if extra else ''} data bytes but its header "
                              f"announces {expected} (dimensions {dims}); it is truncated or corrupt.")
    if ndim and dims[0] == 0:
        raise DataFormatError(f"{path} holds 0 items; get a good copy from {MNIST_SOURCE}.")
    return data.reshape(dims)


def _find_mnist(folder: Path) -> list[Path]:
    """The four MNIST files in the first candidate folder that has all of them (plain before .gz)."""
    for cand in (folder, folder / "MNIST" / "raw", folder / "mnist"):
        found = []
        for name in MNIST_FILES:
            hit = next((p for p in (cand / name, cand / f"{name}.gz") if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    raise DataMissingError(
        f"No complete MNIST set in {folder} (searched it, MNIST/raw/ and mnist/ under it): expected "
        f"{', '.join(MNIST_FILES)} (each may end in .gz), from {MNIST_SOURCE}.")


def load_mnist(folder: Path) -> ImageData:
    """MNIST from its four IDX files: x float32 [N, 1, 28, 28] in [0, 1] (pixel/255), y int64 [N]."""
    folder = Path(folder)
    paths = _find_mnist(folder)
    xtr, ytr, xte, yte = (read_idx(p, m) for p, m in zip(paths, (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) * 2))
    for x, y, px, py in ((xtr, ytr, paths[0], paths[1]), (xte, yte, paths[2], paths[3])):
        if x.shape[1:] != (28, 28) or x.shape[0] != y.shape[0]:
            raise DataFormatError(f"{px} holds images of shape {x.shape} but {py} holds {y.shape[0]} labels; "
                                  f"expected N images of 28×28 and N labels.")
        if y.size and y.max() > 9:
            raise DataFormatError(f"{py} has label {int(y.max())}; MNIST labels are 0..9.")
    x = _to_unit([xtr[:, None], xte[:, None]])  # one tensor, train then test: the engine's x needs no second copy
    return ImageData(
        x_train=x[:len(xtr)], y_train=torch.from_numpy(ytr.astype(np.int64)),
        x_test=x[len(xtr):], y_test=torch.from_numpy(yte.astype(np.int64)),
        n_classes=10, name="mnist", source=tuple(paths), class_names=tuple(str(i) for i in range(10)))


def _to_unit(parts: np.ndarray | list[np.ndarray]) -> torch.Tensor:
    """uint8 → float32 in [0, 1] (x/255); several arrays of the same image shape are stacked along the first axis
    into one tensor, converted a chunk at a time (no float copy beside the result)."""
    parts = [parts] if isinstance(parts, np.ndarray) else parts
    out = np.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=np.float32)
    row = 0
    for p in parts:
        step = max(1, IDX_CHUNK // max(1, p[0].size if len(p) else 1))
        for i in range(0, len(p), step):
            chunk = out[row + i:row + min(i + step, len(p))]
            np.divide(p[i:i + step], np.float32(255.0), out=chunk, dtype=np.float32)  # as x.astype(f32) / 255
        row += len(p)
    return torch.from_numpy(out)


# --------------------------------------------------------------------------------------------
# CIFAR


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch holds: dicts, lists, bytes/str, numbers and numpy arrays.

    (Bytes pickled by Python 3 at protocol 2 arrive as `_codecs.encode(str, "latin1")`: that one global is
    answered by `_latin1_bytes`, which only turns a str into bytes.)

    A pickle can name any importable callable and have it called; this one resolves no global except numpy's
    array reconstruction (so a crafted file cannot run code), and anything else makes it "not a CIFAR batch".
    """

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5 arrays
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):  # bytes in a protocol-2 pickle written by Python 3
            return _latin1_bytes
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which no CIFAR batch holds")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstruct function, whatever its module
        if name == "_frombuffer":
            return np.zeros(1).__reduce_ex__(5)[0]  # numpy's array-from-bytes function (protocol 5)
        return getattr(np, name)


def _latin1_bytes(text: object, encoding: str = "utf-8") -> bytes:
    """`_codecs.encode` as Python 3 pickles bytes at protocol 2 (str, "latin1") → bytes, and nothing more."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("it encodes something other than bytes")
    return text.encode("latin1")


def _unpickle(path: Path) -> dict:
    """A CIFAR python pickle as a dict with str keys (the files have Python-2 str keys → bytes), read without
    executing code (`_CifarUnpickler`)."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataFormatError(f"Cannot read the CIFAR pickle {path}: {exc}.") from exc
    except Exception as exc:  # any malformed pickle (truncated, crafted, another format) is simply not a batch
        raise DataFormatError(f"{path} is not a CIFAR batch ({type(exc).__name__}: {str(exc)[:120]}); it is "
                              f"corrupt or another kind of file.") from None
    if not isinstance(d, dict):
        raise DataFormatError(f"{path} holds a {type(d).__name__}, not the dict of a CIFAR batch.")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_dir(folder: Path, dirname: str, files: tuple[str, ...], n: int) -> Path:
    for cand in (folder / dirname, folder):
        if all((cand / f).is_file() for f in files):
            return cand
    raise DataMissingError(
        f"No CIFAR-{n} data in {folder} (searched it and {dirname}/ under it): expected "
        f"{', '.join(files)} from {CIFAR_SOURCE.format(n=n)}.")


def _cifar_arrays(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise DataFormatError(f"{path} lacks the keys 'data' and '{label_key}' of a CIFAR batch "
                              f"(it has {sorted(map(str, d))}).")
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataFormatError(f"{path} is not a CIFAR batch: its 'data' or '{label_key}' are not arrays of "
                              f"numbers ({exc}).") from None
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise DataFormatError(f"{path} has data of shape {data.shape} and {labels.shape[0]} labels; "
                              f"expected N×3072 and N labels.")
    return data.reshape(-1, 3, 32, 32), labels


def _names(path: Path, key: str) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    names = _unpickle(path).get(key, [])
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def load_cifar(folder: Path, which: int = 10) -> ImageData:
    """CIFAR-10 or CIFAR-100 (fine labels) from the python pickles: x float32 [N, 3, 32, 32] in [0, 1].

    Each row of `data` is 1024 red, 1024 green, 1024 blue values, each 32×32 row-major
    (Krizhevsky's CIFAR page), so reshape(N, 3, 32, 32) gives channels-first images.
    """
    folder = Path(folder)
    if which == 10:
        base = _cifar_dir(folder, CIFAR10_DIR, CIFAR10_FILES, 10)
        parts = [_cifar_arrays(base / f, "labels") for f in CIFAR10_FILES[:-1]]
        xtr = np.concatenate([p[0] for p in parts])
        ytr = np.concatenate([p[1] for p in parts])
        xte, yte = _cifar_arrays(base / "test_batch", "labels")
        source = tuple(base / f for f in CIFAR10_FILES)
        names = _names(base / "batches.meta", "label_names")
    elif which == 100:
        base = _cifar_dir(folder, CIFAR100_DIR, CIFAR100_FILES, 100)
        xtr, ytr = _cifar_arrays(base / "train", "fine_labels")
        xte, yte = _cifar_arrays(base / "test", "fine_labels")
        source = tuple(base / f for f in CIFAR100_FILES)
        names = _names(base / "meta", "fine_label_names")
    else:
        raise ValueError(f"which must be 10 or 100, not {which!r}")
    for y, p in ((ytr, source[0]), (yte, source[-1])):
        if y.size and (y.min() < 0 or y.max() >= which):
            raise DataFormatError(f"{p} has labels outside 0..{which - 1}.")
    return ImageData(
        x_train=_to_unit(xtr), y_train=torch.from_numpy(ytr), x_test=_to_unit(xte), y_test=torch.from_numpy(yte),
        n_classes=which, name=f"cifar{which}", source=source, class_names=names)


# --------------------------------------------------------------------------------------------
# The engine's view of an image set


def _joined(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.cat([a, b]), without a copy when b follows a in one tensor's memory (load_mnist's train and test)."""
    if (a.is_contiguous() and b.is_contiguous() and a.shape[1:] == b.shape[1:] and a.dtype == b.dtype
            and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
            and b.storage_offset() == a.storage_offset() + a.numel()):
        return a.new_empty(0).set_(a.untyped_storage(), a.storage_offset(), (len(a) + len(b), *a.shape[1:]),
                                   a.stride())
    return torch.cat([a, b])


def input_identities(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(id [N] int64, number of distinct images) with equal ids exactly for equal images.

    Images are k/255 values, so round(255·x) recovers their bytes. The row hash of
    `ibtui.measures.discrete.row_keys` on the bytes read as 64-bit words decides the common case at
    once: distinct keys mean distinct images. Only when keys repeat are the bytes compared exactly
    (np.unique on whole rows), so a hash collision can cost time but never give a wrong id.
    """
    flat = x.reshape(x.shape[0], -1).cpu().numpy()
    n, d = flat.shape
    u8 = np.zeros((n, d + (-d) % 8), dtype=np.uint8)  # padded to whole 64-bit words; filled a chunk at a time
    step = max(1, IDX_CHUNK // max(1, d))
    for i in range(0, n, step):
        u8[i:i + step, :d] = np.rint(flat[i:i + step] * 255.0)
    words = torch.from_numpy(np.ascontiguousarray(u8).view(np.int64))
    chunk = rows_per_chunk(words.shape[1] * 8 * 2, n)
    keys = torch.cat([row_keys(words[i:i + chunk], method="hash") for i in range(0, n, chunk)]).numpy() if n \
        else np.zeros(0, dtype=np.int64)
    if len(np.unique(keys)) == n:
        return torch.arange(n), n
    rows = np.ascontiguousarray(u8).view(np.dtype((np.void, u8.shape[1]))).ravel()
    uniq, inverse = np.unique(rows, return_inverse=True)
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)), len(uniq)


def load_image_dataset(sc, seeds: list[int], device: torch.device) -> Dataset:
    """The scenario's image set as the engine's Dataset: all images on `device` once, train first, then test.

    Split: the official one (MNIST 60k/10k, CIFAR 50k/10k, or whatever the files hold), the same for
    every seed; data.split, data.train_fraction and data.split_seed do not apply to images. Inputs:
    MNIST pixels in [0, 1]; CIFAR with the per-pixel mean of the training images subtracted (He et
    al. 2016 §4.2). Repeated images (if any) are detected exactly and given equal input ids, so the
    binning estimator's H(T|X) stays right. The folder is `data.dir` (the CLI's --data-dir replaces
    it) or $IBTUI_DATA. The scenario's rules (estimators meaningless on its layers, augmentation
    without a convolutional model) were checked when it was loaded (`ibtui.scenario`).
    """
    name = sc.data.dataset
    n_classes = DATA_SHAPES[name][1]
    folder = resolve_data_dir(sc.data.dir, None)
    try:
        data = load_mnist(folder) if name == "mnist" else load_cifar(folder, n_classes)
    except DataFormatError as exc:  # a corrupt file: say where a good copy comes from
        source = MNIST_SOURCE if name == "mnist" else CIFAR_SOURCE.format(n=n_classes)
        raise DataFormatError(f"{str(exc).rstrip('.')}; replace it with a good copy from {source}.") from None
    n_train, n_test = len(data.y_train), len(data.y_test)
    x = _joined(data.x_train, data.x_test)
    ids, n_distinct = input_identities(x)
    notes = [f"{name}: {n_train} training and {n_test} test images from {data.source[0].parent} "
             f"(the files' own split, the same for every seed)"]
    if name != "mnist":
        x -= data.x_train.mean(dim=0)
        notes.append(f"{name}: the per-pixel mean of the training images is subtracted (He et al. 2016)")
    if n_distinct < len(x):
        notes.append(f"{name}: {len(x) - n_distinct} images repeat an earlier one; they share an input id")
    s = len(seeds)
    train = torch.zeros(s, len(x), dtype=torch.bool)
    train[:, :n_train] = True
    return Dataset(
        name=name, x=x.to(device), y=torch.cat([data.y_train, data.y_test]).to(device), n_classes=n_classes,
        train=train.to(device), test=(~train).to(device), distinct_inputs=n_distinct == len(x),
        notes=tuple(notes), input_ids=ids.to(device) if n_distinct < len(x) else None)
