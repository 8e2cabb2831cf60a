"""ibtui.watch: the researcher's own model in their own loop (ibtui/monitor.py), and examples/own_model.py."""
from __future__ import annotations

import importlib.util
import math
from collections import Counter, OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ibtui
from ibtui.errors import IbtuiError

REPO = Path(__file__).resolve().parents[1]


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 2))


def points(n: int = 64, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long()


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()[1:]]


def test_modes_and_random_state_are_restored(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Tanh(), nn.Linear(6, 2))
    net.train()
    net[2].eval()  # a mixed state: every module's own flag must come back
    x, y = points()
    before = {name: m.training for name, m in net.named_modules()}
    stats = net[1].running_mean.clone()
    torch.manual_seed(123)
    expected = torch.rand(5)
    torch.manual_seed(123)
    with ibtui.watch(net, x, y, layers=["3"], export=tmp_path / "w.csv") as mon:
        assert torch.equal(torch.rand(5), expected)  # watch's snapshot drew nothing from the user's stream
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        assert mon.epoch(1)  # a measured epoch
        assert torch.equal(torch.rand(3), expected)
    assert {name: m.training for name, m in net.named_modules()} == before
    assert torch.equal(net[1].running_mean, stats)  # eval mode: batch norm's statistics untouched
    assert torch.is_grad_enabled()


def test_export_and_sidecar_read_back(tmp_path):
    net = mlp()
    x, y = points()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with ibtui.watch(net, x, y, layers=["1", net[3]], export=tmp_path / "w.csv", estimators=["binning", "kde"],
                     scenario_name="mine") as mon:
        for epoch in range(1, 3):
            for i in range(0, 64, 16):
                loss = F.cross_entropy(net(x[i:i + 16]), y[i:i + 16])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.step(loss=loss, batch_size=16)
            mon.epoch(epoch, test_acc=0.5)
    run = ibtui.load(tmp_path / "w.csv")
    assert run.name == "mine" and run.seeds == [0] and run.layers == ["1", "2"]
    assert run.estimators == ["bin30", "kde_upper", "kde_lower"]
    for q in ("I(X;T)", "I(T;Y)", "snr", "grad_mean", "weight_norm", "weight_change", "loss_train", "acc_test"):
        assert q in run.quantities
    epochs, xt = run.series("I(X;T)", "bin30", layer="1")
    assert list(epochs) == [0, 1, 2] and all(0 < v <= math.log2(64) + 1e-9 for v in xt)
    assert list(run.series("acc_test")[1]) == [0.5, 0.5]
    _, snr = run.series("snr", layer="1")
    assert math.isnan(snr[0]) and all(v > 0 for v in snr[1:])  # no gradients before the first epoch
    meta = run.meta
    assert meta["finished"] is True
    mon_meta = meta["monitor"]
    assert [d["name"] for d in mon_meta["layers"]] == ["1", "3"]
    assert [d["units"] for d in mon_meta["layers"]] == [6, 3]
    assert [d["weights"] for d in mon_meta["layers"]] == [["0.weight"], ["2.weight"]]
    assert mon_meta["models"][0]["parameters"] == sum(p.numel() for p in net.parameters())
    assert mon_meta["models"][0]["repr"] == repr(net)
    assert mon_meta["arguments"]["scenario_name"] == "mine"
    assert meta["run_info"]["layer_widths"] == [6, 3] and meta["run_info"]["n_points"] == 64
    from ibtui.sinks.figures import _settings_line

    line = _settings_line(run, "")  # a figure's subtitle names the watched model, not the scenario's defaults
    assert line.startswith(f"own model Sequential ({mon_meta['models'][0]['parameters']:,} parameters), watched 1, 3 "
                           f"on 64 inputs") and "szt" not in line and "10-7-5-4-3" not in line


def test_binning_of_an_identity_layer_is_the_input_entropy(tmp_path):
    """Discrete inputs with repeats through an identity: binned I(X;T) = H(X) and I(T;Y) = H(Y) (y a function of x)."""
    patterns = torch.tensor([[a, b] for a in (-0.9, 0.0, 0.9) for b in (-0.9, 0.0, 0.9)])
    counts = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    x = torch.cat([patterns[i].expand(c, 2) for i, c in enumerate(counts)])
    y = (x.sum(1) > 0).long()
    net = nn.Sequential(nn.Identity())
    with ibtui.watch(net, x, y, layers=["0"], export=tmp_path / "w.csv") as mon:
        assert mon.widths == [2]
    n = sum(counts)
    h_x = -sum(c / n * math.log2(c / n) for c in counts)
    h_y = -sum(c / n * math.log2(c / n) for c in Counter(y.tolist()).values())
    run = ibtui.load(tmp_path / "w.csv")
    assert run.series("I(X;T)", "bin30", layer="1")[1][0] == pytest.approx(h_x, abs=1e-5)
    assert run.series("I(T;Y)", "bin30", layer="1")[1][0] == pytest.approx(h_y, abs=1e-5)
    assert math.isnan(run.series("weight_norm", layer="1")[1][0])  # no weights feed an identity


def test_snr_is_the_engine_definition_over_the_epoch(tmp_path):
    """SNR = ‖mean g‖ / √(tr Cov g) (unbiased), the layer's weight matrices as one vector, over the last epoch."""
    net = mlp()
    x, y = points()
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    grads = []
    with ibtui.watch(net, x, y, layers=["3"], export=tmp_path / "w.csv", every=2) as mon:
        for epoch in range(1, 3):
            grads.clear()
            for i in range(0, 64, 8):
                loss = F.cross_entropy(net(x[i:i + 8]), y[i:i + 8])
                opt.zero_grad()
                loss.backward()
                grads.append(torch.cat([net[0].weight.grad.flatten(), net[2].weight.grad.flatten()]).double())
                opt.step()
                mon.step(loss=loss)
            assert mon.epoch(epoch) == (epoch == 2)
    g = torch.stack(grads)
    mean = g.mean(0)
    expected = float(mean.norm() / ((g - mean).square().sum(1).sum() / (len(g) - 1)).sqrt())
    epochs, snr = ibtui.load(tmp_path / "w.csv").series("snr", layer="1")
    assert list(epochs) == [0, 2]
    assert snr[1] == pytest.approx(expected, rel=1e-4)


def test_two_models_in_lockstep_are_two_seeds(tmp_path):
    x, y = points()
    a, b = mlp(0), mlp(1)
    with ibtui.watch([a, b], x, y, layers=["1", "3"], export=tmp_path / "both.csv", estimators=["kde"]) as mon:
        mon.step(loss=[torch.tensor(1.0), torch.tensor(3.0)])
        mon.epoch(1)
    with ibtui.watch(b, x, y, layers=["1", "3"], export=tmp_path / "b.csv", estimators=["kde"]):
        pass
    both, solo = ibtui.load(tmp_path / "both.csv"), ibtui.load(tmp_path / "b.csv")
    assert both.seeds == [0, 1]
    _, xt_b = both.series("I(X;T)", "kde_upper", layer="2", seed=1)
    assert xt_b[0] == solo.series("I(X;T)", "kde_upper", layer="2", seed=0)[1][0]
    _, xt_a = both.series("I(X;T)", "kde_upper", layer="2", seed=0)
    assert xt_a[0] != xt_b[0]
    _, mean = both.series("I(X;T)", "kde_upper", layer="2", seed="mean")
    assert mean[0] == pytest.approx((xt_a[0] + xt_b[0]) / 2, rel=1e-6)
    assert list(both.series("loss_train", seed=0)[1]) == [1.0] and list(both.series("loss_train", seed=1)[1]) == [3.0]


def test_non_finite_activations_are_a_diverged_seed(tmp_path):
    x, y = points()
    a, b = mlp(0), mlp(1)
    with ibtui.watch([a, b], x, y, layers=["1", "3"], export=tmp_path / "w.csv") as mon:
        mon.epoch(1)
        with torch.no_grad():
            a[0].weight.fill_(float("nan"))
        mon.epoch(2)
        mon.epoch(3)
    lines = rows(tmp_path / "w.csv")
    diverged = [r for r in lines if r[6] == "diverged"]
    assert [(r[2], r[3], r[8]) for r in diverged] == [("0", "2", "1.0")]
    assert not [r for r in lines if r[2] == "0" and int(r[3]) >= 2 and r[6] != "diverged"]
    run = ibtui.load(tmp_path / "w.csv")
    epochs, mean = run.series("I(X;T)", "bin30", layer="1", seed="mean")
    assert list(epochs) == [0, 1, 2, 3]
    assert mean[3] == run.series("I(X;T)", "bin30", layer="1", seed=1)[1][3]  # the mean of the live seed


def test_tuple_outputs_use_the_first_tensor(tmp_path):
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return "tag", torch.tanh(self.fc(x)), 5

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair, self.out = Pair(), nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.pair(x)[1])

    x, y = points()
    with ibtui.watch(Net(), x, y, layers=["pair"], export=tmp_path / "w.csv") as mon:
        assert mon.widths == [3]
    assert any("item 1 (the first tensor)" in n for n in ibtui.load(tmp_path / "w.csv").meta["run_info"]["notes"])


class NoTensor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return {"logits": self.fc(x)}


@pytest.mark.parametrize("change, words", [
    (dict(model=nn.Sequential(OrderedDict(fc1=nn.Linear(4, 3), act1=nn.Tanh(), fc2=nn.Linear(3, 2))), layers=["fc3"]),
     "'fc3', which is not a module of the model; close names: 'fc2', 'fc1'"),
    (dict(layers=["tanh1"]), "'tanh1', which is not a module of the model"),
    (dict(labels=torch.zeros(10, dtype=torch.long)), "inputs has 64 points but labels has 10"),
    (dict(labels=torch.zeros(64)), "labels are float32, not class ids"),
    (dict(labels=F.one_hot(torch.zeros(64, dtype=torch.long), 2)), "labels has shape (64, 2)"),
    (dict(labels=-torch.ones(64, dtype=torch.long)), "negative value -1"),
    (dict(estimators=["sp"]), "estimators has 'sp', but sample propagation needs"),
    (dict(estimators=["bins"]), "unknown estimator 'bins'"),
    (dict(model="not a model"), "model must be a torch.nn.Module"),
])
def test_bad_input_is_one_sentence(tmp_path, change, words):
    x, y = points()
    args = dict(model=mlp(), inputs=x, labels=y, layers=["1"], export=tmp_path / "w.csv")
    args.update(change)
    with pytest.raises(IbtuiError) as err:
        ibtui.watch(**args)
    assert words in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "w.csv").exists()  # nothing written before the checks pass


def test_a_module_that_returns_no_tensor_is_refused(tmp_path):
    x, y = points()
    net = nn.Sequential(NoTensor())
    with pytest.raises(IbtuiError, match=r"layer '0' returns dict, not a tensor"):
        ibtui.watch(net, x, y, layers=["0"], export=tmp_path / "w.csv")


def test_device_mismatch_is_refused(tmp_path):
    x, y = points()
    net = mlp().to("meta")
    with pytest.raises(IbtuiError, match=r"the inputs are on cpu but the model is on meta"):
        ibtui.watch(net, x, y, layers=["1"], export=tmp_path / "w.csv")


def test_activations_too_large_are_refused_before_the_first_snapshot(tmp_path, monkeypatch):
    import ibtui.resources

    x, y = points()
    monkeypatch.setattr(ibtui.resources, "available_bytes", lambda device: (1000, "the CPU has"))
    with pytest.raises(IbtuiError, match=r"a snapshot's activations take .* \(1 model\(s\) × 64 inputs × 9 units"):
        ibtui.watch(mlp(), x, y, layers=["1", "3"], export=tmp_path / "w.csv")
    assert not (tmp_path / "w.csv").exists()


def test_a_wide_layer_is_refused_for_binning(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 100), nn.ReLU(), nn.Linear(100, 2))
    x, y = points()
    with pytest.raises(IbtuiError, match=r"layer '1' has 100 units, more than measure.binning.max_width = 64"):
        ibtui.watch(net, x, y, layers=["1"], export=tmp_path / "w.csv")


def test_epochs_must_increase_and_a_closed_monitor_refuses(tmp_path):
    x, y = points()
    mon = ibtui.watch(mlp(), x, y, layers=["1"], export=tmp_path / "w.csv")
    with pytest.raises(IbtuiError, match=r"epoch\(0\) after epoch 0; pass the number of epochs completed"):
        mon.epoch(0)
    mon.close()
    with pytest.raises(IbtuiError, match="is closed"):
        mon.step()


def test_log_schedule_measures_the_scenarios_epochs(tmp_path):
    from ibtui.engine.schedule import snapshot_epochs

    x, y = points()
    with ibtui.watch(mlp(), x, y, layers=["1"], export=tmp_path / "w.csv", epochs=40, snapshots=8) as mon:
        measured = [e for e in range(1, 41) if mon.epoch(e)]
    assert [0, *measured] == snapshot_epochs(40, 8, "log")
    assert list(ibtui.load(tmp_path / "w.csv").series("I(X;T)", "bin30", layer="1")[0]) == [0, *measured]


def _example():
    spec = importlib.util.spec_from_file_location("own_model", REPO / "examples" / "own_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_on_synthetic_data(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    path = _example().main(["--epochs", "1", "--train", "256", "--mi-points", "128",
                            "--export", str(tmp_path / "run.csv")])
    run = ibtui.load(path)
    assert run.layers == ["1", "2"] and run.meta["finished"]
    assert list(run.series("I(X;T)", "kde_upper", layer="1")[0]) == [0, 1]
    assert [d["units"] for d in run.meta["monitor"]["layers"]] == [64, 10]


@pytest.mark.slow
def test_example_on_mnist_5k(tmp_path, shared_data):
    folder = shared_data / "mnist-5k"
    if not folder.is_dir():
        pytest.skip("mnist-5k not present")
    path = _example().main([str(folder), "--epochs", "2", "--export", str(tmp_path / "run.csv")])
    run = ibtui.load(path)
    _, acc = run.series("acc_test")
    assert acc[-1] > 0.8  # a small CNN on 4,000 real digits: well above chance after two epochs
    _, xt = run.series("I(X;T)", "kde_upper", layer="2")
    assert all(0 < v <= math.log2(1000) + 1e-6 for v in xt)


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path, shared_data, monkeypatch):
    """README "Your own model": the block as written (its MNIST folder made absolute), 5 epochs on 4,000 digits."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("## Your own model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    block = block.replace('"../shared/data/mnist-5k/"', repr(str(shared_data / "mnist-5k") + "/"))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    run = ibtui.load(tmp_path / "run.csv")
    assert run.layers == ["1", "2"] and list(run.series("I(X;T)", "bin30", layer="1")[0]) == [0, 1, 2, 3, 4, 5]
    _, loss = run.series("loss_train")
    assert loss[-1] < loss[0]  # the mean training loss of epoch 5 below that of epoch 1


def test_half_precision_and_autocast_outputs_are_measured_in_float32(tmp_path):
    """A bfloat16 model gets its inputs in its dtype; outputs under autocast are cast to float32 for the estimators."""
    x, y = points()
    net = mlp().to(torch.bfloat16)
    with ibtui.watch(net, x, y, layers=["1"], export=tmp_path / "half.csv") as mon:
        assert mon.x.dtype == torch.bfloat16
    with ibtui.watch(mlp(), x, y, layers=["1", "4"], export=tmp_path / "auto.csv") as mon:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert mon.epoch(1)
    for name in ("half.csv", "auto.csv"):
        _, xt = ibtui.load(tmp_path / name).series("I(X;T)", "bin30", layer="1")
        assert all(0 < v <= math.log2(64) + 1e-9 for v in xt)


@pytest.mark.gpu
def test_on_cuda_the_device_and_its_random_state_are_respected(tmp_path):
    x, y = points()
    net = mlp().cuda()
    with pytest.raises(IbtuiError, match="the inputs are on cpu but the model is on cuda:0"):
        ibtui.watch(net, x, y, layers=["1"], export=tmp_path / "cpu.csv")
    torch.cuda.manual_seed(5)
    expected = torch.rand(4, device="cuda")
    torch.cuda.manual_seed(5)
    with ibtui.watch(net, x.cuda(), y.cuda(), layers=["1", "3"], export=tmp_path / "w.csv",
                     estimators=["binning", "kde"]) as mon:
        with torch.autocast("cuda", dtype=torch.float16):
            mon.epoch(1)
    assert torch.equal(torch.rand(4, device="cuda"), expected)
    run = ibtui.load(tmp_path / "w.csv")
    assert run.meta["device"].startswith("cuda:0") and list(run.series("I(X;T)", "kde_upper", layer="1")[0]) == [0, 1]


def test_an_earlier_export_is_kept_unless_overwrite(tmp_path):
    x, y = points()
    with ibtui.watch(mlp(), x, y, layers=["1"], export=tmp_path / "w.csv"):
        pass
    before = (tmp_path / "w.csv").read_bytes()
    with pytest.raises(IbtuiError, match="already exist"):
        ibtui.watch(mlp(1), x, y, layers=["1"], export=tmp_path / "w.csv")
    assert (tmp_path / "w.csv").read_bytes() == before
    with ibtui.watch(mlp(1), x, y, layers=["1"], export=tmp_path / "w.csv", overwrite=True):
        pass
    assert (tmp_path / "w.csv").read_bytes() != before
