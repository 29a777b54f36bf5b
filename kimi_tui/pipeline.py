"""Starting stages, one or all, the same way from the CLI and the TUI.

`run all` is itself a run (runs/<id>-all/) whose worker is this module: it
plans each stage when the previous one has finished (plans depend on what the
earlier stages wrote), starts it as its own run, waits, and stops at the first
failure. A stop of the `all` run stops the stage it is waiting on.

Usage (as the `all` run's worker): python -m kimi_tui.pipeline --project DIR --stages a,b,c
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from kimi_tui.engines import STAGES, get_engine, stages_of
from kimi_tui.errors import KimiTuiError, RunError, describe_os_error
from kimi_tui.events import EventWriter
from kimi_tui.project import Project
from kimi_tui.runs import StagePlan, list_runs, start_stage, stop_run, wait_run


def plan_stage(project: Project, stage: str, resume: bool = False) -> StagePlan:
    """The project's engine's plan for ``stage``; the engine refuses a resume it cannot do."""
    return get_engine(project.config.engine.name).plan(stage, project, resume=resume)


LOCK_WAIT_S = 15.0


@contextlib.contextmanager
def project_lock(project: Project, purpose: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Only one process at a time checks for active runs and creates one (runs/.lock, flock).

    Without it two TUIs, or a TUI and the CLI, could both see no active train run and both
    start one writing training/. The lock is held for milliseconds (planning and creating
    the run directory), never while a stage runs; the file names its holder for the message.
    """
    path = project.runs_dir / ".lock"
    try:
        project.runs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # read-only, not ours, a full disk: the TUI shows it like the CLI does
        raise RunError(f"cannot start a run in {project.runs_dir}: {describe_os_error(exc)}") from None
    try:
        deadline = time.monotonic() + wait_s
        last_holder: object = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                try:
                    holder = json.loads(path.read_text(encoding="utf-8") or "{}")
                except (OSError, ValueError):
                    holder = {}
                holder = holder if isinstance(holder, dict) else {}
                key = (holder.get("pid"), holder.get("since"))
                if key != last_holder:  # another process took it meanwhile: starts are progressing, wait on
                    last_holder, deadline = key, time.monotonic() + wait_s
                elif time.monotonic() > deadline:  # one holder for wait_s: it is stuck, or dead with the fd open
                    raise RunError(
                        f"{project.root} is locked by kimi-tui pid {holder.get('pid', '?')} on "
                        f"{holder.get('host', '?')} ({holder.get('purpose', 'starting a run')}) for over "
                        f"{wait_s:.0f} s; if that process is gone, delete {path}"
                    ) from None
                time.sleep(0.05)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                                     "since": time.time()}).encode())
        except OSError:
            pass  # naming the holder is a courtesy: a full disk must not stop the lock itself
        yield
    finally:
        os.close(fd)  # closing releases the flock


def ensure_no_active(project: Project, stage: str) -> None:
    """Two runs writing the same outputs corrupt each other: refuse, and say who holds them."""
    for run in list_runs(project.runs_dir):
        if run.active and (run.stage == stage or run.stage == "all" or stage == "all"):
            pids = ", ".join(map(str, sorted(run.processes)[:6])) or run.pid or "?"
            raise RunError(
                f"run {run.run_id} ({run.stage}) is still {run.summary} (pids {pids} on "
                f"{run.host or '?'}); wait for it or stop it with `kimi-tui stop {run.run_id} --project {project.root}`"
            )


def existing_outputs(project: Project) -> list[str]:
    """What an earlier run left that `run all` would redo: asked about before hours of work are
    started again (train and export outputs are moved aside, the others rewritten in place).
    Paths relative to the project, stage order; empty folders do not count."""
    found = []
    for path in (project.train_jsonl, project.test_jsonl, project.features_dir, project.base_model_dir,
                 project.training_dir, project.export_dir, project.evaluations_dir):
        try:
            present = path.is_file() or (path.is_dir() and any(path.iterdir()))
        except OSError:  # unreadable: it exists, and the stage would meet it
            present = True
        if present:
            found.append(str(path.relative_to(project.root)) + ("/" if path.is_dir() else ""))
    return found


def keep_previous_outputs(project: Project, stage: str, resume: bool = False) -> Path | None:
    """A new train or export never writes over the last one's results: they are moved aside
    (training.<time>/, exports/final.<time>/), never deleted. --resume keeps training/ in place."""
    target = {"train": project.training_dir, "export": project.export_dir}.get(stage)
    if target is None or (stage == "train" and resume) or not target.exists() or not any(target.iterdir()):
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = target.with_name(f"{target.name}.{stamp}")
    n = 1
    while kept.exists():
        kept, n = target.with_name(f"{target.name}.{stamp}-{n}"), n + 1
    target.rename(kept)
    print(f"kept the previous {stage} output as {kept}", flush=True)
    return kept


def config_text(project: Project) -> str:
    return project.config_path.read_text(encoding="utf-8")


def start(project: Project, stage: str, resume: bool = False) -> Path:
    """Start one stage, or `all`, detached; return its run directory."""
    with project_lock(project, f"starting {stage}"):
        return _start_locked(project, stage, resume)


def _start_locked(project: Project, stage: str, resume: bool) -> Path:
    ensure_no_active(project, stage)
    if stage == "all":
        stages = get_engine(project.config.engine.name).stages
        plan = StagePlan(
            stage="all",
            argv=[sys.executable, "-m", "kimi_tui.pipeline", "--project", str(project.root),
                  "--stages", ",".join(stages)],
            env={"PYTHONUNBUFFERED": "1"},
            cwd=str(project.root),
            description="every stage in order: " + " -> ".join(stages),
        )
    else:
        plan = plan_stage(project, stage, resume=resume)
        keep_previous_outputs(project, stage, resume)
    return start_stage(project.runs_dir, plan, config_text(project))


def run_stages(root: Path, stages: list[str]) -> int:
    events = EventWriter()
    current: list[Path] = []

    def on_stop(signum: int, _frame: object) -> None:
        if current:
            print(f"pipeline: stop requested, stopping {current[-1].name}", flush=True)
            stop_run(current[-1])
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    for index, stage in enumerate(stages, 1):
        try:
            project = Project.load(root)  # the config may have been edited between stages
            plan = plan_stage(project, stage)
        except (KimiTuiError, OSError) as exc:  # kimi-tui.toml made invalid or unreadable meanwhile, "run prepare first"...
            print(f"pipeline: cannot plan {stage}: {exc}", flush=True)
            events.error(f"cannot plan {stage}: {exc}", stage=stage)
            return 2
        try:
            with project_lock(project, f"run all: starting {stage}"):
                keep_previous_outputs(project, stage)
                run_dir = start_stage(project.runs_dir, plan, config_text(project))
        except (KimiTuiError, OSError) as exc:  # a full disk, the project moved or made read-only
            print(f"pipeline: cannot start {stage}: {exc}", flush=True)
            events.error(f"cannot start {stage}: {exc}", stage=stage)
            return 2
        current.append(run_dir)
        print(f"pipeline: [{index}/{len(stages)}] {stage} -> {run_dir.name}", flush=True)
        print(f"pipeline:   {plan.description}", flush=True)
        events.emit("stage", stage=stage, run=run_dir.name, index=index, total=len(stages))
        info = wait_run(run_dir, on_output=lambda b: (sys.stdout.buffer.write(b), sys.stdout.flush()))
        events.progress(index, len(stages), stage=stage, state=info.state)
        if info.state != "succeeded":
            print(f"pipeline: {stage} {info.state} (exit code {info.exit_code}); stopping here", flush=True)
            return info.exit_code or 1
    print("pipeline: all stages succeeded", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kimi_tui.pipeline")
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--stages", help="comma-separated, in order (default: every stage of the project's engine)")
    args = parser.parse_args(argv)
    try:
        known = stages_of(Project.load(args.project.resolve()))
    except (KimiTuiError, OSError):  # kimi-tui.toml broken meanwhile: run_stages says so, in the run's events
        known = STAGES
    stages = [s for s in (args.stages or ",".join(known)).split(",") if s]
    unknown = [s for s in stages if s not in known]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; the project's engine has {', '.join(known)}")
    return run_stages(args.project.resolve(), stages)


if __name__ == "__main__":
    raise SystemExit(main())
