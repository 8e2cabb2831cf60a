"""MNIST and CIFAR loaders (ibtui.data.images) on the real files in ../shared/data (README there)."""
from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ibtui.data.images import (
    MNIST_FILES, DataFormatError, DataMissingError, ImageData, load_cifar, load_mnist, resolve_data_dir,
)

SHARED = (Path(__file__).resolve().parents[2] / "../shared/data").resolve()
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data folder {SHARED} absent")

# Label counts from ../shared/data/README.md.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_BATCH_COUNTS = [
    [102, 112, 99, 92, 99, 85, 107, 102, 99, 103],
    [102, 99, 79, 98, 110, 94, 97, 118, 114, 89],
    [102, 106, 92, 119, 101, 89, 106, 92, 103, 90],
    [98, 104, 114, 87, 110, 105, 87, 97, 98, 100],
    [104, 94, 94, 88, 107, 96, 100, 103, 104, 110],
]
CIFAR_TEST_COUNTS = [103, 89, 100, 103, 90, 86, 112, 102, 106, 109]
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(scope="module")
def mnist5k() -> ImageData:
    if not SHARED.is_dir():
        pytest.skip(f"real data folder {SHARED} absent")
    return load_mnist(SHARED / "mnist-5k")


def _copy_mnist5k(dest: Path, gunzip: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        src = SHARED / "mnist-5k" / f"{name}.gz"
        if gunzip:
            with gzip.open(src, "rb") as f:
                (dest / name).write_bytes(f.read())
        else:
            shutil.copy(src, dest / f"{name}.gz")


def _same(a: ImageData, b: ImageData) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


# ---------------------------------------------------------------------------------------------
# MNIST


@needs_data
def test_full_mnist_shapes_range_and_label_counts():
    d = load_mnist(SHARED)  # found in SHARED/mnist
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.x_train.min().item() == 0.0 and d.x_train.max().item() == 1.0  # pixels 0..255 / 255
    assert torch.bincount(d.y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(d.y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert d.n_classes == 10 and d.name == "mnist"
    assert [p.name for p in d.source] == [f"{n}.gz" for n in MNIST_FILES]
    assert all(p.parent == SHARED / "mnist" for p in d.source)


def test_mnist5k_shapes_and_stratified_counts(mnist5k):
    assert mnist5k.x_train.shape == (4000, 1, 28, 28) and mnist5k.x_test.shape == (1000, 1, 28, 28)
    assert torch.bincount(mnist5k.y_train).tolist() == [400] * 10  # README: 400 / 100 per class exactly
    assert torch.bincount(mnist5k.y_test).tolist() == [100] * 10
    # pixel values are k/255 for integers k (exactly, as float32 of k/255)
    k = torch.round(mnist5k.x_train[:50] * 255)
    assert torch.equal(mnist5k.x_train[:50], k / 255)
    assert k.min().item() == 0 and k.max().item() == 255


def test_mnist_plain_files_equal_gz(mnist5k, tmp_path):
    _copy_mnist5k(tmp_path, gunzip=True)
    plain = load_mnist(tmp_path)
    _same(plain, mnist5k)
    assert [p.name for p in plain.source] == list(MNIST_FILES)


def test_mnist_torchvision_layout(mnist5k, tmp_path):
    _copy_mnist5k(tmp_path / "MNIST" / "raw", gunzip=False)
    d = load_mnist(tmp_path)
    _same(d, mnist5k)
    assert all(p.parent == tmp_path / "MNIST" / "raw" for p in d.source)


def test_mnist_bad_magic_and_truncation(mnist5k, tmp_path):
    _copy_mnist5k(tmp_path, gunzip=True)
    # a labels file (magic 0x801) where the images (0x803) should be
    shutil.copy(tmp_path / "t10k-labels-idx1-ubyte", tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(DataFormatError, match=r"0x801.*0x803"):
        load_mnist(tmp_path)
    _copy_mnist5k(tmp_path, gunzip=True)
    raw = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(raw[:-1])  # one label short
    with pytest.raises(DataFormatError, match="3999 data bytes but its header announces 4000"):
        load_mnist(tmp_path)


def test_missing_mnist_message_is_one_line_naming_folder_and_files(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")  # one file of four is not a set
    with pytest.raises(DataMissingError) as info:
        load_mnist(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(".")
    assert str(tmp_path) in msg and all(name in msg for name in MNIST_FILES)
    assert "MNIST" in msg and "torchvision" in msg


# ---------------------------------------------------------------------------------------------
# CIFAR


@needs_data
def test_cifar10_subset_shapes_labels_and_names():
    d = load_cifar(SHARED)  # folder holding cifar-10-batches-py/
    assert d.x_train.shape == (5000, 3, 32, 32) and d.x_test.shape == (1000, 3, 32, 32)
    assert d.n_classes == 10 and d.name == "cifar10" and d.class_names == CIFAR_NAMES
    assert torch.bincount(d.y_train, minlength=10).tolist() == np.sum(CIFAR_BATCH_COUNTS, axis=0).tolist()
    assert torch.bincount(d.y_test, minlength=10).tolist() == CIFAR_TEST_COUNTS
    # README check 4: first labels, and red row 0 of image 0 of data_batch_1
    assert d.y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert torch.round(d.x_train[0, 0, 0, :8] * 255).tolist() == [59, 43, 50, 68, 98, 119, 139, 145]
    # the folder itself works too, and gives the same tensors
    _same(load_cifar(SHARED / "cifar-10-batches-py"), d)


def _write_cifar100(folder: Path, bytes_keys: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    out = []
    for name, n in (("train", 6), ("test", 4)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n).tolist()
        coarse = rng.integers(0, 20, size=n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({key("data"): data, key("fine_labels"): fine, key("coarse_labels"): coarse}, f, protocol=2)
        out += [data, np.array(fine)]
    with open(folder / "meta", "wb") as f:
        pickle.dump({key("fine_label_names"): [f"c{i}" for i in range(100)]}, f, protocol=2)
    return tuple(out)


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar100_format_written_by_test(tmp_path, bytes_keys):
    xtr, ytr, xte, yte = _write_cifar100(tmp_path / "cifar-100-python", bytes_keys)
    for folder in (tmp_path, tmp_path / "cifar-100-python"):
        d = load_cifar(folder, which=100)
        assert d.x_train.shape == (6, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
        # exact: data row = 1024 R, 1024 G, 1024 B, each 32×32 row-major, divided by 255
        assert torch.equal(d.x_train, torch.from_numpy(xtr.reshape(6, 3, 32, 32).astype(np.float32) / np.float32(255)))
        assert d.x_train[1, 2, 3, 4].item() == np.float32(xtr[1, 2 * 1024 + 3 * 32 + 4]) / np.float32(255)
        assert d.y_train.tolist() == ytr.tolist() and d.y_test.tolist() == yte.tolist()  # fine labels
        assert d.n_classes == 100 and d.class_names[:2] == ("c0", "c1") and len(d.class_names) == 100


def test_missing_cifar_message(tmp_path):
    for which, expected in ((10, ["data_batch_1", "data_batch_5", "test_batch", "cifar-10-batches-py"]),
                            (100, ["train", "test", "cifar-100-python"])):
        with pytest.raises(DataMissingError) as info:
            load_cifar(tmp_path, which=which)
        msg = str(info.value)
        assert "\n" not in msg and msg.endswith(".") and str(tmp_path) in msg
        assert all(e in msg for e in expected) and f"CIFAR{which}" in msg


# ---------------------------------------------------------------------------------------------
# Folder resolution and subsets


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for p in (a, b, c):
        p.mkdir()
    monkeypatch.setenv("IBTUI_DATA", str(c))
    assert resolve_data_dir(str(b), str(a)) == a  # CLI wins
    assert resolve_data_dir(str(b), None) == b  # then the scenario
    assert resolve_data_dir(None, None) == c  # then the environment
    with pytest.raises(DataMissingError, match=r"--data-dir"):
        resolve_data_dir(None, str(tmp_path / "nope"))
    monkeypatch.delenv("IBTUI_DATA")
    with pytest.raises(DataMissingError) as info:
        resolve_data_dir(None, None)
    assert "IBTUI_DATA" in str(info.value) and "\n" not in str(info.value)


def test_relative_data_dir_is_relative_to_the_scenario_file(tmp_path, monkeypatch):
    """data.dir = "imgs" in sub/run.toml names sub/imgs, whatever the working directory; --set is used as written."""
    from ibtui.scenario import load_scenario

    sub, elsewhere = tmp_path / "sub", tmp_path / "elsewhere"
    (sub / "imgs").mkdir(parents=True)
    (elsewhere / "mine").mkdir(parents=True)
    (sub / "run.toml").write_text('[data]\ndataset = "mnist"\ndir = "imgs"\n[measure]\nestimators = []\n')
    monkeypatch.chdir(elsewhere)
    sc = load_scenario(Path("..") / "sub" / "run.toml")
    assert resolve_data_dir(sc.data.dir, None).resolve() == (sub / "imgs").resolve()
    sc = load_scenario(sub / "run.toml", ['data.dir="mine"'])
    assert resolve_data_dir(sc.data.dir, None).resolve() == (elsewhere / "mine").resolve()
    (sub / "abs.toml").write_text(f'[data]\ndataset = "mnist"\ndir = "{elsewhere / "mine"}"\n'
                                  f'[measure]\nestimators = []\n')
    assert load_scenario(sub / "abs.toml").data.dir == str(elsewhere / "mine")


def test_subset_is_seeded_sorted_and_nested(mnist5k):
    idx = mnist5k.subset(100, seed=3)
    expected = torch.sort(torch.randperm(4000, generator=torch.Generator().manual_seed(3))[:100]).values
    assert torch.equal(idx, expected) and idx.dtype == torch.int64
    assert torch.equal(mnist5k.subset(100, seed=3), idx)  # fixed
    assert len(torch.unique(idx)) == 100
    assert set(idx.tolist()) <= set(mnist5k.subset(500, seed=3).tolist())  # nested in larger subsets
    assert not torch.equal(mnist5k.subset(100, seed=4), idx)
    assert torch.equal(mnist5k.subset(10**6, seed=0, split="test"), torch.arange(1000))
    with pytest.raises(ValueError):
        mnist5k.subset(10, seed=0, split="valid")


# ---- issue 34: an IDX file is inflated once, straight into its final array, and the engine's x is not copied again
def test_idx_is_read_exactly_plain_or_gzipped_in_chunks(tmp_path, monkeypatch):
    import ibtui.data.images as images

    monkeypatch.setattr(images, "IDX_CHUNK", 1000)  # many chunks, a partial last one
    pixels = np.random.default_rng(1).integers(0, 256, (37, 28, 28), dtype=np.uint8)
    raw = (images.IDX_IMAGES_MAGIC).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in pixels.shape)
    (tmp_path / "x.idx").write_bytes(raw + pixels.tobytes())
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(raw + pixels.tobytes()))
    (tmp_path / "long.idx.gz").write_bytes(gzip.compress(raw + pixels.tobytes() + b"\0"))
    for name in ("x.idx", "x.idx.gz"):
        got = images.read_idx(tmp_path / name, images.IDX_IMAGES_MAGIC)
        assert got.dtype == np.uint8 and got.flags.writeable and np.array_equal(got, pixels)
    with pytest.raises(DataFormatError, match="truncated or corrupt"):  # ISIZE says one byte more than announced
        images.read_idx(tmp_path / "long.idx.gz", images.IDX_IMAGES_MAGIC)
    unit = images._to_unit([pixels[:20, None], pixels[20:, None]])
    assert torch.equal(unit, torch.from_numpy(pixels[:, None].astype(np.float32) / np.float32(255.0)))  # bit-exact


@needs_data
def test_mnist_train_and_test_share_one_tensor_that_the_engine_uses_as_is(mnist5k):
    from ibtui.data.images import _joined, load_image_dataset
    from ibtui.scenario import load_scenario

    x = _joined(mnist5k.x_train, mnist5k.x_test)
    assert x.data_ptr() == mnist5k.x_train.data_ptr() and len(x) == len(mnist5k.x_train) + len(mnist5k.x_test)
    assert torch.equal(x, torch.cat([mnist5k.x_train, mnist5k.x_test]))
    a, b = torch.zeros(3, 2), torch.ones(2, 2)  # two tensors apart in memory: joined by a copy, as torch.cat
    assert torch.equal(_joined(a, b), torch.cat([a, b]))
    sc = load_scenario("mnist_fc", [f'data.dir="{SHARED / "mnist-5k"}"'])
    d = load_image_dataset(sc, [0], torch.device("cpu"))
    assert torch.equal(d.x, x) and d.x.is_contiguous()
