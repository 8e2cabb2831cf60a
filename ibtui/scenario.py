"""Scenario files: TOML → a frozen dataclass tree, validated in one place.

Every setting a result depends on lives here, with its default written once. Bad input raises
ScenarioError with one sentence naming the file, the key and the fix; the CLI prints it and exits 2.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import math
import re
import tomllib
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ibtui.errors import ScenarioError


def _opt(default: Any, help: str, *, choices: tuple = (), lo: float | None = None, hi: float | None = None,
         lo_open: bool = False) -> Any:
    """A setting with its help line and its allowed values (checked by `_check_value`)."""
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi, "lo_open": lo_open}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunSettings:
    seeds: int = _opt(10, "number of seeds trained at once (seed ids first_seed … first_seed+seeds−1)", lo=1)
    first_seed: int = _opt(0, "id of the first seed", lo=0)
    epochs: int = _opt(8000, "training epochs (0 = measure the initial network only, e.g. in a sweep)", lo=0)
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    checkpoint_every: float = _opt(60.0, "with --export: seconds between checkpoints beside the export, from which "
                                         "`ibtui resume RUN.csv` continues a killed run (0 = none)", lo=0, hi=1e9)
    compiled_step: bool | str = _opt("auto", "MLP on a CPU, every layer at most 128 wide: auto times the compiled C "
                                             "step and PyTorch's step at the run's shapes once per machine and trains "
                                             "with the faster (the sidecar records which, and resume keeps it); true: "
                                             "the compiled step where a C compiler works (the same bits on every such "
                                             "machine); false: PyTorch's operations, which round differently",
                                      choices=("auto", True, False))
    cuda_graph: bool = _opt(False, "MLP on a GPU: capture a training epoch as a CUDA graph and replay it (far "
                                   "fewer kernel launches; epochs the dynamics probe watches run eagerly)")


@dataclass(frozen=True)
class DataSettings:
    dataset: str = _opt("szt", "the data set: szt (12-bit task), saturation (the 4-point single-neuron toy), "
                                "boolean4 (the survey's 4-bit task), mnist, cifar10, cifar100, npz (your own arrays: "
                                "data.path)",
                        choices=("szt", "saturation", "boolean4", "mnist", "cifar10", "cifar100", "npz"))
    path: str = _opt("", "npz: your .npz file with x (N × d numbers) and y (N class ids 0…C−1), optionally x_test "
                         "and y_test; relative to the scenario file's folder")
    dir: str = _opt("", "folder holding image data (MNIST IDX / CIFAR python batches), relative to the scenario "
                        "file's folder; overridden by --data-dir, falls back to $IBTUI_DATA")
    samples: int = _opt(4096, "boolean4: number of samples drawn", lo=1)
    label_noise: float = _opt(0.07, "boolean4: probability that a label is flipped", lo=0.0, hi=0.5)
    mi_subset: int = _opt(0, "measure MI on a fixed random subset of this many of the chosen points (0 = all)",
                          lo=0)
    augment: bool = _opt(False, "CIFAR: random crops with 4-pixel padding and horizontal flips while training")
    split: str = _opt("random", "random (seeded) or unshuffled (the split of Shwartz-Ziv & Tishby 2017's code, "
                                "biased on SZT)",
                      choices=("random", "unshuffled"))
    train_fraction: float = _opt(0.8, "fraction of the points used for training", lo=0.0, hi=1.0, lo_open=True)
    split_seed: int = _opt(0, "seed of the random split shared by all seeds", lo=0)
    split_per_seed: bool = _opt(False, "draw a different random split for every seed (from the seed id)")
    mi_points: str = _opt("all", "points MI is measured on: all, train or test", choices=("all", "train", "test"))


@dataclass(frozen=True)
class ModelSettings:
    kind: str = _opt("mlp", "network family: mlp, cnn (the noisy MNIST CNN), resnet32",
                     choices=("mlp", "cnn", "resnet32"))
    hidden: list[int] = _opt([10, 7, 5, 4, 3], "hidden layer widths")
    depth: int = _opt(0, "use only the first `depth` hidden layers (0 = all; lets a sweep vary depth)", lo=0)
    activation: str = _opt("tanh", "hidden activation", choices=("tanh", "relu", "linear", "sigmoid"))
    init: str = _opt("truncated_normal",
                     "truncated_normal (std 1/sqrt(fan_in), cut at 2 std, zero biases: the original code), "
                     "normal, xavier_uniform, kaiming_uniform",
                     choices=("truncated_normal", "normal", "xavier_uniform", "kaiming_uniform"))
    noise_levels: list[float] = _opt([0.0], "levels of Gaussian noise β added to every hidden layer (0 = none); "
                                             "the app cycles through them", hi=1e3)
    noise_start: int = _opt(0, "index into noise_levels used at the start", lo=0)
    init_weight: float = _opt(0.0, "if not 0: every weight starts at this value (toys and sweeps)")
    init_bias: float = _opt(0.0, "every bias starts at this value")
    fixed_readout: bool = _opt(False, "two classes only: the output layer is fixed at logits (−mean T, +mean T) "
                                      "of the last hidden layer and not trained (the saturation toy's readout)")
    orthonormal: float = _opt(0.0, "strength λ of the orthonormality penalty λ·‖WᵀW − I‖²_F (Parseval-style; "
                                   "0 = off)", lo=0.0)
    orthonormal_layers: list[int] = _opt([], "layers (1-based) the penalty applies to; empty = every hidden layer")

    @property
    def hidden_widths(self) -> list[int]:
        """The MLP's hidden widths in use: model.hidden, cut to model.depth layers when depth > 0."""
        return self.hidden[:self.depth] if self.depth else list(self.hidden)

    @property
    def cnn_sizes(self) -> tuple[int, int, int]:
        """model.hidden read as the CNN's (conv-1 channels, conv-2 channels, dense units)."""
        c1, c2, dense = self.hidden
        return c1, c2, dense


@dataclass(frozen=True)
class TrainSettings:
    optimizer: str = _opt("adam", "adam or sgd", choices=("adam", "sgd"))
    lr: float = _opt(4e-4, "learning rate", lo=0.0, lo_open=True)
    batch_size: int = _opt(512, "mini-batch size (the last batch of an epoch may be smaller)", lo=1)
    momentum: float = _opt(0.0, "SGD momentum", lo=0.0, hi=1.0)
    weight_decay: float = _opt(0.0, "L2 weight decay", lo=0.0)
    lr_milestones: list[int] = _opt([], "optimiser steps (iterations, counted over the run) after which the "
                                        "learning rate is multiplied by lr_decay, e.g. [32000, 48000] (He et al. "
                                        "2016's ResNet schedule); empty = a constant rate", lo=1)
    lr_decay: float = _opt(0.1, "factor applied to the learning rate at each of lr_milestones", lo=0.0, hi=1.0,
                           lo_open=True)


@dataclass(frozen=True)
class BinningSettings:
    bins: int = _opt(30, "number of equal bins over the range (ignored when width > 0)", lo=1)
    range: Union[list[float], str] = _opt([-1.0, 1.0],
                                          "[lo, hi] for every layer, or \"auto\": activation-aware "
                                          "([-1,1] tanh, [0,1] sigmoid/softmax, [min,max] per seed for relu/linear)")
    width: float = _opt(0.0, "fixed bin width (0 = use bins over range; else 1e-6 … 1e6: a narrower bin gives "
                             "every point its own cell in float32, a wider one a single cell)", lo=0.0, hi=1e6)
    max_width: int = _opt(64, "image data: refuse to bin a layer wider than this (every point gets its own cell)",
                          lo=1)


@dataclass(frozen=True)
class KdeSettings:
    noise_variance: float = _opt(1e-3, "σ² of the Gaussian kernel (Saxe et al.: 1e-3 on SZT, 0.1 on MNIST); 1e-10 … "
                                       "1e6: beyond, the kernel's float32 distances underflow or overflow",
                                 lo=1e-10, hi=1e6)
    points: int = _opt(0, "measure on a fixed random subset of this many MI points (0 = all)", lo=0)
    max_width: int = _opt(8192, "image data: refuse KDE on a layer wider than this", lo=1)
    precision: str = _opt("float32", "float32 (on a CPU's tiled sums within ~2e-6 bits of exact sums; on a GPU's "
                                     "fused kernel within ~1e-3 bits on saturated layers, ~1e-5 on spread ones) or "
                                     "float64 (exact to ~1e-7 nats; 2× the cost on a GPU, 3–10× on a CPU, whose "
                                     "compiled tile kernel is float32 only)",
                          choices=("float32", "float64"))
    path: str = _opt("auto", "how layers up to 512 units wide are summed: auto times the paths this machine has "
                             "(compiled tile kernel, PyTorch's tile sums, fused attention where accurate) at the "
                             "run's shapes once per machine and takes the faster (the sidecar records which, and "
                             "resume keeps it; a GPU keeps fused attention); compiled: the compiled tile kernel where "
                             "it can run (a CPU, float32, a C compiler), else the rule before auto (PyTorch's tiles "
                             "on a CPU, attention on a GPU); pytorch: PyTorch's tile sums; attention: the fused "
                             "attention kernel (within ~1e-3 bits; pairwise sums where it is not accurate on the "
                             "device). They round differently",
                     choices=("auto", "compiled", "pytorch", "attention"))


@dataclass(frozen=True)
class SpSettings:
    samples: int = _opt(8, "noisy passes per input: the components of each conditional mixture", lo=1)
    mc: int = _opt(4, "Monte Carlo draws per input", lo=1)
    points: int = _opt(512, "average over a fixed random subset of this many inputs a seed, drawn once from the seed "
                            "(the same at every snapshot; the SE counts its sampling), 0 = all inputs", lo=0)
    max_width: int = _opt(8192, "image data: refuse SP on a layer wider than this", lo=1)


@dataclass(frozen=True)
class RenyiSettings:
    alpha: float = _opt(1.01, "order α of the matrix-based Rényi entropy (Yu et al. 2019: 1.01, near Shannon's α → 1; "
                              "1 = Shannon's)", lo=0.0, lo_open=True, hi=100.0)
    sigma: float = _opt(0.0, "Gaussian kernel width for every layer and the inputs (0 = Silverman's rule as Yu et "
                             "al. 2019 write it, γ·σ̂·√d·n^(−1/(4+d)), σ̂ the data's root-mean marginal std, √d as "
                             "Tapia & Estévez 2020)", lo=0.0, hi=1e6)
    gamma: float = _opt(0.8, "γ of that rule (Tapia & Estévez 2020: 0.8)", lo=0.0, lo_open=True, hi=1e6)
    points: int = _opt(512, "measure on a fixed random subset of this many MI points (0 = all; the "
                            "eigendecomposition costs n³: 512 points ≈ 0.05 s a Gram matrix on one CPU core)", lo=0)


@dataclass(frozen=True)
class KsgSettings:
    k: int = _opt(3, "neighbours of the Kraskov–Stögbauer–Grassberger estimator (Kraskov et al. 2004 use 2–4)",
                  lo=1, hi=1000)
    points: int = _opt(512, "measure on a fixed random subset of this many MI points (0 = all; distances cost "
                            "n²·d a layer)", lo=0)


@dataclass(frozen=True)
class DynamicsSettings:
    enabled: bool = _opt(True, "gradient SNR, weight norms, drift→diffusion transition and the Gaussian bound")
    snr: str = _opt("ratio", "SNR form: ratio ‖mean g‖/√tr Cov g, or squared", choices=("ratio", "squared"))
    window: float = _opt(0.1, "transition detector: smoothing half-width in decades of epochs", lo=0.0, lo_open=True)
    margin: float = _opt(0.3, "transition detector: fall of log10 SNR (decades) that confirms a transition",
                         lo=0.0, lo_open=True)
    hold: float = _opt(0.1, "transition detector: decades the fall must last before it is declared", lo=0.0)
    bound_w_star: str = _opt("transition", "W* of the Gaussian bound: the weights at the detected transition, "
                                           "or at bound_epoch", choices=("transition", "epoch"))
    bound_epoch: int = _opt(0, "epoch whose weights are W* when bound_w_star = \"epoch\"", lo=0)
    window_steps: int = _opt(0, "SNR window: the gradients of the last this many optimiser steps before each "
                                "snapshot (fewer when the previous snapshot is closer); 0 = the last epoch", lo=0)


@dataclass(frozen=True)
class ClusteringSettings:
    enabled: bool = _opt(False, "per-layer clustering table (cells, spread, close pairs, homogeneity …)")
    bin_size: float = _opt(0.0, "cell width of the clustering grid (0 = 10β, Goldfeld et al.; 0.1 when β = 0)",
                           lo=0.0)
    radius: float = _opt(0.0, "pairs closer than this count as close (0 = β; 0.01 when β = 0)", lo=0.0)
    points: int = _opt(0, "measure on a fixed random subset of this many MI points (0 = all)", lo=0)


@dataclass(frozen=True)
class SweepSettings:
    setting: str = _opt("", "one dotted setting to sweep, e.g. train.batch_size (empty = no sweep)")
    values: list[float] = _opt([], "the values it takes, one run (all seeds batched) after another")


@dataclass(frozen=True)
class MeasureSettings:
    snapshots: int = _opt(300, "number of snapshot epochs (log-spaced epochs may merge, so fewer can result)", lo=1)
    schedule: str = _opt("log", "log or linear spacing of snapshot epochs", choices=("log", "linear"))
    snapshot_unit: str = _opt("epoch", "snapshots spaced over epochs, or over optimiser steps from step 1 (inside "
                                       "epochs too, fractional epochs)", choices=("epoch", "step"))
    estimators: list[str] = _opt(["binning"], "MI estimators computed at every snapshot: binning, kde, sp "
                                              "(sp needs a noisy network: model.noise_levels > 0), exact "
                                              "(quadrature; a noisy first layer of 1 unit), renyi "
                                              "(matrix-based Rényi α-entropy, for wide layers), ksg "
                                              "(Kraskov kNN)")
    binning: BinningSettings = field(default_factory=BinningSettings)
    kde: KdeSettings = field(default_factory=KdeSettings)
    sp: SpSettings = field(default_factory=SpSettings)
    renyi: RenyiSettings = field(default_factory=RenyiSettings)
    ksg: KsgSettings = field(default_factory=KsgSettings)
    dynamics: DynamicsSettings = field(default_factory=DynamicsSettings)
    clustering: ClusteringSettings = field(default_factory=ClusteringSettings)


@dataclass(frozen=True)
class Scenario:
    name: str = _opt("scenario", "run name (goes into every exported row)")
    description: str = _opt("", "what this scenario reproduces")
    run: RunSettings = field(default_factory=RunSettings)
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    sweep: SweepSettings = field(default_factory=SweepSettings)


ESTIMATORS = ("binning", "kde", "sp", "exact", "renyi", "ksg")

# ----------------------------------------------------------------------------------------------
# Facts of the bundled data sets and models that the rules below need (torch-free)

DATA_SHAPES = {  # data.dataset → (shape of one input, number of classes)
    "szt": ((12,), 2),
    "saturation": ((1,), 2),
    "boolean4": ((4,), 2),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}
IMAGE_SETS = ("mnist", "cifar10", "cifar100")
RESNET_STAGE_CHANNELS = (16, 32, 64)  # He et al. 2016 §4.2: the three stages of the CIFAR ResNet
CNN_ACTIVATIONS = ("tanh", "relu")


def measured_layers(sc: "Scenario", image_shape: tuple[int, ...], n_classes: int) -> list[tuple[str, int]]:
    """(what, width) of every layer an MI estimator measures: the hidden layers, then the softmax output."""
    kind = sc.model.kind
    if kind == "mlp":
        layers = [(f"dense {d}", d) for d in sc.model.hidden_widths]
    elif kind == "cnn":
        _, h, w = image_shape
        c1, c2, dense = sc.model.cnn_sizes
        layers = [(f"conv map {c1}×{h // 2}×{w // 2}", c1 * (h // 2) * (w // 2)),
                  (f"conv map {c2}×{h // 4}×{w // 4}", c2 * (h // 4) * (w // 4)), (f"dense {dense}", dense)]
    else:
        layers = [(f"stage {i + 1}, {ch} channels average-pooled", ch)
                  for i, ch in enumerate(RESNET_STAGE_CHANNELS)]
    return [*layers, (f"softmax over {n_classes} classes", n_classes)]


# ----------------------------------------------------------------------------------------------
# Parsing and validation


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return "a list of " + {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(
            typing.get_args(tp)[0], f"{_type_name(typing.get_args(tp)[0])}s")
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """Return value converted to tp, or raise TypeError. Integers are accepted where a float is wanted."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, typing.get_args(tp)[0]) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38  # the largest and the smallest normal


def _check_value(value: Any, meta: dict, where: str, origin: str) -> None:
    origin = _who(origin, where)
    items = value if isinstance(value, list) else [value]
    for v in items:
        if meta.get("choices") and v not in meta["choices"]:
            allowed = ", ".join(_toml_value(c) if isinstance(c, bool) else str(c) for c in meta["choices"])
            raise ScenarioError(f"{origin}: {where} = {_echo(v)} is not allowed; use one of: {allowed}.")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = meta.get("lo"), meta.get("hi")
            if isinstance(v, float) and not math.isfinite(v):
                raise ScenarioError(f"{origin}: {where} = {v} must be a finite number.")
            if lo is not None and (v < lo or (meta.get("lo_open") and v == lo)):
                rel = ">" if meta.get("lo_open") else "≥"
                raise ScenarioError(f"{origin}: {where} = {v} is out of range; it must be {rel} {lo}.")
            if hi is not None and v > hi:
                raise ScenarioError(f"{origin}: {where} = {v} is out of range; it must be ≤ {hi}.")
            if isinstance(v, float) and (abs(v) > FLOAT32_MAX or 0 < abs(v) < FLOAT32_TINY):
                raise ScenarioError(f"{origin}: {where} = {v} is out of range; the engine computes in float32, so use "
                                    f"0 or a magnitude between {FLOAT32_TINY:.2g} and {FLOAT32_MAX:.3g}.")
        if isinstance(v, str):
            _check_text(v, where, origin)


# Characters a setting's text may not hold: controls (NUL, ESC, BEL, newlines), lone surrogates (undecodable bytes),
# line and paragraph separators (U+2028 splits a line for some readers). A run's name goes into every exported row
# and onto the terminal, so it must read back exactly from the CSV and show as written.
NON_TEXT = ("Cc", "Cs", "Zl", "Zp")


def _check_text(v: str, where: str, origin: str) -> None:
    bad = next((ch for ch in v if unicodedata.category(ch) in NON_TEXT
                and not (where == "description" and ch in "\n\t")), None)  # a description may span lines
    if bad is not None:
        what = (f"the byte {ord(bad) - 0xDC00:#04x}, which is not UTF-8" if 0xDC80 <= ord(bad) <= 0xDCFF
                else f"the character U+{ord(bad):04X}, which is not printable text")
        shown = _echo(v.encode("utf-8", "backslashreplace").decode("utf-8"))  # a lone surrogate as \udc80
        raise ScenarioError(f"{origin}: {where} = {shown} holds {what}; write it as plain UTF-8 text without control "
                            f"characters.")


class _Origin(str):
    """A scenario file's name that also knows which keys a `--set` gave (errors there blame `--set`)."""

    set_texts: dict[str, str]
    file: str  # the file alone, when str(self) also lists the --set overrides


def _who(origin: str, where: str) -> str:
    """Who wrote the setting `where`: the `--set` that gave it (or a table above it), else the file."""
    texts = getattr(origin, "set_texts", {})
    parts = where.split(".")
    for i in range(len(parts), 0, -1):
        text = texts.get(".".join(parts[:i]))
        if text is not None:
            return f"--set {_echo(text, raw=True)}"
    for key, text in texts.items():  # a --set that made this (unknown) section: `--set trian.lr=1e-3`
        if key.startswith(where + "."):
            return f"--set {_echo(text, raw=True)}"
    return getattr(origin, "file", str(origin))


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)  # evaluated once a class (a sweep of 20,000 values builds 20,000 scenarios)


def _build(cls: type, data: dict, prefix: str, origin: str) -> Any:
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else \
                f"; valid keys here: {', '.join(prefix + k for k in fields)}."
            raise ScenarioError(f"{_who(origin, where)}: unknown key '{where}'{hint}")
        tp = hints[key]
        if _is_section(tp):
            if not isinstance(value, dict):
                raise ScenarioError(f"{_who(origin, where)}: '{where}' must be a table ([{where}]), not "
                                    f"{_echo(value)}.")
            kwargs[key] = _build(tp, value, f"{where}.", origin)
            continue
        try:
            coerced = _coerce(value, tp)
        except TypeError:
            raise ScenarioError(f"{_who(origin, where)}: {where} = {_echo(value)} has the wrong type; it must be "
                                f"{_type_name(tp)}.") from None
        _check_value(coerced, dict(fields[key].metadata), where, origin)
        kwargs[key] = coerced
    return cls(**kwargs)


def _cross_check(sc: Scenario, origin: str) -> None:
    """Rules that involve more than one setting."""
    for est in sc.measure.estimators:
        if est not in ESTIMATORS:
            close = difflib.get_close_matches(est, ESTIMATORS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(ESTIMATORS)}."
            raise ScenarioError(f"{origin}: measure.estimators has unknown estimator {est!r}; {hint}")
    if (sc.data.dataset == "npz") != bool(sc.data.path):
        raise ScenarioError(f"{origin}: data.dataset = \"npz\" needs data.path, your .npz file of x and y "
                            f"(relative to the scenario file's folder); set it."
                            if sc.data.path == "" else f"{origin}: data.path is read only with data.dataset = "
                            f"\"npz\" (here {sc.data.dataset!r}); remove data.path or set data.dataset = \"npz\".")
    if sc.model.fixed_readout and DATA_SHAPES.get(sc.data.dataset, ((), 2))[1] != 2:  # npz: checked on loading
        raise ScenarioError(f"{origin}: model.fixed_readout needs a two-class data set (szt, saturation, boolean4).")
    if sc.model.depth > len(sc.model.hidden):
        raise ScenarioError(f"{origin}: model.depth = {sc.model.depth} is larger than model.hidden "
                            f"({len(sc.model.hidden)} layers).")
    if not sc.model.hidden or any(w < 1 for w in sc.model.hidden):
        raise ScenarioError(f"{origin}: model.hidden must be a non-empty list of positive widths.")
    check_device(sc.run.device, f"{origin}: run.device")
    _check_model_kind(sc, origin)
    if not sc.model.noise_levels or any(b < 0 for b in sc.model.noise_levels):
        raise ScenarioError(f"{origin}: model.noise_levels must be a non-empty list of β ≥ 0.")
    if 0 < sc.measure.binning.width < 1e-6:
        raise ScenarioError(f"{_who(origin, 'measure.binning.width')}: measure.binning.width = "
                            f"{sc.measure.binning.width} is too narrow (below 1e-6 every float32 value gets its own "
                            f"cell, or the cell index overflows); use 0 (bins over the range) or 1e-6 … 1e6.")
    if len(set(sc.sweep.values)) < len(sc.sweep.values):
        dup = next(v for i, v in enumerate(sc.sweep.values) if v in sc.sweep.values[:i])
        raise ScenarioError(f"{_who(origin, 'sweep.values')}: sweep.values lists {_echo(dup)} twice; list each value "
                            f"once (a run's records are keyed by its value).")
    if sc.model.noise_start >= len(sc.model.noise_levels):
        raise ScenarioError(f"{origin}: model.noise_start = {sc.model.noise_start} is out of range; "
                            f"model.noise_levels has {len(sc.model.noise_levels)} entries.")
    milestones = sc.train.lr_milestones
    if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
        raise ScenarioError(f"{origin}: train.lr_milestones = {milestones} must be increasing step counts ≥ 1, "
                            f"e.g. [32000, 48000].")
    rng = sc.measure.binning.range
    if isinstance(rng, str):
        if rng != "auto":
            raise ScenarioError(f"{origin}: measure.binning.range = {rng!r} must be \"auto\" or [lo, hi].")
    elif len(rng) != 2 or not rng[0] < rng[1]:
        raise ScenarioError(f"{origin}: measure.binning.range = {rng} must be [lo, hi] with lo < hi.")
    if sc.sweep.setting:
        path = sc.sweep.setting.split(".")
        node: Any = sc
        for part in path:
            if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
                raise ScenarioError(f"{origin}: sweep.setting = {sc.sweep.setting!r} is not a setting; "
                                    f"write it as section.key, e.g. \"train.batch_size\".")
            node = getattr(node, part)
        if dataclasses.is_dataclass(node) or sc.sweep.setting.startswith("sweep."):
            raise ScenarioError(f"{origin}: sweep.setting = {sc.sweep.setting!r} must name one setting.")
        if not sc.sweep.values:
            raise ScenarioError(f"{origin}: sweep.values is empty; list the values of {sc.sweep.setting}.")
        blame = _Origin(_who(origin, "sweep.values"))  # a bad value is the fault of whoever listed the values
        blame.file, blame.set_texts = str(blame), {}
        for v in sc.sweep.values:
            sweep_point(sc, v, blame)  # every value must give a valid scenario
    if sc.data.train_fraction >= 1.0 and sc.data.mi_points == "test":
        raise ScenarioError(f"{origin}: data.mi_points = \"test\" needs data.train_fraction < 1.")
    _check_orthonormal(sc, origin)
    _check_exact(sc, origin)
    if sc.data.dataset in IMAGE_SETS:
        _check_image_estimators(sc, origin)
        if sc.data.augment and sc.model.kind == "mlp":
            raise ScenarioError(f"{origin}: data.augment = true needs a convolutional model (model.kind = \"cnn\" "
                                f"or \"resnet32\"); the MLP path does not augment, so set data.augment = false.")
    _check_integer_sizes(sc, origin)
    _check_seed_ids(sc, origin)
    _check_estimators_need_noise(sc, origin)
    _check_training_points(sc, origin)


def check_device(name: str, origin: str = "run.device") -> None:
    """Refuse a device name that is not auto, cpu, cuda or cuda:N (whether CUDA is there is the engine's check)."""
    name = name.strip().lower()
    index = name[5:] if name.startswith("cuda:") else "0"
    if name not in ("auto", "cpu", "cuda") and not (name.startswith("cuda:") and index.isdigit()):
        raise ScenarioError(f"{origin} = {name!r} is not a device; use auto, cpu, cuda or cuda:N.")


def _check_orthonormal(sc: Scenario, origin: str) -> None:
    """The orthonormality penalty: defined on the MLP's weight matrices, on layers that exist."""
    m = sc.model
    if m.orthonormal <= 0:
        return
    # Convolutional models' weights are kernels (and, for the ResNet, only some layers): the Gram of a
    # kernel is not the layer's map, so the penalty is defined for the MLP only.
    if m.kind != "mlp":
        raise ScenarioError(f"{origin}: model.orthonormal works for the MLP only; set it to 0 for model.kind = "
                            f"{m.kind!r}.")
    n_layers = len(m.hidden_widths) + 1  # hidden layers + the output layer
    bad = [layer for layer in m.orthonormal_layers if not 1 <= layer <= n_layers]
    if bad:
        raise ScenarioError(f"{origin}: model.orthonormal_layers = {list(m.orthonormal_layers)} names layer "
                            f"{bad[0]}, but the network has layers 1..{n_layers} (the last is the output); "
                            f"list layers in that range or leave it empty for every hidden layer.")


def _check_exact(sc: Scenario, origin: str) -> None:
    """The exact estimator integrates a 1-D Gaussian mixture: the first hidden layer must have one unit."""
    if "exact" not in sc.measure.estimators:
        return
    if sc.model.kind == "mlp":
        first = sc.model.hidden_widths[0]
        if first != 1:
            raise ScenarioError(f"{origin}: measure.estimators has \"exact\", which needs a first hidden layer of "
                                f"1 unit (model.hidden[0] = {first}); remove it or use a 1-unit layer.")
        return
    shape, n_classes = DATA_SHAPES[sc.data.dataset]
    what, first = measured_layers(sc, shape, n_classes)[0]
    raise ScenarioError(f"{origin}: measure.estimators has \"exact\", which needs a first hidden layer of 1 unit "
                        f"(layer 1 of the {sc.model.kind} is a {what} of {first} units); remove it or use an MLP "
                        f"with a 1-unit layer.")


def _check_image_estimators(sc: Scenario, origin: str) -> None:
    """Refuse an MI estimator asked for on an image model's layer wider than its max_width.

    Binning: with 30 bins per unit, two images share a cell only if every one of d units agrees, so
    on a wide layer each of the n points gets its own cell and I(X;T) = log2 n whatever the network
    does (default limit 64 units). KDE and SP: their error grows exponentially with d, and on a
    conv map of ~10^4 units any two images lie many kernel widths apart (default limit 8192). The
    limits are scenario settings (measure.<estimator>.max_width), so a scenario can opt in.
    """
    limits = {"binning": sc.measure.binning.max_width, "kde": sc.measure.kde.max_width,
              "sp": sc.measure.sp.max_width}
    shape, n_classes = DATA_SHAPES[sc.data.dataset]
    layers = measured_layers(sc, shape, n_classes)
    for est in sc.measure.estimators:
        if est not in limits:
            continue
        for index, (what, width) in enumerate(layers, start=1):
            if width > limits[est]:
                why = ("every measured image would get a bin cell of its own, so I(X;T) = log2 n says nothing"
                       if est == "binning" else "the estimate there is set by the dimension, not by the network")
                raise ScenarioError(
                    f"{origin}: measure.estimators has \"{est}\" but layer {index} of the {sc.model.kind} "
                    f"({what}) has {width} units, more than measure.{est}.max_width = {limits[est]}, and "
                    f"{why}; remove \"{est}\" from measure.estimators or raise measure.{est}.max_width.")


def _check_model_kind(sc: Scenario, origin: str) -> None:
    """The convolutional models: image data, their own initialisation, and the sizes and activation they read."""
    m = sc.model
    if m.kind == "mlp":
        return
    if sc.data.dataset not in IMAGE_SETS:
        raise ScenarioError(f"{origin}: model.kind = \"{m.kind}\" needs image data (data.dataset = mnist, "
                            f"cifar10 or cifar100), not {sc.data.dataset}.")
    if m.init_weight != 0.0 or m.init_bias != 0.0 or m.depth:
        raise ScenarioError(f"{origin}: model.init_weight, model.init_bias and model.depth apply to MLPs only; "
                            f"leave them at 0 for model.kind = \"{m.kind}\".")
    _, h, w = DATA_SHAPES[sc.data.dataset][0]
    if h != w:
        raise ScenarioError(f"{origin}: model.kind = \"{m.kind}\" needs square images, not {h}×{w}.")
    if m.kind == "cnn":
        if len(m.hidden) != 3:
            raise ScenarioError(f"{origin}: model.kind = \"cnn\" reads model.hidden as [conv-1 channels, conv-2 "
                                f"channels, dense units] but it has {len(m.hidden)} entries ({m.hidden}); write e.g. "
                                f"model.hidden = [32, 64, 128].")
        if m.activation not in CNN_ACTIVATIONS:
            raise ScenarioError(f"{origin}: model.activation = \"{m.activation}\" is not available for the CNN; "
                                f"use \"tanh\" or \"relu\".")
    elif m.activation != "relu":  # resnet32
        raise ScenarioError(f"{origin}: model.kind = \"resnet32\" is a ReLU network (He et al. 2016) but "
                            f"model.activation = \"{m.activation}\"; set model.activation = \"relu\".")


# Bounds the machine imposes (separate small rules, so that other rules merge beside them).
SEED_ID_LIMIT = 2**32  # the counter-based RNG hashes 32 bits of a seed id (ibtui/engine/rng.py)
INT64_LIMIT = 2**63  # torch and numpy count in 64-bit integers
MAX_EPOCHS = 10**7  # the snapshot schedule searches over arrays as long as the run (engine/schedule.py)
MAX_SNAPSHOTS = 10**6  # the snapshot schedule is a list of epochs
NEEDS_NOISE = {"sp": "sample propagation (SP)", "exact": "the exact quadrature"}
NO_TEST_SET = ("loss_test", "acc_test", "gen_gap", "error_gap")
SPLIT_POINTS = {"szt": lambda sc: 4096, "boolean4": lambda sc: sc.data.samples}  # data sets split by train_fraction


def _integers(obj: Any, prefix: str = "") -> typing.Iterator[tuple[str, int]]:
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from _integers(v, f"{prefix}{f.name}.")
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, int) and not isinstance(x, bool):
                yield f"{prefix}{f.name}", x


def _check_integer_sizes(sc: Scenario, origin: str) -> None:
    """No integer beyond what 64-bit counters hold; epochs and snapshots within what a schedule can list."""
    for where, v in _integers(sc):
        if abs(v) >= INT64_LIMIT:
            raise ScenarioError(f"{_who(origin, where)}: {where} = {v} is too large for the machine's 64-bit integers; "
                                f"use a value below 2**63.")
    if sc.run.epochs > MAX_EPOCHS:
        raise ScenarioError(f"{_who(origin, 'run.epochs')}: run.epochs = {sc.run.epochs} is more than ibtui schedules "
                            f"(at most {MAX_EPOCHS:,} epochs); use fewer.")
    if sc.measure.snapshots > MAX_SNAPSHOTS:
        raise ScenarioError(f"{_who(origin, 'measure.snapshots')}: measure.snapshots = {sc.measure.snapshots} is more than the "
                            f"{MAX_SNAPSHOTS:,} snapshots ibtui schedules; use fewer.")


def _check_seed_ids(sc: Scenario, origin: str) -> None:
    """Seed ids first_seed … first_seed+seeds−1 must stay below 2**32, the ids the RNG tells apart."""
    last = sc.run.first_seed + sc.run.seeds - 1
    if last >= SEED_ID_LIMIT:
        raise ScenarioError(f"{origin}: seed ids run.first_seed = {sc.run.first_seed} … {last} reach past "
                            f"{SEED_ID_LIMIT - 1}, the largest id the random streams tell apart (32 bits); "
                            f"lower run.first_seed or run.seeds.")


def _check_estimators_need_noise(sc: Scenario, origin: str) -> None:
    """SP and the exact quadrature measure a noisy network: without noise they would write no MI at all."""
    if any(b > 0 for b in sc.model.noise_levels):
        return
    for est in sc.measure.estimators:
        if est in NEEDS_NOISE:
            raise ScenarioError(f"{origin}: measure.estimators has \"{est}\", {NEEDS_NOISE[est]}, which needs a "
                                f"noisy network, but model.noise_levels = {_toml_value(sc.model.noise_levels)}; "
                                f"add a level β > 0 (e.g. [0.01]) or remove \"{est}\".")


def _split_sizes(sc: Scenario) -> tuple[int, int] | None:
    """(training, test) points of a data set split by data.train_fraction; None where the data decides."""
    n_of = SPLIT_POINTS.get(sc.data.dataset)
    if n_of is None:
        return None
    n = n_of(sc)
    n_train = int(round(sc.data.train_fraction * n))
    return n_train, n - n_train


def _check_training_points(sc: Scenario, origin: str) -> None:
    sizes = _split_sizes(sc)
    if sizes is not None and sizes[0] == 0:
        raise ScenarioError(f"{origin}: data.train_fraction = {sc.data.train_fraction} leaves no training "
                            f"points of {sum(sizes)}; raise it.")


def scenario_warnings(sc: Scenario) -> list[str]:
    """Settings that run but leave quantities empty, one sentence each (stderr, and a note in the app)."""
    out = []
    sizes = _split_sizes(sc)
    no_test = (sizes is not None and sizes[1] == 0) or sc.data.dataset == "saturation"
    if no_test:
        why = ("data.dataset = \"saturation\" has no test set" if sc.data.dataset == "saturation" else
               f"data.train_fraction = {_toml_value(sc.data.train_fraction)} leaves no test set")
        out.append(f"{why}: {', '.join(NO_TEST_SET)} will be empty (NaN) in every snapshot.")
    return out


SWEEP_NONE = SweepSettings()


def sweep_point(sc: Scenario, value: float, origin: str = "<sweep>") -> Scenario:
    """The scenario of one sweep value: the swept setting replaced (ints stay ints), the sweep removed."""
    data = to_dict(dataclasses.replace(sc, sweep=SWEEP_NONE))  # not a copy of every value per point (quadratic)
    path = sc.sweep.setting.split(".")
    node = data
    for part in path[:-1]:
        node = node[part]
    old = node[path[-1]]
    if isinstance(old, bool) or isinstance(old, (str, list)):
        raise ScenarioError(f"{origin}: sweep.setting = {sc.sweep.setting!r} is not numeric; only numbers sweep.")
    if isinstance(old, int):
        if float(value) != int(value):
            raise ScenarioError(f"{origin}: sweep.values has {value} but {sc.sweep.setting} is an integer.")
        value = int(value)
    node[path[-1]] = value
    data["sweep"] = {"setting": "", "values": []}
    out = _build(Scenario, data, "", origin)
    _cross_check(out, origin)
    return out


KEY_PART = re.compile(r"[A-Za-z0-9_-]+")  # a TOML bare key: every setting's name is one


def check_key(key: str, text: str) -> str:
    """A `--set` key (or an API `set` key) as a dotted name of bare keys, else the one sentence; `text` is the
    whole `--set` as given, for the message."""
    parts = [part.strip() for part in key.split(".")] if isinstance(key, str) else [""]
    if not all(KEY_PART.fullmatch(part) for part in parts):
        raise ScenarioError(f"--set {_echo(text, raw=True)}: the key {_echo(key, raw=True)} is not a dotted name of "
                            f"settings (letters, digits, _ and - between dots); write it as section.key=value, e.g. "
                            f"--set train.lr=1e-3.")
    return ".".join(parts)


def _parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` as (key parts, value): the key a dotted name of bare TOML keys, the value a TOML literal
    (or a bare word, taken as a string). The API's `set` comes here too (api.overrides), so both refuse alike."""
    if not isinstance(text, str):
        raise ScenarioError(f"--set {_echo(text, raw=True)}: a setting is given as the text section.key=value, not "
                            f"{type(text).__name__}; e.g. --set train.lr=1e-3.")
    bad = next((ch for ch in text if 0xD800 <= ord(ch) <= 0xDFFF), None)
    if bad is not None:  # a byte that is not UTF-8 in the command line (Python keeps it as a lone surrogate)
        shown = "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else
                        f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        what = f"the byte {ord(bad) - 0xDC00:#04x}" if ord(bad) >= 0xDC80 else f"a lone surrogate U+{ord(bad):04X}"
        raise ScenarioError(f"--set {_echo(shown, raw=True)}: holds {what}, which is not UTF-8 text; write settings "
                            f"as UTF-8.")
    if "=" not in text:
        raise ScenarioError(f"--set {_echo(text, raw=True)}: write it as section.key=value, e.g. --set train.lr=1e-3.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not all(part.strip() for part in key.split(".")):
        raise ScenarioError(f"--set {_echo(text, raw=True)}: the key {_echo(key, raw=True)} has an empty part; write "
                            f"it as section.key=value, e.g. --set train.lr=1e-3.")
    key = check_key(key, text)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: take it as a string (e.g. --set train.optimizer=sgd)
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Set `section.key=value` pairs (values in TOML syntax) into the raw scenario dict."""
    for text in overrides:
        path, value = _parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ScenarioError(f"--set {text!r}: '{part}' is a setting, not a section.")
        node[path[-1]] = value
    return data


def _resolve_data_dir(data: dict, folder: Path) -> None:
    """A relative data.dir (or data.path) written in a scenario file names a place relative to that file's folder."""
    section = data.get("data")
    for key in ("dir", "path"):
        raw = section.get(key) if isinstance(section, dict) else None
        if isinstance(raw, str) and raw and not Path(raw).expanduser().is_absolute():
            section[key] = str(folder / raw)


def parse_scenario(text: str, origin: str = "<scenario>", overrides: list[str] = (),
                   relative_to: Path | None = None) -> Scenario:
    """Parse TOML text (plus --set overrides) into a validated Scenario.

    With `relative_to` (the scenario file's folder), a relative data.dir in the text is taken relative
    to it; a data.dir given by --set is used as written (relative to the working directory). An error in a
    setting a `--set` gave names that `--set`; an error in a rule between settings names the file and the
    `--set`s (either may be the one to change).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{origin}: TOML syntax error: {exc}; fix that line.") from None
    except RecursionError:
        raise ScenarioError(f"{origin}: the TOML nests arrays or tables too deeply to read; "
                            f"a scenario is a few flat tables.") from None
    if relative_to is not None:
        _resolve_data_dir(data, Path(relative_to))
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    who = _Origin(origin)
    who.set_texts = {".".join(_parse_override(t)[0]): t for t in overrides}
    sc = _build(Scenario, data, "", who)
    both = _Origin(f"{origin} with --set {', '.join(overrides)}" if overrides else origin)
    both.file = origin
    both.set_texts = who.set_texts  # a rule about one setting still names the --set that gave it
    _cross_check(sc, both)
    return sc


BUNDLED = Path(__file__).resolve().parent / "scenarios"  # shipped in the wheel


def bundled_scenarios() -> dict[str, Path]:
    """The scenarios that come with ibtui, by name (file name without .toml)."""
    return {p.stem: p for p in sorted(BUNDLED.glob("*.toml"))}


def find_scenario(spec: str | Path) -> Path:
    """A scenario file: `spec` as a path if it is a file, else the bundled scenario of that name."""
    from ibtui.files import check_input

    p = Path(spec)
    try:
        os.stat(p)
        there = True
    except FileNotFoundError:
        there = False
    except (OSError, ValueError):  # permission denied, a name too long, NUL: check_input says which
        there = True
    if there:
        check_input(p, "scenario", ScenarioError)  # a folder, FIFO, device, long name or denied folder: a sentence
        return p
    bundled = bundled_scenarios()
    name = p.name[:-5] if p.name.endswith(".toml") else p.name
    if p.parent == Path(".") and name in bundled:
        return bundled[name]
    close = difflib.get_close_matches(name, list(bundled), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ScenarioError(f"{spec}: no such scenario file or bundled scenario{hint}; give the path of a .toml file "
                        f"or a bundled name (`ibtui scenarios` lists them).")


def scenario_description(path: Path) -> str:
    """The one-line `description` of a scenario file, read without validating the rest."""
    try:
        return str(tomllib.loads(path.read_text(encoding="utf-8")).get("description", ""))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return ""


MAX_SCENARIO_BYTES = 1 << 20  # a scenario is a few kB of TOML; anything this large is another kind of file


def read_scenario_text(p: Path) -> str:
    """A scenario file's text; ScenarioError (one sentence) if it cannot be read or is not UTF-8 text."""
    try:
        size = p.stat().st_size
        if size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{p}: {size:,} bytes is far too large for a scenario file (a few kB of TOML); "
                                f"is it the right file?")
        raw = p.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read it ({exc.strerror or exc}); check the path and its permissions.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); a scenario "
                            f"is a TOML file saved as UTF-8: re-save it as UTF-8 or check that it is the right file.") from None
    if "\x00" in text:
        raise ScenarioError(f"{p}: holds NUL bytes, so it is a binary file, not a TOML scenario; check the path.")
    return text


def load_scenario(path: str | Path, overrides: list[str] = ()) -> Scenario:
    p = find_scenario(path)
    return parse_scenario(read_scenario_text(p), str(p), overrides, relative_to=p.absolute().parent)


def with_changes(sc: Scenario, changes: dict[str, Any], origin: str = "<changes>") -> Scenario:
    """A copy of `sc` with dotted settings replaced (CLI shortcuts, torchrun shards), validated again."""
    data = to_dict(sc)
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    out = _build(Scenario, data, "", origin)
    _cross_check(out, origin)
    return out


def to_dict(sc: Any) -> dict:
    return dataclasses.asdict(sc)


def _echo(v: Any, raw: bool = False) -> str:
    """A value (or raw --set text) as an error message echoes it: TOML spelling, one line, at most 80 characters."""
    text = (str(v) if raw else _toml_value(v)).replace("\n", "\\n").replace("\r", "\\r")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate as \udc80
    return text if len(text) <= 80 else text[:77] + "…"


def _toml_value(v: Any) -> str:
    """A value as TOML spells it (`true`, `"text"`, `[1, 2]`, `{a = 1}`): settings and error messages echo it so."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a valid TOML basic string: quotes, backslashes, controls escaped
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if hasattr(v, "isoformat"):  # TOML dates and times
        return v.isoformat()
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return str(v)


def _swept_is_int(sc: Scenario) -> bool:
    """Whether the swept setting is an integer (its values are then written as integers)."""
    node: Any = sc
    for part in sc.sweep.setting.split(".") if sc.sweep.setting else ():
        node = getattr(node, part, None)
    return bool(sc.sweep.setting) and isinstance(node, int) and not isinstance(node, bool)


def to_toml(sc: Scenario) -> str:
    """The fully resolved scenario as TOML, every setting with its help line as a comment."""
    lines: list[str] = []

    def emit(obj: Any, prefix: str) -> None:
        sections = []
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                sections.append((f.name, v))
                continue
            if obj is sc.sweep and f.name == "values" and _swept_is_int(sc):  # [32, 64], not [32.0, 64.0]
                v = [int(x) for x in v]
            lines.append(f"{f.name} = {_toml_value(v)}  # {f.metadata.get('help', '')}")
        for name, sub in sections:
            lines.append("")
            lines.append(f"[{prefix}{name}]")
            emit(sub, f"{prefix}{name}.")

    emit(sc, "")
    return "\n".join(lines) + "\n"
