"""Image data in the engine: the four image scenarios train a few steps with every measure on (CPU, real data).

MNIST comes from ../shared/data/mnist-5k (the MLP reads it as it is; the CNN and ResNet read slices of
the real files written here in the same formats, so a few steps take seconds), CIFAR-10 from the real
subset in ../shared/data/cifar-10-batches-py, CIFAR-100 from pickles this file writes.
"""
from __future__ import annotations

import gzip
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ibtui.data.images import MNIST_FILES, read_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC
from ibtui import quantities as Q
from ibtui.engine import rng
from ibtui.engine.backends.autograd import STREAM_AUGMENT, augment_batch
from ibtui.engine.trainer import Engine
from ibtui.scenario import ScenarioError, load_scenario

from conftest import REPO, SHARED_DATA, cli
from helpers import ListSink

SCENARIOS = REPO / "scenarios"


def _write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def write_mnist_slice(src: Path, dest: Path, n_train: int, n_test: int) -> Path:
    """The first images of a real MNIST folder, written back as gzipped IDX files."""
    dest.mkdir(parents=True, exist_ok=True)
    counts = (n_train, n_train, n_test, n_test)
    for name, n, magic in zip(MNIST_FILES, counts, (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC) * 2):
        _write_idx(dest / f"{name}.gz", read_idx(src / f"{name}.gz", magic)[:n], magic)
    return dest


def write_cifar10_slice(src: Path, dest: Path, per_batch: int, n_test: int) -> Path:
    """The first images of each real CIFAR-10 batch, as a cifar-10-batches-py folder."""
    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        with open(src / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": d[b"data"][:n], b"labels": list(d[b"labels"][:n])}, f, protocol=2)
    return dest


def write_cifar100(dest: Path, n_train: int, n_test: int) -> Path:
    """Random images in the CIFAR-100 python format (fine labels 0..99)."""
    folder = dest / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(3)
    for name, n in (("train", n_train), ("test", n_test)):
        data = gen.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"fine_labels": gen.integers(0, 100, size=n).tolist(),
                         b"coarse_labels": gen.integers(0, 20, size=n).tolist()}, f, protocol=2)
    return dest


# snapshots after whole epochs: a step-unit snapshot (the image scenarios') of a 2-step epoch has a 1-step SNR window,
# whose std is NaN by definition (tests/engine/test_step_snapshots.py covers step units)
TINY = ["run.seeds=2", "run.epochs=1", 'run.device="cpu"', "measure.snapshots=1", "measure.clustering.enabled=true",
        "measure.dynamics.enabled=true", 'measure.snapshot_unit="epoch"']


def run_tiny(name: str, data_dir: Path, extra: list[str]) -> tuple[Engine, ListSink]:
    sc = load_scenario(SCENARIOS / name, [*TINY, f'data.dir="{data_dir}"', *extra])
    engine = Engine(sc, str(SCENARIOS / name))
    sink = ListSink()
    assert engine.run(sink) is True
    return engine, sink


def check_records(engine: Engine, sink: ListSink, estimators: dict[str, int]) -> None:
    """Both snapshots (epochs 0 and 1) hold finite loss/accuracy, and finite MI ≥ 0 (up to estimator noise)
    for layers 1..n of every estimator label → n."""
    by = {}
    for r in sink.records:
        by.setdefault((r.epoch, r.seed, r.layer, r.quantity, r.estimator), r.value)
    assert not [r for r in sink.records if r.quantity == Q.SEED_DIVERGED]
    for epoch in (0, 1):
        for seed in engine.seeds:
            for q in (Q.LOSS_TRAIN, Q.ACC_TRAIN, Q.LOSS_TEST, Q.ACC_TEST):
                assert math.isfinite(by[(epoch, seed, "", q, "")]), (epoch, seed, q)
            for label, n_layers in estimators.items():
                for layer in range(1, n_layers + 1):
                    for q in (Q.MI_XT, Q.MI_TY):
                        v = by[(epoch, seed, str(layer), q, label)]
                        assert math.isfinite(v) and v >= -0.05, (epoch, seed, layer, q, label, v)
    # every record of the last snapshot that a seed emits is finite, except quantities that are NaN by
    # definition until enough epochs have passed (transition epoch, Gaussian bound before W* is frozen)
    late = {"transition_epoch", "gaussian_bound"}
    bad = [r for r in sink.records if r.epoch == 1 and r.seed != "mean" and not math.isfinite(r.value)
           and r.quantity not in late]
    assert not bad, bad[:5]


@pytest.fixture(scope="module")
def mnist_small(tmp_path_factory) -> Path:
    """256 training and 64 test images of mnist-5k (real digits), as gzipped IDX files."""
    if not SHARED_DATA.is_dir():
        pytest.skip("real data absent")
    return write_mnist_slice(SHARED_DATA / "mnist-5k", tmp_path_factory.mktemp("mnist") / "small", 256, 64)


# ------------------------------------------------------------------------------------------------
# A few steps of each scenario


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_mnist_fc_on_mnist5k(shared_data):
    """The MLP path on real MNIST (4 000 train / 1 000 test): one epoch, binning (width limit raised by the
    scenario), KDE and the dynamics measures; accuracy after one epoch beats chance."""
    engine, sink = run_tiny("mnist_fc.toml", shared_data / "mnist-5k",
                            ["data.mi_subset=200", 'measure.estimators=["binning", "kde"]'])
    assert engine.data.x.shape == (5000, 1, 28, 28) and engine.data.n_train == 4000
    assert engine.info.layer_widths == (500, 250, 100, 50, 20, 10)
    check_records(engine, sink, {"bin2": 6, "kde_upper": 6, "kde_lower": 6})  # the scenario bins by sign
    acc = [r.value for r in sink.records if r.epoch == 1 and r.seed == "mean" and r.quantity == Q.ACC_TEST]
    assert acc[0] > 0.2  # ten classes: chance is 0.1


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_mnist_cnn_noisy_sp(mnist_small):
    """The CNN path: noisy training (β of the scenario), SP and KDE on every layer (conv maps 6272 and 3136
    wide, below the limits), clustering and dynamics."""
    engine, sink = run_tiny("mnist_cnn_noisy.toml", mnist_small,
                            ["data.mi_subset=16", "measure.sp.points=8", 'measure.estimators=["sp", "kde"]'])
    assert engine.beta > 0
    assert engine.info.layer_widths == (6272, 3136, 128, 10)
    check_records(engine, sink, {"sp": 3, "kde_upper": 4})  # SP: hidden layers only
    se = [r.value for r in sink.records if r.quantity == Q.MI_XT_SE and r.estimator == "sp" and r.seed != "mean"]
    assert se and all(math.isfinite(v) and v >= 0 for v in se)


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_cifar10_resnet32(shared_data, tmp_path):
    """ResNet-32 on real CIFAR-10 images (a slice of the subset), augmentation on; MI on the pooled stages."""
    folder = write_cifar10_slice(shared_data / "cifar-10-batches-py", tmp_path, 16, 24)
    engine, sink = run_tiny("cifar10_resnet32.toml", folder,
                            ["data.mi_subset=16", 'measure.estimators=["binning", "kde"]', "train.batch_size=40"])
    assert engine.data.x.shape == (104, 3, 32, 32) and engine.sc.data.augment
    assert engine.info.layer_widths == (16, 32, 64, 10)
    check_records(engine, sink, {"bin30": 4, "kde_upper": 4})
    # the per-pixel training mean is subtracted
    assert engine.data.x[:80].mean(dim=0).abs().max().item() < 1e-5


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_cifar100_resnet32(tmp_path):
    """CIFAR-100 files written here: 100-class output, KDE on the pooled stages and the 100-unit softmax."""
    engine, sink = run_tiny("cifar100_resnet32.toml", write_cifar100(tmp_path, 40, 12),
                            ['measure.estimators=["kde"]', "train.batch_size=20"])
    assert engine.data.n_classes == 100 and engine.info.layer_widths == (16, 32, 64, 100)
    check_records(engine, sink, {"kde_upper": 4, "kde_lower": 4})


# ------------------------------------------------------------------------------------------------
# Path details


def test_autograd_backend_train_values_are_running_means(mnist_small):
    """Train loss/accuracy at a snapshot = mean over the epoch's batches of the loss each step saw;
    test values = a noiseless eval pass; MI layers taken from the test pass equal a direct forward."""
    sc = load_scenario(SCENARIOS / "mnist_cnn_noisy.toml",
                       [*TINY, f'data.dir="{mnist_small}"', "data.mi_subset=10", "measure.estimators=[]",
                        "measure.dynamics.enabled=false", "measure.clustering.enabled=false",
                        "model.noise_levels=[0.0]", "train.batch_size=100"])
    engine = Engine(sc)
    model, data = engine.model, engine.data
    seen = []
    forward_backward = engine.backend.forward_backward

    def spy(start, stop, beta, step):  # the loss of each batch, before its optimiser step
        idx = engine.backend.order[:, start:stop]
        with torch.no_grad():
            logits, _ = model(data.x[idx])
            ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), data.y[idx].flatten(), reduction="none")
        seen.append(ce.view(idx.shape).sum(dim=1))
        forward_backward(start, stop, beta, step)

    engine.backend.forward_backward = spy
    engine.train_epoch()
    values, layers, acts = engine.backend.snapshot(engine.mi_idx)
    expected = torch.stack(seen).sum(dim=0) / 256
    torch.testing.assert_close(values[("", Q.LOSS_TRAIN, "")], expected, rtol=1e-5, atol=1e-6)
    assert not model.training  # measured in eval mode
    with torch.no_grad():
        test = data.test[0].nonzero().flatten()
        logits, hidden = model(data.x[test])
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), data.y[test].repeat(2), reduction="none")
        torch.testing.assert_close(values[("", Q.LOSS_TEST, "")], ce.view(2, -1).mean(dim=1))
        acc = (logits.argmax(dim=2) == data.y[test]).float().mean(dim=1)
        torch.testing.assert_close(values[("", Q.ACC_TEST, "")], acc)
        mi = engine.mi_idx[0]
        assert bool((mi >= 256).all())  # MI points are test points (data.mi_points = "test")
        _, direct = model(data.x[mi])
        for got, want in zip(layers, direct):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(layers[-1], torch.softmax(model(data.x[mi])[0], dim=2))
    assert acts == ["tanh", "tanh", "tanh", "softmax"]
    engine.backend.start_epoch(engine.train_idx)
    assert model.training


def test_augment_batch_is_crop_and_flip_of_the_padded_image():
    """Every output image equals the 32×32 window at the drawn offset of the zero-padded image, mirrored
    when the flip draw is < ½; offsets cover 0..8; draws depend only on (seed, step)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 50, 2, 6, 5, generator=gen)
    seeds = torch.tensor([4, 7, 9])
    out = augment_batch(x, seeds, step=11, pad=2)
    u = rng.uniform(seeds, (STREAM_AUGMENT, 11), 150).view(3, 3, 50)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for s in range(3):
        for b in range(50):
            dy, dx = int(u[s, 0, b] * 5), int(u[s, 1, b] * 5)
            offsets.add(dy)
            want = padded[s, b, :, dy:dy + 6, dx:dx + 5]
            if u[s, 2, b] < 0.5:
                want = want.flip(-1)
            assert torch.equal(out[s, b], want)
    assert offsets == set(range(5))
    alone = augment_batch(x[1:2], seeds[1:2], step=11, pad=2)
    assert torch.equal(alone[0], out[1])


def test_mlp_chunked_snapshot_equals_one_pass(shared_data, monkeypatch):
    """MlpBackend's chunked snapshot (used above SNAPSHOT_CHUNK points) gives the values and layers of one pass."""
    from ibtui.engine.backends import mlp

    sc = load_scenario(SCENARIOS / "mnist_fc.toml", [*TINY, f'data.dir="{shared_data / "mnist-5k"}"',
                                                       "data.mi_subset=300", "measure.estimators=[]"])
    engine = Engine(sc)
    one = engine.backend.snapshot(engine.mi_idx)
    monkeypatch.setattr(mlp, "SNAPSHOT_CHUNK", 1000)
    chunked = engine.backend.snapshot(engine.mi_idx)
    for k in one[0]:
        torch.testing.assert_close(chunked[0][k], one[0][k], rtol=1e-5, atol=1e-6)
    for a, b in zip(chunked[1], one[1]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert [tuple(h.shape) for h in chunked[1]] == [(2, 300, w) for w in (500, 250, 100, 50, 20, 10)]


# ------------------------------------------------------------------------------------------------
# Refusals and messages


@pytest.mark.parametrize("name, extra, layer, width, limit", [
    ("mnist_cnn_noisy.toml", ['measure.estimators=["binning"]'], 1, 6272, 64),
    ("mnist_fc.toml", ["measure.binning.max_width=64"], 1, 500, 64),
    ("mnist_cnn_noisy.toml", ['measure.estimators=["kde"]', "measure.kde.max_width=5000"], 1, 6272, 5000),
    ("cifar100_resnet32.toml", ['measure.estimators=["binning"]'], 4, 100, 64),
])
def test_meaningless_estimator_is_refused_before_reading_data(tmp_path, name, extra, layer, width, limit):
    with pytest.raises(ScenarioError) as info:  # refused as the scenario loads, before any data is looked for
        load_scenario(SCENARIOS / name, [*TINY, f'data.dir="{tmp_path / "empty"}"', *extra])
    msg = str(info.value)
    est = extra[0].split('"')[1] if "estimators" in extra[0] else "binning"
    assert "\n" not in msg and msg.endswith(".")
    assert f"layer {layer} " in msg and f"{width} units" in msg and f"measure.{est}.max_width = {limit}" in msg


def test_szt_is_not_checked():
    """The limits concern image data only: SZT's narrow layers run whatever the limit."""
    sc = load_scenario(SCENARIOS / "szt_tanh.toml", [*TINY, "measure.binning.max_width=1", "run.epochs=0"])
    Engine(sc)


def test_missing_data_via_cli_is_one_line_exit_2(tmp_path):
    for name in ("mnist_fc.toml", "cifar10_resnet32.toml", "cifar100_resnet32.toml"):
        res = cli(SCENARIOS / name, "--quiet", "--data-dir", tmp_path, "--export", tmp_path / "x.csv")
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ibtui: ") and str(tmp_path) in lines[0], res.stderr
        assert "Traceback" not in res.stderr
    assert "t10k-images-idx3-ubyte" in cli(SCENARIOS / "mnist_cnn_noisy.toml", "--quiet", "--data-dir",
                                           tmp_path).stderr


def test_refusal_via_cli_is_one_line_exit_2(tmp_path):
    res = cli(SCENARIOS / "mnist_cnn_noisy.toml", "--quiet", "--set", 'measure.estimators=["binning"]',
              "--data-dir", tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "measure.binning.max_width" in res.stderr


def test_augment_with_an_mlp_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match=r"data\.augment = true needs a convolutional model"):
        load_scenario(SCENARIOS / "mnist_fc.toml", [*TINY, f'data.dir="{tmp_path}"', "data.augment=true"])


def test_input_identities_find_exact_repeats():
    """Equal images (values k/255) get equal ids, distinct ones distinct ids; one pixel's difference counts."""
    from ibtui.data.images import input_identities

    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (50, 1, 5, 3), generator=gen).float() / 255  # 15 bytes: not a multiple of 8
    ids, n = input_identities(x)
    assert n == 50 and torch.equal(ids, torch.arange(50))
    x[7] = x[3]
    x[40] = x[3]
    x[41] = x[2]
    x[41, 0, 4, 2] = (x[41, 0, 4, 2] * 255 + 1) % 256 / 255  # differs from image 2 in one pixel
    ids, n = input_identities(x)
    assert n == 48
    assert ids[7] == ids[3] == ids[40] and ids[41] != ids[2]
    assert len(set(ids.tolist())) == 48


def test_image_dataset_layout(shared_data):
    """Train images first, then test, in file order; masks select them for every seed; labels follow."""
    from ibtui.data.images import load_image_dataset, load_mnist

    sc = load_scenario(SCENARIOS / "mnist_fc.toml", [*TINY, f'data.dir="{shared_data / "mnist-5k"}"'])
    d = load_image_dataset(sc, [0, 1], torch.device("cpu"))
    ref = load_mnist(shared_data / "mnist-5k")
    assert torch.equal(d.x, torch.cat([ref.x_train, ref.x_test])) and torch.equal(d.y, torch.cat([ref.y_train, ref.y_test]))
    assert d.train.shape == (2, 5000) and bool(d.train[:, :4000].all()) and not bool(d.train[:, 4000:].any())
    assert torch.equal(d.test, ~d.train) and d.distinct_inputs and d.input_ids is None and d.n_classes == 10
