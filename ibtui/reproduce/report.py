"""Run the claims' runs at a scale and write the report: every claim at cpu and medium scale side by side.

The report and its figures go under OUT (OUT/REPRODUCTION.md, OUT/figures/); the runs' exports under
OUT/runs/SCALE/. Nothing in the report is typed by hand: every number is read from the exports.
"""
from __future__ import annotations

import os
import platform
import re
import stat
import sys
import traceback
from pathlib import Path

from ibtui.errors import IbtuiError
from ibtui.files import atomic_write, check_output, printable

from ibtui.reproduce import common
from ibtui.reproduce.common import CLAIMS, Claim, Result, module_figure
from ibtui.reproduce.runner import RUNS, SCALES, execute, finished, load_runs, runs_dir, timing

SHOWN = ("cpu", "medium")   # the two scales every claim is judged at; `full` joins when its runs exist
RANK = {"reproduced": 3, "answered": 3, "partially": 2, "within noise": 1, "open": 1, "too few seeds": 1,
        "untestable at this scale": 1, "not reproduced": 0}


def claims() -> list[Claim]:
    import ibtui.reproduce.claims  # noqa: F401  (registers every claim module)

    return CLAIMS


def claim_names() -> list[str]:
    return [c.name for c in claims()]


def medium_estimate(out: Path) -> tuple[float, list[str]]:
    """CPU seconds the medium set would take: each run's cpu-scale CPU time × its medium cost factor."""
    total, missing = 0.0, []
    for name, spec in RUNS.items():
        if finished(runs_dir(out, "medium"), name):
            continue
        t = timing(runs_dir(out, "cpu"), name)
        if t.get("cpu_s") or t.get("wall_s"):   # wall time (an upper bound) where CPU time was not recorded
            total += (t.get("cpu_s") or t["wall_s"]) * spec.medium_cost
        if not t.get("cpu_s"):
            missing.append(name)
    return total, missing


def _needed(c: Claim, out: Path) -> float:
    def cost(t: dict) -> float:
        return t.get("cpu_s") or t.get("wall_s") or 0.0

    return sum(cost(timing(runs_dir(out, "cpu"), n)) * RUNS[n].medium_cost for n in c.runs
               if not finished(runs_dir(out, "medium"), n))


def analyse(c: Claim, scale: str, out: Path) -> Result | None:
    runs = load_runs(runs_dir(out, scale), c.runs)
    if runs is None:
        return None
    common.FIGDIR[0] = out / "figures"
    common.SUFFIX[0] = "" if scale == "cpu" else f"_{scale}"
    try:
        res = c.analyze(runs)
    except Exception as exc:  # an analysis bug must not hide the other rows
        traceback.print_exc()
        return Result(f"analysis failed: {type(exc).__name__}: {exc}", "not analysed", "", [], "analysis failed")
    for i, kind, sweep in c.module_figs:
        if i < len(runs):
            sw = next((s for s in runs[i].sweeps() if s.endswith(sweep)), "") if sweep else ""
            f = module_figure(runs[i].path, kind, f"{c.name}_{kind}" + (f"_{i}" if kind == "sweep_fit" else ""), sw)
            if f:
                res.figures.append(f)
    return res


def _sizes(runs) -> list[tuple[int, int]]:
    """(seeds, epochs) of each run."""
    out = []
    for r in runs or []:
        sc = r.sc.get("run", {})
        out.append((int(sc.get("seeds", 0) or 0), int(sc.get("epochs", 0) or 0)))
    return out


def _larger(small: list, big: list) -> str:
    """How the larger scale's runs exceed the smaller's, in words ('' when in neither seeds nor epochs)."""
    pairs = list(zip(small, big))
    more = [w for w, i in (("more seeds", 0), ("more epochs", 1)) if pairs and all(b[i] >= a[i] for a, b in pairs)
            and any(b[i] > a[i] for a, b in pairs)]
    same = [w for w, i in (("the same seeds", 0), ("the same epochs", 1)) if pairs and all(b[i] == a[i] for a, b in pairs)]
    return " and ".join(more) + (f" ({', '.join(same)})" if more and same else "")


def stands(results: dict, sizes: dict | None = None) -> str:
    """Which scale's verdict stands where the scales differ, and why (named from the runs' seeds and epochs:
    'more seeds' only where the larger scale has them)."""
    done = {s: r for s, r in results.items() if r is not None}
    if len(done) < 2:
        return ""
    verdicts = {s: r.verdict for s, r in done.items()}
    if len(set(verdicts.values())) == 1:
        return "same at both scales"
    big = [s for s in SCALES if s in done][-1]
    small = [s for s in SCALES if s in done][0]
    if verdicts[big] in ("within noise", "too few seeds", "untestable at this scale"):
        why = {"within noise": "the larger run's interval straddles the threshold",
               "too few seeds": "the larger run has too few seeds for a verdict",
               "untestable at this scale": "the larger run's instrument cannot show the effect"}[verdicts[big]]
        return f"differs: {small} says {verdicts[small]}, {big} says {verdicts[big]}, so neither stands yet: {why}"
    sizes = sizes or {}
    larger = _larger(sizes.get(small, []), sizes.get(big, []))
    reason = (f"its runs have {larger}" if larger else
              f"its runs have no more seeds or epochs than {small}'s (the data or settings differ: see the section)")
    return (f"differs: **{big} stands** ({verdicts[big]}): {reason}; {small} said {verdicts[small]} (the claim's "
            f"section gives both scales' numbers)")


def run_header(runs, scale: str) -> str:
    parts = []
    for r in runs:
        sc, t = r.sc, r.time
        seeds, epochs = sc.get("run", {}).get("seeds", "?"), sc.get("run", {}).get("epochs", "?")
        sw = sc.get("sweep", {})
        swt = f", sweep {sw['setting']} = [{', '.join(f'{v:g}' for v in sw['values'])}]" if sw.get("setting") else ""
        spec = RUNS.get(r.path.stem)
        sub = spec.data.get(scale, "") if spec else ""
        data = f", data `$DATA{'' if sub == '.' else '/' + sub}`" if sub else ""
        tt = (f", {t.get('wall_s', '?')} s wall / " + (f"{t['cpu_s']} s CPU" if "cpu_s" in t else "CPU time not recorded")
              + (f" ({t['note']})" if isinstance(t.get("note"), str) else "") if t else "")
        parts.append(f"`{r.path.stem}`: {seeds} seed{'' if seeds == 1 else 's'}, {epochs} epochs{swt}{data}, "
                     f"device {r.meta.get('device', '?')}{tt}")
    return "; ".join(parts)


def _not_run(c: Claim, scale: str, out: Path) -> str:
    timed = all(timing(runs_dir(out, "cpu"), n).get("cpu_s") or timing(runs_dir(out, "cpu"), n).get("wall_s")
                for n in c.runs)
    if scale == "medium" and timed:
        return (f"not run yet (needs ~{_needed(c, out) / 3600:.2g} h of CPU here; run "
                f"`ibtui reproduce --scale medium --only {c.name}`)")
    if scale == "medium":
        return (f"not run yet (its size is estimated once its cpu-scale runs are timed; run "
                f"`ibtui reproduce --scale medium --only {c.name}`)")
    return f"not run yet (run `ibtui reproduce --scale {scale} --only {c.name}`)"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


REPORT = "REPRODUCTION.md"
MARK = re.compile(r"<!-- ibtui reproduce: (\d+) finished runs read -->")


def finished_runs(out: Path) -> int:
    """How many runs (a run at a scale) have a finished export under `out`: what a report there is written from."""
    return sum(finished(runs_dir(out, s), n) for s in SCALES for n in RUNS)


def _reported(path: Path) -> tuple[int, bool]:
    """How many finished runs the report at `path` was written from (its last line says; an older report without
    that line counts as one) and whether it says so; 0 where there is none, or a link or other non-file stands there
    (it is replaced by a file; what it points to is never written)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return 0, False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return 0, False
        with os.fdopen(os.dup(fd), "rb") as f:
            text = f.read(1 << 24).decode("utf-8", "replace")
    except OSError:
        return 0, False
    finally:
        os.close(fd)
    found = MARK.findall(text)
    return (int(found[-1]), True) if found else (1, False)


def check_out(out: Path, force: bool = False) -> Path:
    """Refuse (one sentence) an --out that is not a folder ibtui may write in, or whose finished report would be
    replaced by one read from fewer runs (a `--report-only` in the wrong folder) without `force`; before any run
    or figure is made. Returns the report's path."""
    check_output(out, "--out", IbtuiError, folder_ok=True)
    if out.exists() and not out.is_dir():
        raise IbtuiError(f"--out {printable(out)} is a file, not a folder; give a folder for the report and runs.")
    path = check_output(out / REPORT, "--out", IbtuiError) if out.is_dir() else out / REPORT
    (old, marked), new = _reported(path), finished_runs(out)
    if new < old and not force:
        was = (f"was written from {old} finished run{'s' if old != 1 else ''}" if marked else
               "is a finished report")
        raise IbtuiError(f"--out {printable(out)}: {printable(path)} {was} and the exports here give "
                         f"{new or 'none'}, so it is kept; give the --out folder holding its runs, or pass --force to "
                         f"replace it.")
    return path


def write_report(out: Path, force: bool = False) -> Path:
    """Write OUT/REPRODUCTION.md from the exports (atomically, never through a link; `check_out` first)."""
    check_out(out, force)
    shown = list(SHOWN) + (["full"] if runs_dir(out, "full").is_dir() else [])
    made = [s for s in shown if any(finished(runs_dir(out, s), n) for n in RUNS)]
    compared = len(made) >= 2   # "where the scales differ" only where two scales have runs to compare
    summary, sections, total = [], [], {s: [0.0, 0.0, 0] for s in shown}
    for c in claims():
        results = {s: analyse(c, s, out) for s in shown}
        sizes = {s: _sizes(load_runs(runs_dir(out, s), c.runs)) for s in shown if results[s]}
        cells = [f"**{results[s].verdict}**" if results[s] else _not_run(c, s, out) for s in shown]
        keys = "; ".join(f"{s}: {results[s].key}" for s in shown if results[s])
        power = "; ".join(f"{s}: {results[s].power}" for s in shown if results[s] and results[s].power)
        summary.append(f"| [{c.name}](#{c.name}) | {c.short} | " + " | ".join(cells) + f" | {keys} | {power or '–'} |"
                       + (f" {stands(results, sizes) or '–'} |" if compared else ""))
        sec = [f"## {c.name}\n\n**Claim.** {c.title}{'' if c.title[-1] in '.?' else '.'} *{c.source}.*\n"]
        if c.note:
            sec.append(c.note + "\n")
        for s in shown:
            res = results[s]
            cmds = "\n".join(RUNS[n].display(s) for n in c.runs)
            if res is None:
                sec.append(f"### {c.name} at {s} scale\n\n{_cap(_not_run(c, s, out))}.\n\n```\n{cmds}\n```\n")
                continue
            runs = load_runs(runs_dir(out, s), c.runs)
            for r in runs:
                total[s][0] += r.time.get("wall_s", 0) / max(1, sum(r.path.stem in x.runs for x in claims()))
                total[s][1] += r.time.get("cpu_s", 0) / max(1, sum(r.path.stem in x.runs for x in claims()))
            figs = "\n".join(f"![{c.name}]({f})" for f in res.figures)
            sec.append(f"### {c.name} at {s} scale\n\n**Runs.** {run_header(runs, s)}.\n\n```\n{cmds}\n```\n\n"
                       f"{figs}\n\n**Measured.** {res.measured}\n\n**Verdict ({s}): {res.verdict}.** {res.why}"
                       + (f" **Power** (95 % half-width vs the effect the rule must resolve): {res.power}." if res.power
                          else "") + "\n")
        gpu = [RUNS[n].gpu_note for n in c.runs if RUNS[n].gpu_note]
        if gpu:
            sec.append("Paper scale (`ibtui reproduce --scale full --device cuda`, a GPU): " + "; ".join(gpu)
                       + ". Not run here.\n")
        sections.append("\n".join(sec))
    est, missing = medium_estimate(out)
    cols = " | ".join(f"verdict ({s})" for s in shown)
    round_ = ("" if compared or not made else
              f"**This report: {made[0]} scale only.** Its runs were made with the statistics and instruments "
              f"described here; no run at the other scales was remade with them, so their columns say what each "
              f"would take instead of a verdict (verdicts from older exports, read with earlier statistics, are not "
              f"carried over: every number here is read from the exports under `--out`)."
              + (f" The medium set needs about {est / 3600:.1f} h of CPU on this machine: `ibtui reproduce --scale "
                 f"medium --out OUT` (resumable)." if made == ["cpu"] else "") + "\n\n")
    head = f"""# Reproduction report: the information-bottleneck papers' headline claims

Written by `ibtui reproduce` from the run exports under its `--out` folder (every number below is read from
them through ibtui's export reader; nothing is typed in by hand). Regenerate: `ibtui reproduce --scale cpu --out OUT`
(then `--scale medium`); runs whose finished export exists are reused (`--force` reruns them), `--only NAME` runs
one claim, `--report-only` rewrites this file from the exports, `--list` lists the claims.
`$DATA` is the folder with `mnist/`, `mnist-5k/` and `cifar-10-batches-py/` (`--data-dir`, default `$IBTUI_DATA`).

**Scales.** *cpu*: 5 seeds (the floor for a verdict) wherever a verdict reads seeds, short runs, the MNIST 5k and
CIFAR-10 5k subsets (minutes a run). *medium*: at least 5 seeds and more seeds or longer runs than cpu,
10⁴ epochs for the SZT runs (the papers' axis), full MNIST (60k) where affordable, CIFAR-10 for 800 iterations of
5 seeds on the 5k subset. *full*: the papers' scale, for a GPU (`--scale full --device cuda`). One torch thread
a run, device cpu. Machine: {platform.machine()}, {os.cpu_count()} cores, shared with other jobs while these runs
were made (wall time therefore exceeds CPU time). The cpu and medium runs train with PyTorch's step
(`run.compiled_step=false`) and sum the KDE bounds with the compiled tile kernel (`measure.kde.path=compiled`), as
they were made: ibtui's compiled step for narrow networks and the other KDE paths round differently.

**Uncertainty.** Every number a verdict reads is taken per seed first (a fall from that seed's own peak, a
correlation over that seed's snapshots, a paired difference) and printed as the mean over seeds with its 95 %
Student's t-interval; correlations are averaged in Fisher's z. A slope over sweep points (batch sizes, depths)
gets a t-interval from the points' seed spreads (Welch–Satterthwaite degrees of freedom); r over batch sizes a
hierarchical bootstrap (seeds resampled within each batch size, each one's resampled deviation scaled to its
t-interval's width, r refitted; 2000 resamples, a fixed generator seed). `tests/reproduce/test_coverage.py`
checks that these intervals hold the true value 93–97 % of the time at every seed count used here, on normal
and skewed (gamma, lognormal; skewness ≈ 1) seeds; r's 93–99 %. A rule is *met* when the whole interval is on
the passing side of its threshold, *missed* (not reproduced) only when the whole interval is on the failing
side, and *within noise* when the interval straddles it. A number resting on fewer than 5 seeds gets no
verdict: *too few seeds*. Verdicts: *reproduced*, *partially* (part of the claim), *within noise*, *not
reproduced*, *too few seeds*, *untestable at this scale* (the instrument cannot show the effect). **Power**:
each verdict prints its intervals' half-widths beside the effect its rule must resolve (the threshold's
distance to the nearest alternative: 0.5 bit for a fall, 0.3 decades for an alignment), *underpowered* where
the half-width is larger. MI in bits; losses in nats.

**Falls.** Two falls after a peak are measured, per seed from that seed's own peak: peak → lowest later value
(sees a layer that dips and recovers) and peak → final (a fall that lasts). Each rule names the one it reads.
The mean of per-seed falls peak → final is at least the mean curve's (seeds peak at different epochs); the
layer tables print the mean curve beside it.

{round_}| claim | source | {cols} | key numbers | power |{' where the scales differ |' if compared else ''}
|---|---|{'---|' * len(shown)}---|---|{'---|' if compared else ''}
"""
    timings = ["| run | scale | settings | wall s | CPU s |", "|---|---|---|---|---|"]
    for n, spec in RUNS.items():
        for s in shown:
            t = timing(runs_dir(out, s), n)
            if t:
                timings.append(f"| `{n}` | {s} | {' '.join(spec.settings(s))} | {t.get('wall_s', '–')} | "
                               f"{t.get('cpu_s', '–')} |")
    tot = "; ".join(f"{s}: {v[1] / 60:.1f} min CPU, {v[0] / 60:.1f} min wall" for s, v in total.items() if v[1])
    timed = [n for n in RUNS if n not in missing and not finished(runs_dir(out, "medium"), n)]
    medium = ("**Medium set.** Every medium run is made; its times are in the last section.\n"
              if all(finished(runs_dir(out, "medium"), n) for n in RUNS) else
              f"**Medium set.** Estimated from the cpu-scale times measured here × each run's scale factor (seeds × "
              f"epochs × data size; `medium_cost` in the claim modules): **{est / 3600:.1f} h of CPU** for the "
              f"{len(timed)} medium runs not yet made whose cpu run is timed"
              + (f"; {len(missing)} runs ({', '.join(missing)}) have no cpu-scale CPU time yet (wall time, an upper "
                 f"bound, is used where there is one)" if missing else "")
              + ". The cpu times here were taken with the 2 cores shared with other jobs. Run the set with "
              "`ibtui reproduce --scale medium` (resumable: finished runs are kept).\n")
    left = """## What is left for a GPU

- The paper-scale runs (`ibtui reproduce --scale full --device cuda`): 50 seeds and the papers' epoch counts for
  the SZT rows, full MNIST for the MNIST rows, and 50 × 64k iterations of ResNet-32 on full CIFAR-10 (the medium
  CIFAR-10 run covers 800 iterations of 5 seeds on the 5k subset: the first decades of the paper's 10¹–10⁵ axis).
- CIFAR-100: no data on this machine; `cifar100_resnet32.toml` is ready for a folder holding `cifar-100-python/`.
- Thresholds of the rules (0.5 bit, 0.3 decades, r ≥ 0.9, the 0.2-nat convergence loss) are this report's
  choices; the papers give none (each rule names its own). The 5-seed floor for a verdict is this report's too
  (issue 32): the t-interval's half-width in seed standard deviations, t(0.975, n − 1)/√n, is 8.98 at n = 2,
  2.48 at 3, 1.59 at 4, 1.24 at 5 and 0.72 at 10.
"""
    text = (head + "\n".join(summary) + "\n\n" + (f"Time of the runs read here: {tot}.\n\n" if tot else "")
            + medium + "\n" + "\n".join(sections) + "\n" + left + "\n## Runs and timings\n\n" + "\n".join(timings) + "\n"
            + f"\n<!-- ibtui reproduce: {finished_runs(out)} finished runs read -->\n")
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT
    atomic_write(path, text)
    print(f"[reproduce] wrote {path}", file=sys.stderr)
    return path


def listing() -> str:
    lines = []
    for c in claims():
        lines.append(f"{c.name:16s} {c.short}: runs {', '.join(c.runs)}")
    return "\n".join(lines)


def reproduce(scale: str, only: list[str], out: Path, data_root: Path, device: str = "cpu", threads: int = 1,
              report_only: bool = False, force: bool = False) -> Path:
    """Run the selected claims' runs at `scale` (skipping finished ones unless force), then write the report."""
    todo = [c for c in claims() if not only or c.name in only]
    if not (out.exists() or out.is_symlink()):
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise IbtuiError(f"--out {printable(out)}: cannot create that folder ({exc.strerror or exc}); pick "
                             f"another.") from None
    check_out(out, force or not report_only)  # a finished report is replaced by fewer runs only when asked
    if not report_only:
        seen: set[str] = set()
        for c in todo:
            for rn in c.runs:
                if rn not in seen:
                    seen.add(rn)
                    execute(RUNS[rn], scale, runs_dir(out, scale), data_root, threads, device, force)
    return write_report(out, force or not report_only)
