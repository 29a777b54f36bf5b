"""Fault injection: kill -9 of the training worker at random moments and in the middle of checkpoint
saves, kill -9 of the run's supervisor while its worker trains on, status.json emptied or truncated
mid-run, SIGHUP of the TUI, a stop during evaluation. Every trial must recover: `--resume` finishes
with the planned number of optimizer steps, from a complete checkpoint; a run is never read as over
(`interrupted`, `failed`) while a process of it lives, and never left "running" once none does;
`stop` leaves no process of it; nothing of an earlier result is lost.

The summary line (trials, recovered, lost, by class) is printed at the end of the run, even under -q
(and from the xdist workers).
KIMI_TUI_FAULT_TRIALS sets the number of trials (default 6, every class: 2 mid-save and 2 random
worker kills, 1 supervisor kill, 1 damaged status.json; the suite must stay under 20 minutes on a
2-core machine, where each trial takes ~22 s, two at a time; KIMI_TUI_FAULT_TRIALS=21 or more for
a soak)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import copy_converted

from kimi_tui.engines import get_engine
from kimi_tui.events import read_events
from kimi_tui.pipeline import start
from kimi_tui.project import Project
from kimi_tui.runs import processes_left, read_run, run_processes, stop_run, wait_run
from kimi_tui.workers.disk_full import checkpoint_complete

TRIALS = int(os.environ.get("KIMI_TUI_FAULT_TRIALS", "6"))
pytestmark = pytest.mark.slow


@dataclass
class Trial:
    number: int
    mode: str
    killed_at: str = ""
    resumed_from: str = ""
    final_step: int | None = None
    recovered: bool = False
    why: str = ""


def run_to_end(project: Project, stage: str, resume: bool = False):
    run_dir = start(project, stage, resume=resume)
    info = wait_run(run_dir)
    return info, (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def prepared(converted_sample, tmp_path_factory) -> tuple[Path, int]:
    """The sample on the tiny engine, ready to train: 24 optimizer steps, a checkpoint every 4."""
    project = copy_converted(converted_sample, tmp_path_factory.mktemp("fault") / "template", **{
        "train.epochs": 24, "train.save_steps": 4, "train.logging_steps": 1,
        "eval.checkpoints": "last", "eval.include_base": False})
    total = get_engine("whisper").schedule(project).total_steps
    assert total == 24
    return project.root, total


def copy_project(template: Path, where: Path) -> Project:
    shutil.copytree(template, where, ignore=shutil.ignore_patterns("runs", "training*", "exports", "evaluations"))
    return Project.load(where)


def worker_pid(run_dir: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_run(run_dir).pid
        if pid:
            return pid
        time.sleep(0.01)
    raise AssertionError(f"{run_dir.name} never started its worker")


def training_started(run_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "training:" in (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace"):
            return
        if not read_run(run_dir).active:
            return
        time.sleep(0.02)


# By trial number: the worker killed mid-save or at a random step, its supervisor killed, its
# status.json damaged while it trains.
MODES = ("random", "mid-save", "supervisor", "mid-save", "random", "status", "mid-save")


def wait_for_step(run_dir: Path, target_step: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and read_run(run_dir).active:
        steps = [e.get("step", 0) for e in read_events(run_dir / "events.jsonl") if e.get("type") in ("progress", "metric")]
        if steps and max(steps) >= target_step:
            return
        time.sleep(0.01)


def stop_after_lost_record(run_dir: Path, trial: Trial) -> bool:
    """The supervisor is gone or status.json damaged while the worker trains on: the run must read
    as running (never interrupted) while its processes live, and `stop` must leave none of them."""
    members = set(read_run(run_dir).processes)
    for _ in range(5):  # a few readings while the worker goes on
        info = read_run(run_dir)
        if not info.processes:
            break  # it finished meanwhile: the last reading must then say it is over
        members |= info.processes
        if info.state != "running":
            trial.why = f"read {info.state} while processes {sorted(info.processes)} of the run lived"
            return False
        time.sleep(0.05)
    info = stop_run(run_dir, grace=(5.0, 5.0, 5.0))
    left = processes_left(members | set(info.raw.get("stopped_pids") or []))
    if left:
        trial.why = f"processes {sorted(left)} survived the stop"
        return False
    if info.active or info.state not in ("stopped", "succeeded"):
        trial.why = f"after the stop the run reads {info.summary}"
        return False
    return True


def one_trial(template: Path, where: Path, number: int, total: int) -> Trial:
    rng = random.Random(number)
    mode = MODES[number % len(MODES)]
    trial = Trial(number, mode)
    project = copy_project(template, where)
    run_dir = start(project, "train")
    pid = worker_pid(run_dir)
    training_started(run_dir)
    if mode in ("supervisor", "status"):
        wait_for_step(run_dir, rng.randint(1, total - 4))
        time.sleep(rng.uniform(0.0, 0.3))
        if mode == "supervisor":
            os.kill(read_run(run_dir).raw["supervisor_pid"], signal.SIGKILL)
        else:
            status = run_dir / "status.json"
            text = status.read_text()
            status.write_text(text[: rng.randint(0, len(text) - 1)])  # emptied or cut anywhere
        if not stop_after_lost_record(run_dir, trial):
            return trial
        if read_run(run_dir).state == "succeeded":  # it ended before the stop: nothing to resume
            trial.killed_at = "after the end"
            return check_result(project, trial, total, where)
        return resume_and_check(project, trial, total, where)
    if mode == "random":
        # A random optimizer step (from the run's own progress events), then a random fraction of a step.
        wait_for_step(run_dir, rng.randint(1, total - 1))
        time.sleep(rng.uniform(0.0, 0.3))
    else:
        # The moment a checkpoint folder appears and before the Trainer writes its trainer_state.json.
        target = rng.choice([4, 8, 12, 16])
        folder = project.training_dir / f"checkpoint-{target}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not folder.exists() and read_run(run_dir).active:
            time.sleep(0.002)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    info = wait_run(run_dir)
    done = sorted(project.training_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    trial.killed_at = ", ".join(f"{p.name}{'' if checkpoint_complete(p) else ' (half-written)'}" for p in done) or "before any save"
    if info.state == "running" or info.state not in ("failed", "succeeded"):
        trial.why = f"killed run reads {info.state}"
        return trial
    if info.state == "succeeded":  # the kill came after the end: nothing to recover
        trial.killed_at = "after the end"
        return check_result(project, trial, total, where)
    return resume_and_check(project, trial, total, where)


def resume_and_check(project: Project, trial: Trial, total: int, where: Path) -> Trial:
    if not trial.killed_at:
        done = sorted(project.training_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        trial.killed_at = ", ".join(f"{p.name}{'' if checkpoint_complete(p) else ' (half-written)'}" for p in done) or "before any save"
    info, log = run_to_end(project, "train", resume=True)
    if info.state != "succeeded":
        trial.why = f"resume {info.state}: {log[-1500:]}"
        return trial
    if "resuming from " in log:
        trial.resumed_from = log.split("resuming from ", 1)[1].split(",", 1)[0]
        resumed = project.training_dir / trial.resumed_from
        if not checkpoint_complete(resumed):
            trial.why = f"resumed from an incomplete {resumed.name}"
            return trial
    else:
        trial.resumed_from = "scratch"
    return check_result(project, trial, total, where)


def check_result(project: Project, trial: Trial, total: int, where: Path) -> Trial:
    meta = json.loads((project.training_dir / "final" / "kimi_tui_model.json").read_text())
    trial.final_step = meta.get("step")
    if trial.final_step != total:
        trial.why = f"finished at step {trial.final_step}, planned {total}"
        return trial
    complete = [p.name for p in project.training_dir.glob("checkpoint-*") if checkpoint_complete(p)]
    if len(complete) != total // 4:
        trial.why = f"complete checkpoints {sorted(complete)}"
        return trial
    trial.recovered = True
    shutil.rmtree(where, ignore_errors=True)
    return trial


def test_kill_9_during_training_and_saves_always_recovers(prepared, tmp_path, record_property) -> None:
    template, total = prepared
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda n: one_trial(template, tmp_path / f"trial-{n}", n, total), range(TRIALS)))
    recovered = sum(t.recovered for t in trials)
    lost = len(trials) - recovered
    mid_save = [t for t in trials if "half-written" in t.killed_at]
    by_mode = {m: sum(t.mode == m for t in trials) for m in dict.fromkeys(MODES)}
    lines = [f"fault injection (train: kill -9 of the worker mid-save {by_mode['mid-save']} / at random "
             f"{by_mode['random']}, of its supervisor {by_mode['supervisor']}, status.json damaged {by_mode['status']}): "
             f"trials {len(trials)}, recovered {recovered}, lost {lost}; "
             f"{len(mid_save)} killed with a half-written checkpoint on disk"]
    lines += [f"  #{t.number:2} {t.mode:8} on disk: {t.killed_at}; resumed from {t.resumed_from or '-'}; "
              f"final step {t.final_step}" + (f"; LOST: {t.why}" if not t.recovered else "") for t in trials]
    record_property("terminal_summary", "\n".join(lines))  # printed at the end of the run (conftest.py)
    assert lost == 0, [t for t in trials if not t.recovered]
    assert mid_save, "no trial hit a checkpoint save in progress"


def test_stop_during_evaluation_leaves_no_process_and_the_next_evaluation_runs(prepared, tmp_path) -> None:
    template, _ = prepared
    project = copy_project(template, tmp_path / "p")
    info, log = run_to_end(project, "train")
    assert info.state == "succeeded", log[-2000:]
    run_dir = start(project, "evaluate")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "[1/" not in (run_dir / "stdout.log").read_text(errors="replace"):
        time.sleep(0.05)
    members = run_processes(read_run(run_dir).pgid)
    assert members, "the evaluation ended before the stop"
    info = stop_run(run_dir)
    assert info.state == "stopped"
    assert not processes_left(set(info.raw["stopped_pids"]) | members)
    info, log = run_to_end(project, "evaluate")
    assert info.state == "succeeded", log[-2000:]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_sighup_of_the_tui_leaves_the_run_going(prepared, tmp_path) -> None:
    template, total = prepared
    project = copy_project(template, tmp_path / "p")
    name = f"kimi-tui-hup-{os.getpid()}"
    run_dir = start(project, "train")
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24",
                    f"{sys.executable} -m kimi_tui {project.root}"], check=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "Checkpoints" not in subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout:
            time.sleep(0.2)
        subprocess.run(["tmux", "send-keys", "-t", name, "3"], check=True)  # the Run panel follows the run
        time.sleep(1.0)
        pane_pid = int(subprocess.run(["tmux", "display-message", "-p", "-t", name, "#{pane_pid}"],
                                      capture_output=True, text=True).stdout.strip())
        os.kill(pane_pid, signal.SIGHUP)  # the terminal the TUI runs in is gone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and processes_left({pane_pid}):
            time.sleep(0.1)
        assert not processes_left({pane_pid}), "the TUI ignored SIGHUP"
        assert read_run(run_dir).state in ("running", "succeeded")
        info = wait_run(run_dir)
        assert info.state == "succeeded"
        assert json.loads((project.training_dir / "final" / "kimi_tui_model.json").read_text())["step"] == total
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
