"""The real app in a real terminal: tmux at 80x24, keys sent, the screen read back.

This is how users meet kimi-tui (over SSH, in tmux). It checks what Pilot tests
cannot: the installed entry point, terminal rendering at 80x24, and that
quitting the app leaves a started run going, and reopening shows it again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.project import init_project
from kimi_tui.runs import list_runs, stop_run

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, name: str, command: str) -> None:
        self.name = name
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24", command], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.3)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{screen}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def test_the_workbench_in_tmux_starts_a_run_that_outlives_it(tmp_path: Path) -> None:
    root = init_project(tmp_path / "demo", sample=True).root
    command = f"{sys.executable} -m kimi_tui {root}; sleep 60"
    tmux = Tmux("kimi-tui-test", command)
    try:
        screen = tmux.wait_for("Checkpoints")
        assert "Dataset" in screen and "Evaluation" in screen
        assert all(len(line) <= 80 for line in screen.splitlines())
        tmux.keys("3")
        tmux.wait_for("prepare")
        tmux.keys("a")  # start all
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list_runs(root / "runs"):
            time.sleep(0.2)
        runs = list_runs(root / "runs")
        assert runs and runs[0].stage == "all"
        tmux.keys("q")  # quit the app: the run must go on
        deadline = time.monotonic() + 30  # until the workbench has left the terminal
        while time.monotonic() < deadline and "Checkpoints" in tmux.screen():
            time.sleep(0.2)
        assert "Checkpoints" not in tmux.screen(), "the workbench did not quit"
        all_run = next(r for r in list_runs(root / "runs") if r.stage == "all")
        assert all_run.state in ("running", "succeeded"), all_run
        tmux.kill()
        tmux = Tmux("kimi-tui-test", command)  # reopen: the run is shown again
        tmux.wait_for("Checkpoints")
        tmux.keys("3")
        deadline = time.monotonic() + 20
        screen = tmux.screen()
        while time.monotonic() < deadline and not any(w in screen for w in ("running", "succeeded")):
            time.sleep(0.3)
            screen = tmux.screen()
        assert any(word in screen for word in ("running", "succeeded")), screen
    finally:
        tmux.kill()
        for run in list_runs(root / "runs"):
            if run.active:
                stop_run(run.path, grace=(2.0, 2.0, 2.0))
    status = json.loads(subprocess.run(
        [sys.executable, "-m", "kimi_tui", "status", "--project", str(root), "--json"], capture_output=True, text=True
    ).stdout)
    assert status["runs"]
