"""The app in a real terminal (tmux, 80×24): it starts, the plane fills, `n` and `e` change the status
line, `?` shows help, `q` exits 0 and the terminal is restored. Skipped when tmux is missing.

Two commands: the fake engine (`tests/tui/fake_engine.py`, every key has an effect) and the real
`ibtui` command on a tiny SZT run (`python -m ibtui SCENARIO`; `e` only matters once the engine
computes more than one estimator, so that check is made only then).
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("textual")  # the app needs Textual; without it ibtui runs headless

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    """One tmux server of our own (-L socket), one 80×24 session running `command`."""

    def __init__(self, command: str, size=(80, 24)):
        self.socket = f"ibtui-test-{os.getpid()}-{time.monotonic_ns()}"
        self.name = "ibtui"
        shell = f"cd {shlex.quote(str(REPO))} && {command}; echo IBTUI_EXIT=$?; sleep 60"
        self.tmux("new-session", "-d", "-s", self.name, "-x", str(size[0]), "-y", str(size[1]), shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait(self, cond, timeout: float = 20.0, what: str = "") -> str:
        end = time.monotonic() + timeout
        while True:
            text = self.screen()
            if cond(text):
                return text
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def status_lines(text: str) -> tuple[str, str]:
    lines = text.splitlines()
    return lines[0], lines[1]


def footer(text: str) -> str:
    """The screen's last non-blank line (the key hints)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def plane_filled(text: str) -> bool:
    """The plane's plot frame is on screen with a layer marker (a digit) in its data area."""
    lines = text.splitlines()
    if "information plane" not in text or not any("┌" in line for line in lines):
        return False
    top = next(i for i, line in enumerate(lines) if "┌" in line)
    bottom = next((i for i, line in enumerate(lines) if "└" in line), len(lines))
    for line in lines[top + 1:bottom]:
        body = line[1:]  # drop the pane's left border
        cut = min((body.index(c) for c in "┤│" if c in body), default=-1)
        if any(d in body[cut + 1:] for d in "123456"):
            return True
    return False


def drive(t: Tmux, check_estimator: bool, capture: Path | None = None) -> str:
    first = t.wait(plane_filled, timeout=40, what="the information plane to fill")
    if capture is not None:
        capture.write_text(first)
    before = status_lines(t.screen())[1]
    assert "noise β=0 " in before + " "
    t.keys("n")
    t.wait(lambda s: "β=0.05" in status_lines(s)[1] or "β=0.1" in status_lines(s)[1], what="status shows new β")
    if check_estimator:
        est = before.split("estimator ")[1].split(" ")[0]
        t.keys("e")
        t.wait(lambda s: f"estimator {est} " not in status_lines(s)[1] + " ", what="status shows next estimator")
    t.keys("?")
    t.wait(lambda s: "ibtui help" in s and "noise" in s, what="help screen")
    t.keys("Escape")
    t.wait(lambda s: "ibtui help" not in s, what="help closes")
    t.keys("q")
    end = t.wait(lambda s: "IBTUI_EXIT=" in s, timeout=30, what="exit")
    assert "IBTUI_EXIT=0" in end
    assert "information plane" not in end and "q quit" not in end  # the terminal is back to the shell's screen
    return first


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_fake_engine_in_tmux():
    out = os.environ.get("IBTUI_TMUX_CAPTURE")  # set it to keep the 80×24 capture for a report
    t = Tmux(f"PYTHONPATH=. {shlex.quote(sys.executable)} tests/tui/fake_engine.py --epochs 3000 --delay 0.01")
    try:
        first = drive(t, check_estimator=True, capture=Path(out) if out else None)
        assert "fake" in status_lines(first)[0]
    finally:
        t.close()


def test_real_ibtui_command_in_tmux():
    scenario = REPO / "scenarios" / "szt_tanh.toml"
    if not scenario.is_file():
        pytest.skip("scenarios/szt_tanh.toml is missing")
    sets = ["run.seeds=1", "run.epochs=20000", "model.noise_levels=[0.0,0.1]", "measure.snapshots=50"]  # runs past the keys
    cmd = (f"{shlex.quote(sys.executable)} -m ibtui {shlex.quote(str(scenario))} --device cpu --threads 1 "
           + " ".join(f"--set {shlex.quote(s)}" for s in sets))
    t = Tmux(cmd)
    try:
        first = t.wait(plane_filled, timeout=60, what="the information plane to fill")
        info_estimators = first.split("estimator ")[1].split(" ")[0] if "estimator " in first else ""
        drive(t, check_estimator=True)  # szt_tanh computes bin30 and kde_upper/lower
        assert "szt_tanh" in status_lines(first)[0] and info_estimators
    finally:
        t.close()


@pytest.mark.slow  # over 2 s: keeps the README's fast set under 3 minutes on 2 cores
def test_runs_compared_in_tmux(tmp_path):
    """`ibtui view a.csv b.csv` at 80×24: both runs on the plane, named in the subtitle, the bright one in
    [brackets] and digits; `r` switches it; `e` shows the estimator one run lacks; `?` lists `r`; `q` exits 0."""
    from helpers import two_runs

    a, b = two_runs(tmp_path)  # tanh: 6 layers, 3 estimators; relu: 3 layers, bin30 only
    t = Tmux(f"{shlex.quote(sys.executable)} -m ibtui view {shlex.quote(str(a))} {shlex.quote(str(b))}")
    try:
        first = t.wait(lambda s: plane_filled(s) and "[tanh] relu" in s and "FINISHED" in status_lines(s)[1]
                       and " r run " in footer(s) + " ",  # FOLLOWING until then; the footer is drawn last
                       timeout=40, what="both runs on the plane, read to their end, and the footer")
        out = os.environ.get("IBTUI_TMUX_CAPTURE")
        if out:
            Path(out).write_text(first)
        top, second = status_lines(first)
        assert "view 2 runs" in top and "tanh" in top and "bright 1/2" in top and "FINISHED" in second
        assert " r run " in footer(first) + " "  # the footer names the key
        t.keys("r")
        t.wait(lambda s: "tanh [relu]" in s and "bright 2/2" in status_lines(s)[0], what="relu bright")
        t.keys("e")
        t.wait(lambda s: "estimator kde_upper" in status_lines(s)[1] and "no kde_upper in relu" in s,
               what="the estimator relu lacks")
        t.keys("?")
        t.wait(lambda s: "ibtui help" in s and "run: comparing runs" in s, what="help lists r")
        t.keys("Escape")
        t.wait(lambda s: "ibtui help" not in s, what="help closes")
        t.keys("q")
        assert "IBTUI_EXIT=0" in t.wait(lambda s: "IBTUI_EXIT=" in s, timeout=30, what="exit")
    finally:
        t.close()
