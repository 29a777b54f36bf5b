"""Two starters (two TUIs, or a TUI and the CLI) never start two runs writing the same outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.errors import RunError
from kimi_tui.pipeline import project_lock, start
from kimi_tui.project import Project, init_project
from kimi_tui.runs import list_runs, stop_run, wait_run

CLI = [sys.executable, "-m", "kimi_tui"]


@pytest.fixture
def project(tmp_path: Path) -> Project:
    init_project(tmp_path / "p", sample=True)
    return Project.load(tmp_path / "p")


def test_the_second_start_is_told_which_run_holds_the_stage(project: Project) -> None:
    first = start(project, "all")
    try:
        out = subprocess.run(CLI + ["run", "train", "--project", str(project.root)], capture_output=True, text=True)
        assert out.returncode != 0
        assert first.name in out.stderr and "pid" in out.stderr and "kimi-tui stop" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        stop_run(first)
        wait_run(first)


def test_run_all_while_a_pipeline_runs_is_refused_by_name_before_any_question(project: Project) -> None:
    """Outputs of an earlier run are there and a pipeline is running: `run all` names the running
    pipeline at once, never asks to start everything again (nor asks for --yes) only to refuse then."""
    project.train_jsonl.parent.mkdir(parents=True, exist_ok=True)
    project.train_jsonl.write_text("", encoding="utf-8")  # an earlier run's output
    first = start(project, "all")
    try:
        out = subprocess.run(CLI + ["run", "all", "--project", str(project.root)], capture_output=True, text=True,
                             input="y\n")
        assert out.returncode != 0
        assert first.name in out.stderr and "kimi-tui stop" in out.stderr, out.stderr
        assert "--yes" not in out.stderr and "Start every stage again" not in out.stdout + out.stderr
    finally:
        stop_run(first)
        wait_run(first)


def test_simultaneous_starts_from_separate_processes_give_exactly_one_run(project: Project) -> None:
    """Eight CLIs released at the same instant: one pipeline starts, seven are refused by name."""
    go = project.root / "go"
    code = (
        "import os, sys, time\n"
        "from kimi_tui.cli import main\n"
        "open(sys.argv[1], 'w').close()\n"  # imported and about to poll
        f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
        f"sys.exit(main(['run', 'all', '--project', {str(project.root)!r}]))\n"
    )
    ready = [project.root / f"ready-{i}" for i in range(8)]
    procs = [subprocess.Popen([sys.executable, "-c", code, str(mark)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for mark in ready]
    deadline = time.monotonic() + 120
    while not all(mark.exists() for mark in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.poll() for p in procs]
        time.sleep(0.02)
    go.write_text("")
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    runs = [r for r in list_runs(project.runs_dir) if r.stage == "all"]
    try:
        assert sum(1 for code, _ in results if code == 0) == 1, results
        assert len(runs) == 1
        refused = [err for code, err in results if code != 0]
        assert all(runs[0].run_id in err for err in refused), refused
    finally:
        for run in runs:
            stop_run(run.path)
            wait_run(run.path)


def test_a_lock_held_too_long_names_its_holder(project: Project) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kimi_tui.pipeline import project_lock; from kimi_tui.project import Project\n"
         f"with project_lock(Project.load({str(project.root)!r}), 'a slow test holder'):\n"
         "    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match=rf"pid {holder.pid} .*a slow test holder"):
            with project_lock(project, "second", wait_s=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()
    with project_lock(project, "after the holder died", wait_s=1):  # a dead holder's lock is released
        info = json.loads((project.runs_dir / ".lock").read_text())
        assert info["pid"] == os.getpid()


def test_a_lock_passed_from_holder_to_holder_is_waited_for_past_the_limit(project: Project) -> None:
    """Starts that follow each other (eight CLIs at once on a loaded machine) are progress, not a
    stuck holder: the limit counts from when the current holder took the lock."""
    chain = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from kimi_tui.pipeline import project_lock; from kimi_tui.project import Project\n"
         f"p = Project.load({str(project.root)!r})\n"
         "for i in range(3):\n"
         "    with project_lock(p, f'holder {i}'):\n"
         "        print(i, flush=True); time.sleep(0.8)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert chain.stdout.readline().strip() == "0"
        with project_lock(project, "waiter", wait_s=1.5):  # 2.4 s of holders, none over 1.5 s
            info = json.loads((project.runs_dir / ".lock").read_text())
            assert info["pid"] == os.getpid()
    finally:
        chain.kill()
        chain.wait()
