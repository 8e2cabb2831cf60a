"""THE export reader: `load(path) -> Run`, the records of `ibtui SCENARIO --export run.csv` and its sidecar.

The replay (`ibtui view`), the figures (`ibtui plot`), the reproduction report and the Python API
(`ibtui.load`) all read an export through this module: `column_index` maps the header's names to
positions (any order; `step` and `sweep` optional, so older files read too), `csv_rows` splits the text into
records, one a line (a stray quote is an error naming its line, not the rest of the file swallowed), `parse_row`
turns one row into a Record (None for a row without its numbers, skipped), and `load` reads the complete lines
of a finished or still-written file into a `Run`. numpy only; pandas only when `Run.frame()` is called.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from ibtui.errors import ExportError, IbtuiError
from ibtui.files import check_input
from ibtui.quantities import MI_TY, MI_XT
from ibtui.records import FIELDS, Record, epoch_text, parse_epoch
from ibtui.sinks.csv import sidecar_path

# A field as long as ibtui can write (a scenario `name` of any length): the csv module's 131,072 is too few.
csv.field_size_limit(2**31 - 1)

HINT = "give the CSV written by `ibtui SCENARIO --export FILE`"


def column_index(header: list[str]) -> dict[str, int] | None:
    """Column positions from a header row (any order; `step` and `sweep` optional), None if not a header."""
    idx = {name: i for i, name in enumerate(header)}
    required = ("run", "seed", "epoch", "layer", "quantity", "estimator", "value")
    return idx if all(k in idx for k in required) else None


def csv_rows(text: str, path: str | Path, skip_bad: bool = False):
    """(line number, fields) of each record of an export's text (the first is its header). A quote that never
    closes, or one that makes a record span lines with another number of fields than the header's (a stray `"`:
    the csv module would take the rest of the file as one field), is an ExportError naming the line where the
    record starts; with `skip_bad` (a live replay) that line alone is skipped. A quoted name holding a newline
    spans lines and reads back as written; U+2028 is not a line end."""
    start, width, lines = 0, None, None  # lines read before the current reader; the header's field count
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    done = 0  # lines this reader has read
    while True:
        why = ""
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            why = f"{exc}; a stray quote?"
        else:
            if width is None:
                width = len(row)
            elif reader.line_num > done + 1 and len(row) != width:
                why = "a quote opens a field that does not close on that line: a stray quote?"
        if not why:
            done = reader.line_num
            yield start + done, row
            continue
        if not skip_bad:
            raise ExportError(f"{path}: line {start + done + 1} is not valid CSV ({why}); {HINT}.")
        lines = text.split("\n") if lines is None else lines  # go on from the line after the bad one
        start += done + 1
        reader = csv.reader(io.StringIO("\n".join(lines[start:]), newline=""), strict=True)
        done = 0


def parse_row(row: list[str], idx: dict[str, int]) -> Record | None:
    """One CSV row as a Record; None for a malformed row (skipped, never fatal)."""
    if len(row) < len(idx):
        return None
    try:
        seed = row[idx["seed"]]
        s: int | str = int(seed) if seed.lstrip("-").isdigit() else seed
        step = row[idx["step"]] if "step" in idx else ""
        return Record(row[idx["run"]], s, parse_epoch(row[idx["epoch"]]), int(step or 0), row[idx["layer"]],
                      row[idx["quantity"]], row[idx["estimator"]], float(row[idx["value"]]),
                      row[idx["sweep"]] if "sweep" in idx else "")
    except ValueError:
        return None


def read_meta(path: str | Path) -> dict | None:
    """The sidecar of an export, read through `check_meta`; None when absent, unreadable, caught mid-replace, or
    not a plain file (never a FIFO or device)."""
    try:
        if not sidecar_path(path).is_file():
            return None
        return check_meta(json.loads(sidecar_path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        return None


# The sidecar's schema (sinks/csv.py writes it): a value of another type is dropped, as if absent.
META_TYPES = {"format": str, "columns": list, "csv": str, "scenario": dict, "scenario_toml": str, "versions": dict,
              "command": str, "started": str, "ended": (str, type(None)), "finished": bool, "writer": dict,
              "run_id": str, "alive": str, "run_info": dict, "sweep_points": list, "rows": int, "device": str,
              "distributed": dict, "resumes": list,
              "monitor": dict}  # monitor: what ibtui.watch was given (ibtui/monitor.py)


def check_meta(meta) -> dict | None:
    """A sidecar checked like a scenario: its scenario parsed again from `scenario_toml` (the scenario layer's
    rules; the dict is rebuilt from it), `run_info` and `sweep_points` checked against RunInfo's field types,
    every other key against META_TYPES. What fails is dropped, so a hand-edited sidecar never crashes a reader."""
    if not isinstance(meta, dict):
        return None
    out = {k: v for k, v in meta.items() if k in META_TYPES and isinstance(v, META_TYPES[k])
           and not (META_TYPES[k] is int and isinstance(v, bool))}
    out.pop("scenario", None)
    if "scenario_toml" in out:
        from ibtui.scenario import parse_scenario, to_dict

        try:
            out["scenario"] = to_dict(parse_scenario(out["scenario_toml"], origin="the sidecar's scenario"))
        except (IbtuiError, ValueError, TypeError, RecursionError):
            out.pop("scenario_toml")
    if "run_info" in out and not run_info_fits(out["run_info"]):
        out.pop("run_info")
    if "sweep_points" in out:
        out["sweep_points"] = [p for p in out["sweep_points"] if isinstance(p, dict) and run_info_fits(p)]
    if "writer" in out and not isinstance(out["writer"].get("pid"), int):
        out.pop("writer")
    return out


def run_info_fits(d: dict) -> bool:
    """Whether a sidecar's run_info has RunInfo's required fields, each of its annotated type."""
    import dataclasses

    from ibtui.records import RunInfo

    fields = {f.name: f for f in dataclasses.fields(RunInfo)}
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    return all(n in d for n in required) and all(_fits(d[k], f.type) for k, f in fields.items() if k in d)


def _fits(value, kind) -> bool:
    """Whether a JSON value fits a RunInfo field's annotation (str, int, float, dict, tuple[X, ...])."""
    kind = str(kind)
    if kind.startswith("tuple["):
        item = kind[6:].split(",")[0].strip()
        return isinstance(value, (list, tuple)) and all(_fits(v, item) for v in value)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "dict":  # estimator_settings: label → one-line description
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    if kind == "dict[str, int]":  # estimator_points: label → a count of points
        return isinstance(value, dict) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                               for v in value.values())
    return isinstance(value, {"str": str}.get(kind, object))


class Curve:
    """One series sorted by epoch: epoch, step and value arrays."""

    def __init__(self, rows: list[tuple[int, int, float]]):
        rows.sort()
        a = np.array(rows, dtype=float).reshape(-1, 3)
        self.epoch, self.step, self.value = a[:, 0], a[:, 1], a[:, 2]

    def x(self, axis: str) -> np.ndarray:
        return self.step if axis == "step" else self.epoch

    def last_finite(self) -> float:
        v = self.value[np.isfinite(self.value)]
        return float(v[-1]) if len(v) else math.nan


def layer_key(layer: str):
    """Numeric order of layer labels: "2" < "10", pairs "1-2" by their parts."""
    return tuple(int(p) if p.isdigit() else 0 for p in layer.split("-"))


class Run:
    """The records of an export, indexed by (sweep, quantity, estimator, layer) → seed → Curve, and its sidecar.

    The researcher's face: `meta`, `layers`, `estimators`, `seeds`, `sweeps`, `quantities`, `series(…)` and
    `frame()`. The figures use the per-sweep queries (`has`, `layers_of`, `estimators_of`, `curves`, …).
    """

    def __init__(self, path: Path, rows: dict, meta: dict | None, sweeps: list[str]):
        self.path = path
        self.meta = meta or {}
        self.sweeps = sweeps  # in order of appearance; [""] for a plain run
        self.rows = rows  # (sweep, quantity, estimator, layer, seed) → [(epoch, step, value)]
        self._curves: dict = {}
        self._by_series = defaultdict(list)  # (sweep, quantity, estimator, layer) → [seed]
        self.keys = defaultdict(set)  # (sweep, quantity) → {(estimator, layer)}
        for (sweep, q, est, layer, seed) in rows:
            self.keys[(sweep, q)].add((est, layer))
            self._by_series[(sweep, q, est, layer)].append(seed)

    def __repr__(self) -> str:
        return (f"Run({self.name!r}: {len(self.seeds)} seeds, layers {self.layers}, estimators {self.estimators}"
                f"{', sweeps ' + str(self.sweeps) if any(self.sweeps) else ''}, up to epoch {epoch_text(self.last_epoch())})")

    # -- the researcher's view (every sweep point together)
    @property
    def name(self) -> str:
        return self.scenario().get("name") or self.run_name or self.path.stem

    @property
    def quantities(self) -> list[str]:
        return sorted({q for (_, q) in self.keys})

    @property
    def layers(self) -> list[str]:
        """The layers MI was measured on (else every layer a quantity names), in numeric order."""
        mi = {lay for (_, q), pairs in self.keys.items() if q in (MI_XT, MI_TY) for _, lay in pairs}
        every = {lay for pairs in self.keys.values() for _, lay in pairs if lay and "-" not in lay}
        return sorted(mi or every, key=layer_key)

    @property
    def estimators(self) -> list[str]:
        return self.estimators_of(self.sweeps[0] if self.sweeps else "", MI_XT)

    @property
    def seeds(self) -> list[int]:
        return sorted({k[4] for k in self.rows if isinstance(k[4], int)})

    def series(self, quantity: str, estimator: str | None = None, layer: str | int | None = None,
               seed: int | str = "mean", sweep: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(epochs, values) of one quantity as numpy arrays, sorted by epoch. `estimator` defaults to the run's
        first for MI quantities; `layer` is needed where the quantity has several; `sweep` defaults to the first
        point. IbtuiError (one sentence naming what there is) when the export holds no such series."""
        sweep = (self.sweeps[0] if self.sweeps else "") if sweep is None else sweep
        if sweep not in self.sweeps:
            raise IbtuiError(f"{self.path}: no sweep point {sweep!r}; this run has {self.sweeps}.")
        pairs = self.keys.get((sweep, quantity))
        if not pairs:
            raise IbtuiError(f"{self.path}: no quantity {quantity!r}; this run has {self.quantities}.")
        ests = sorted({e for e, _ in pairs}, key=lambda e: (e != (self.estimators or [""])[0], e))
        est = ests[0] if estimator is None else estimator
        if est not in ests:
            raise IbtuiError(f"{self.path}: {quantity} has no estimator {estimator!r}; it has {ests}.")
        layers = sorted({lay for e, lay in pairs if e == est}, key=layer_key)
        if layer is None and len(layers) > 1:
            raise IbtuiError(f"{self.path}: {quantity} is measured on layers {layers}; pass layer=… to pick one.")
        lay = layers[0] if layer is None else str(layer)
        if lay not in layers:
            raise IbtuiError(f"{self.path}: {quantity} ({est or 'no estimator'}) has no layer {lay!r}; it has {layers}.")
        mean, per_seed = self.curves(sweep, quantity, est, lay)
        curve = mean if seed == "mean" else next((c for s, c in per_seed.items() if s == seed), None)  # any type
        if curve is None:
            raise IbtuiError(f"{self.path}: {quantity} has no series for seed {seed!r}; seeds are "
                             f"{list(per_seed)}{' and mean' if mean is not None else ''}.")
        whole = bool(np.all(curve.epoch == np.floor(curve.epoch)))  # fractions: snapshots inside epochs
        return (curve.epoch.astype(int) if whole else curve.epoch.copy()), curve.value.copy()

    def frame(self):
        """Every record as a pandas DataFrame: the CSV's columns, `seed` and `layer` as text (seed "0" or "mean"),
        empty cells as "" (so `pivot_table` keeps them); IbtuiError (one sentence) when pandas is missing."""
        try:
            import pandas as pd
        except ImportError:
            raise IbtuiError("Run.frame() needs pandas, which is not installed: pip install pandas "
                             "(or use Run.series, which needs only numpy).") from None
        cols = {k: [] for k in FIELDS}
        run = self.run_name or self.path.stem
        for (sweep, q, est, layer, seed), rows in self.rows.items():
            n = len(rows)
            for k, x in (("run", run), ("sweep", sweep), ("seed", str(seed)), ("layer", layer), ("quantity", q),
                         ("estimator", est)):
                cols[k].extend([x] * n)
            for e, s, v in rows:
                cols["epoch"].append(e)
                cols["step"].append(s)
                cols["value"].append(v)
        order = {sw: i for i, sw in enumerate(self.sweeps)}
        df = pd.DataFrame(cols)
        df = df.iloc[sorted(range(len(df)), key=lambda i: (order[cols["sweep"][i]], cols["epoch"][i]))]
        return df.reset_index(drop=True)

    # -- per sweep point (the figures)
    def has(self, sweep: str, quantity: str) -> bool:
        return bool(self.keys.get((sweep, quantity)))

    def layers_of(self, sweep: str, quantity: str, estimator: str = "") -> list[str]:
        return sorted({lay for est, lay in self.keys.get((sweep, quantity), ()) if est == estimator}, key=layer_key)

    def estimators_of(self, sweep: str, quantity: str) -> list[str]:
        ests = {est for est, _ in self.keys.get((sweep, quantity), ())}
        order = list(self.run_info(sweep).get("estimators") or [])
        return sorted(ests, key=lambda e: (order.index(e) if e in order else len(order), e))

    def curves(self, sweep: str, quantity: str, estimator: str = "", layer: str = "") -> tuple[Curve | None, dict]:
        """(the mean-over-seeds curve or None, {seed: curve})."""
        key = (sweep, quantity, estimator, layer)
        if key not in self._curves:
            mean, seeds = None, {}
            for seed in self._by_series.get(key, ()):
                if seed == "mean":
                    mean = Curve(self.rows[(*key, seed)])
                elif isinstance(seed, int):
                    seeds[seed] = Curve(self.rows[(*key, seed)])
            self._curves[key] = (mean, dict(sorted(seeds.items())))
        return self._curves[key]

    def seeds_of(self, sweep: str) -> list[int]:
        return sorted({k[4] for k in self.rows if k[0] == sweep and isinstance(k[4], int)})

    def last_epoch(self, sweep: str | None = None) -> int:
        return max((e for k, rows in self.rows.items() if sweep is None or k[0] == sweep for e, _, _ in rows),
                   default=0)

    # -- the sidecar
    def run_info(self, sweep: str = "") -> dict:
        for point in self.meta.get("sweep_points") or []:
            if isinstance(point, dict) and point.get("sweep") == sweep:
                return point
        info = self.meta.get("run_info")
        return info if isinstance(info, dict) and (not sweep or info.get("sweep") == sweep) else {}

    def scenario(self) -> dict:
        sc = self.meta.get("scenario")
        return sc if isinstance(sc, dict) else {}

    @property
    def run_name(self) -> str:
        return self.meta.get("run_info", {}).get("run", "") if isinstance(self.meta.get("run_info"), dict) else ""

    def finished(self) -> bool:
        return bool(self.meta.get("finished"))

    def records(self, sweep: str | None = None, as_sweep: str | None = None):
        """The records again, in epoch order (the app's comparison view replays them, each run's under its label
        in the `sweep` slot: `as_sweep`)."""
        run = self.run_name or self.path.stem
        out = [Record(run, seed, e, s, layer, q, est, v, sw if as_sweep is None else as_sweep)
               for (sw, q, est, layer, seed), rows in self.rows.items() if sweep is None or sw == sweep
               for e, s, v in rows]
        out.sort(key=lambda r: r.epoch)
        return out


def load(path: str | Path) -> Run:
    """Read an export (complete lines only, so a file still being written reads too) and its sidecar.

    ExportError (one sentence) if it is missing, a folder, binary, not an ibtui export or has no records yet."""
    path = Path(path)
    check_input(path, "export", ExportError)  # a folder, FIFO or device is refused before any read
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read it ({exc.strerror}); {HINT}.") from None
    if b"\0" in data[:65536]:
        raise ExportError(f"{path} is a binary file, not an ibtui export; {HINT}.")
    cut = data.rfind(b"\n")
    text = data[:cut + 1].decode("utf-8", errors="replace") if cut >= 0 else ""
    reader = csv_rows(text, path)  # one record a line (U+2028 in a name is not a line end)
    first = next(reader, None)
    idx = column_index(first[1] if first else [])
    if idx is None:
        raise ExportError(f"{path} is not an ibtui export (its first line is not the header "
                          f"{','.join(FIELDS)}); {HINT}.")
    rows: dict = defaultdict(list)
    sweeps: dict[str, None] = {}
    for _, row in reader:
        r = parse_row(row, idx)
        if r is None:
            continue  # a row without a number where one belongs is skipped; a broken quote is an error (csv_rows)
        rows[(r.sweep, r.quantity, r.estimator, r.layer, r.seed)].append((r.epoch, r.step, r.value))
        sweeps.setdefault(r.sweep, None)
    if not rows:
        raise ExportError(f"{path} holds no records yet (only a header); wait for the first snapshot.")
    return Run(path, rows, read_meta(path), list(sweeps))


MAX_RUNS = 8  # runs compared at once (`ibtui view` and `ibtui plot` with several exports)


def run_labels(paths: list[Path]) -> list[str]:
    """Each run's name in the legends: its file stem, with the folder where two stems are the same."""
    stems = [p.stem for p in paths]
    return [f"{p.parent.name}/{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]


def load_runs(paths: list[str | Path]) -> tuple[list[Run], list[str]]:
    """The runs to compare (2 to MAX_RUNS exports) and their labels; ExportError (one sentence) otherwise."""
    paths = [Path(p) for p in paths]
    if len(paths) > MAX_RUNS:
        raise ExportError(f"{len(paths)} exports given; compare at most {MAX_RUNS} at once.")
    same = {os.path.realpath(p) for p in paths}  # never raises (Path.resolve does on a link loop)
    if len(same) < len(paths):
        raise ExportError("the same export is given twice; compare different runs.")
    return [load(p) for p in paths], run_labels(paths)


def read_records(path: str | Path) -> list[Record]:
    """Every record of an export in file order, parsed as `load` parses them (malformed rows skipped)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv_rows(f.read(), path)
    first = next(reader, None)
    idx = column_index(first[1] if first else [])
    if idx is None:
        raise ExportError(f"{path} is not an ibtui export (its first line is not the header "
                          f"{','.join(FIELDS)}); {HINT}.")
    return [r for r in (parse_row(row, idx) for _, row in reader) if r is not None]
