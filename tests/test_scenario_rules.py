"""Every cross-setting rule is the scenario's: `ibtui show` refuses exactly what `ibtui run` refuses.

Each case runs both commands in-process (Typer's CliRunner) on a bundled scenario with one or two
settings changed, and expects exit code 2 and the same one-line message from both. `run` gets no data
folder and a zero-epoch run, so a rule that slipped out of the scenario layer would show up as another
message (a missing data folder) or as a run that starts, not as a pass.
"""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ibtui.cli import app

TINY = ["run.epochs=0", "run.seeds=1"]

RULES = {  # rule → (bundled scenario, --set overrides, a fragment of its message)
    "fixed readout needs two classes": (
        "mnist_fc", ["model.fixed_readout=true"], "model.fixed_readout needs a two-class data set"),
    "lr milestones increase": (
        "cifar10_resnet32", ["train.lr_milestones=[48000, 32000]"], "train.lr_milestones = [48000, 32000] must be"),
    "depth within hidden": ("szt_tanh", ["model.depth=9"], "model.depth = 9 is larger than model.hidden"),
    "noise_start within noise_levels": ("szt_tanh", ["model.noise_start=3"], "model.noise_start = 3 is out of range"),
    "test points need a test set": (
        "szt_tanh", ["data.train_fraction=1.0", 'data.mi_points="test"'], 'data.mi_points = "test" needs'),
    "sweep names a setting": (
        "szt_tanh", ['sweep.setting="train.nope"', "sweep.values=[1]"], "is not a setting"),
    "sweep has values": ("szt_tanh", ['sweep.setting="train.batch_size"'], "sweep.values is empty"),
    "sweep values fit the setting": (
        "szt_tanh", ['sweep.setting="train.batch_size"', "sweep.values=[1.5]"], "train.batch_size is an integer"),
    "device name": ("szt_tanh", ['run.device="tpu"'], "run.device = 'tpu' is not a device"),
    "convolutional model needs images": ("szt_tanh", ['model.kind="cnn"'], 'model.kind = "cnn" needs image data'),
    "convolutional model has its own init": (
        "mnist_cnn_noisy", ["model.init_bias=0.1"], "apply to MLPs only"),
    "CNN reads three sizes": ("mnist_cnn_noisy", ["model.hidden=[32, 64]"], "reads model.hidden as [conv-1"),
    "CNN activation": ("mnist_cnn_noisy", ['model.activation="sigmoid"'], "is not available for the CNN"),
    "ResNet is ReLU": ("cifar10_resnet32", ['model.activation="tanh"'], "is a ReLU network"),
    "orthonormal penalty on the MLP only": (
        "mnist_cnn_noisy", ["model.orthonormal=0.1"], "model.orthonormal works for the MLP only"),
    "orthonormal layers exist": (
        "szt_tanh", ["model.orthonormal=0.1", "model.orthonormal_layers=[9]"], "names layer 9, but the network"),
    "exact needs a 1-unit first layer": (
        "szt_tanh", ['measure.estimators=["exact"]'], "needs a first hidden layer of 1 unit (model.hidden[0] = 10)"),
    "exact is not for convolutional models": (
        "mnist_cnn_noisy", ['measure.estimators=["exact"]'], "needs a first hidden layer of 1 unit (layer 1"),
    "binning on a layer too wide": (
        "mnist_cnn_noisy", ['measure.estimators=["binning"]'], "more than measure.binning.max_width = 64"),
    "KDE on a layer too wide": (
        "mnist_cnn_noisy", ['measure.estimators=["kde"]', "measure.kde.max_width=5000"],
        "more than measure.kde.max_width = 5000"),
    "augmentation needs a convolutional model": (
        "mnist_fc", ["data.augment=true"], "data.augment = true needs a convolutional model"),
}


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in [*TINY, *overrides] for arg in ("--set", o)]


@pytest.mark.parametrize("rule", list(RULES))
def test_show_and_run_refuse_alike(rule, tmp_path, monkeypatch):
    name, overrides, fragment = RULES[rule]
    monkeypatch.delenv("IBTUI_DATA", raising=False)
    runner = CliRunner()
    shown = runner.invoke(app, ["show", name, *_sets(overrides)])
    ran = runner.invoke(app, ["run", name, *_sets(overrides), "--headless", "--quiet",
                              "--export", str(tmp_path / "run.csv")])
    assert shown.exit_code == 2, shown.output
    assert ran.exit_code == 2, ran.output
    lines = shown.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibtui: ") and fragment in lines[0], shown.output
    assert ran.output == shown.output
    assert not (tmp_path / "run.csv").exists()
