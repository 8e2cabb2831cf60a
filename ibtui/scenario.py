"""Scenario files: TOML → a frozen dataclass tree, validated in one place.

Every setting a result depends on lives here, with its default written once. Bad input raises
ScenarioError with one sentence naming the file, the key and the fix; the CLI prints it and exits 2.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
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
    cuda_graph: bool = _opt(False, "MLP on a GPU: capture a training epoch as a CUDA graph and replay it (far "
                                   "fewer kernel launches; epochs the dynamics probe watches run eagerly)")


@dataclass(frozen=True)
class DataSettings:
    dataset: str = _opt("szt", "the data set: szt (12-bit task), saturation (the 4-point single-neuron toy), "
                                "boolean4 (the survey's 4-bit task), mnist, cifar10, cifar100",
                        choices=("szt", "saturation", "boolean4", "mnist", "cifar10", "cifar100"))
    dir: str = _opt("", "folder holding image data (MNIST IDX / CIFAR python batches); overridden by --data-dir, "
                        "falls back to $IBTUI_DATA")
    samples: int = _opt(4096, "boolean4: number of samples drawn", lo=1)
    label_noise: float = _opt(0.07, "boolean4: probability that a label is flipped", lo=0.0, hi=0.5)
    mi_subset: int = _opt(0, "measure MI on a fixed random subset of this many of the chosen points (0 = all)",
                          lo=0)
    augment: bool = _opt(False, "CIFAR: random crops with 4-pixel padding and horizontal flips while training")
    split: str = _opt("random", "random (seeded) or unshuffled (the original IDNNs split, biased on SZT)",
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
                                             "the app cycles through them")
    noise_start: int = _opt(0, "index into noise_levels used at the start", lo=0)
    init_weight: float = _opt(0.0, "if not 0: every weight starts at this value (toys and sweeps)")
    init_bias: float = _opt(0.0, "every bias starts at this value")
    fixed_readout: bool = _opt(False, "two classes only: the output layer is fixed at logits (−mean T, +mean T) "
                                      "of the last hidden layer and not trained (the saturation toy's readout)")
    orthonormal: float = _opt(0.0, "strength λ of the orthonormality penalty λ·‖WᵀW − I‖²_F (Parseval-style; "
                                   "0 = off)", lo=0.0)
    orthonormal_layers: list[int] = _opt([], "layers (1-based) the penalty applies to; empty = every hidden layer")


@dataclass(frozen=True)
class TrainSettings:
    optimizer: str = _opt("adam", "adam or sgd", choices=("adam", "sgd"))
    lr: float = _opt(4e-4, "learning rate", lo=0.0, lo_open=True)
    batch_size: int = _opt(512, "mini-batch size (the last batch of an epoch may be smaller)", lo=1)
    momentum: float = _opt(0.0, "SGD momentum", lo=0.0, hi=1.0)
    weight_decay: float = _opt(0.0, "L2 weight decay", lo=0.0)


@dataclass(frozen=True)
class BinningSettings:
    bins: int = _opt(30, "number of equal bins over the range (ignored when width > 0)", lo=1)
    range: Union[list[float], str] = _opt([-1.0, 1.0],
                                          "[lo, hi] for every layer, or \"auto\": activation-aware "
                                          "([-1,1] tanh, [0,1] sigmoid/softmax, [min,max] per seed for relu/linear)")
    width: float = _opt(0.0, "fixed bin width (0 = use bins over range)", lo=0.0)
    max_width: int = _opt(64, "image data: refuse to bin a layer wider than this (every point gets its own cell)",
                          lo=1)


@dataclass(frozen=True)
class KdeSettings:
    noise_variance: float = _opt(1e-3, "σ² of the Gaussian kernel (Saxe et al.: 1e-3 on SZT, 0.1 on MNIST)",
                                 lo=0.0, lo_open=True)
    points: int = _opt(0, "measure on a fixed random subset of this many MI points (0 = all)", lo=0)
    max_width: int = _opt(8192, "image data: refuse KDE on a layer wider than this", lo=1)


@dataclass(frozen=True)
class SpSettings:
    samples: int = _opt(8, "noisy passes per input: the components of each conditional mixture", lo=1)
    mc: int = _opt(4, "Monte Carlo draws per input", lo=1)
    points: int = _opt(512, "evaluate at a fixed random subset of this many inputs (0 = all)", lo=0)
    max_width: int = _opt(8192, "image data: refuse SP on a layer wider than this", lo=1)


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
    estimators: list[str] = _opt(["binning"], "MI estimators computed at every snapshot: binning, kde, sp "
                                              "(sp needs a noisy network: model.noise_levels > 0), exact "
                                              "(quadrature; a noisy first layer of 1 unit)")
    binning: BinningSettings = field(default_factory=BinningSettings)
    kde: KdeSettings = field(default_factory=KdeSettings)
    sp: SpSettings = field(default_factory=SpSettings)
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


ESTIMATORS = ("binning", "kde", "sp", "exact")


# ----------------------------------------------------------------------------------------------
# Parsing and validation


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}s"
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


def _check_value(value: Any, meta: dict, where: str, origin: str) -> None:
    items = value if isinstance(value, list) else [value]
    for v in items:
        if meta.get("choices") and v not in meta["choices"]:
            raise ScenarioError(f"{origin}: {where} = {v!r} is not allowed; use one of: "
                                f"{', '.join(map(str, meta['choices']))}.")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            lo, hi = meta.get("lo"), meta.get("hi")
            if isinstance(v, float) and not math.isfinite(v):
                raise ScenarioError(f"{origin}: {where} = {v} must be a finite number.")
            if lo is not None and (v < lo or (meta.get("lo_open") and v == lo)):
                rel = ">" if meta.get("lo_open") else "≥"
                raise ScenarioError(f"{origin}: {where} = {v} is out of range; it must be {rel} {lo}.")
            if hi is not None and v > hi:
                raise ScenarioError(f"{origin}: {where} = {v} is out of range; it must be ≤ {hi}.")


def _build(cls: type, data: dict, prefix: str, origin: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else \
                f"; valid keys here: {', '.join(prefix + k for k in fields)}."
            raise ScenarioError(f"{origin}: unknown key '{where}'{hint}")
        tp = hints[key]
        if _is_section(tp):
            if not isinstance(value, dict):
                raise ScenarioError(f"{origin}: '{where}' must be a table ([{where}]), not {value!r}.")
            kwargs[key] = _build(tp, value, f"{where}.", origin)
            continue
        try:
            coerced = _coerce(value, tp)
        except TypeError:
            raise ScenarioError(f"{origin}: {where} = {value!r} has the wrong type; it must be "
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
    if sc.model.fixed_readout and sc.data.dataset not in ("szt", "saturation", "boolean4"):
        raise ScenarioError(f"{origin}: model.fixed_readout needs a two-class data set (szt, saturation, boolean4).")
    if sc.model.depth > len(sc.model.hidden):
        raise ScenarioError(f"{origin}: model.depth = {sc.model.depth} is larger than model.hidden "
                            f"({len(sc.model.hidden)} layers).")
    if not sc.model.hidden or any(w < 1 for w in sc.model.hidden):
        raise ScenarioError(f"{origin}: model.hidden must be a non-empty list of positive widths.")
    if not sc.model.noise_levels or any(b < 0 for b in sc.model.noise_levels):
        raise ScenarioError(f"{origin}: model.noise_levels must be a non-empty list of β ≥ 0.")
    if sc.model.noise_start >= len(sc.model.noise_levels):
        raise ScenarioError(f"{origin}: model.noise_start = {sc.model.noise_start} is out of range; "
                            f"model.noise_levels has {len(sc.model.noise_levels)} entries.")
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
        for v in sc.sweep.values:
            sweep_point(sc, v, origin)  # every value must give a valid scenario
    if sc.data.train_fraction >= 1.0 and sc.data.mi_points == "test":
        raise ScenarioError(f"{origin}: data.mi_points = \"test\" needs data.train_fraction < 1.")


def sweep_point(sc: Scenario, value: float, origin: str = "<sweep>") -> Scenario:
    """The scenario of one sweep value: the swept setting replaced (ints stay ints), the sweep removed."""
    data = to_dict(sc)
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


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ScenarioError(f"--set {text!r}: write it as section.key=value, e.g. --set train.lr=1e-3.")
    key, raw = text.split("=", 1)
    key = key.strip()
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


def parse_scenario(text: str, origin: str = "<scenario>", overrides: list[str] = ()) -> Scenario:
    """Parse TOML text (plus --set overrides) into a validated Scenario."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{origin}: TOML syntax error: {exc}; fix that line.") from None
    data = apply_overrides(data, list(overrides))
    sc = _build(Scenario, data, "", origin)
    _cross_check(sc, origin)
    return sc


BUNDLED = Path(__file__).resolve().parent / "scenarios"  # shipped in the wheel


def bundled_scenarios() -> dict[str, Path]:
    """The scenarios that come with ibtui, by name (file name without .toml)."""
    return {p.stem: p for p in sorted(BUNDLED.glob("*.toml"))}


def find_scenario(spec: str | Path) -> Path:
    """A scenario file: `spec` as a path if it is a file, else the bundled scenario of that name."""
    p = Path(spec)
    if p.is_file():
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


def load_scenario(path: str | Path, overrides: list[str] = ()) -> Scenario:
    p = find_scenario(path)
    return parse_scenario(p.read_text(encoding="utf-8"), str(p), overrides)


def with_changes(sc: Scenario, changes: dict[str, Any]) -> Scenario:
    """A copy of `sc` with dotted settings replaced (used for sweeps and CLI shortcuts)."""
    data = to_dict(sc)
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return _build(Scenario, data, "", "<changes>")


def to_dict(sc: Any) -> dict:
    return dataclasses.asdict(sc)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
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
