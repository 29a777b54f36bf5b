"""Wall time of the sample's train stage on a busy CPU, by thread setting.

Usage: .venv/bin/python benchmarks/cpu_threads.py [--project DIR] [--steps N] [--hogs K] [--settings 0,1,2] [--limit S]

Why: on a 2-core machine at load 5-10 the sample's train stage took 17 minutes
instead of ~30 s. Torch runs each operator on as many OpenMP threads as there
are cores, and OpenMP threads meet at a barrier after every parallel region; on
a box where other processes hold the cores, each barrier waits for a thread the
kernel has not scheduled yet. The sample model's operators are tiny, so a step
is thousands of such barriers. The worker now takes min(cores, 4) threads, and 1
when the load average says the cores are taken (KIMI_TUI_CPU_THREADS overrides it;
0 leaves torch's own default, the old behaviour).

Runs the train worker with the plan's own command (`plan_stage`) for N optimizer
steps, once per setting of KIMI_TUI_CPU_THREADS, first on the machine as it is
and then with K busy-loop processes (killed afterwards). "0" (torch's default)
is the baseline of the same run. Prints seconds per run and per step.

Figures (2 cores shared with four other engineers' test runs, so "no hogs" was already at
load 9-11; 20 steps, runs stopped after 120 s and measured on the steps they did):
    hogs  threads  s/step
       0   0 (torch default)  5.67   (13/20 steps in 120 s)
       0   1                  0.73
       0   2                  1.71
       6   0 (torch default) 16.90   (3/20 steps in 120 s: the 17-minute train stage)
       6   1                  0.96
       6   2                  4.78
On such a box one thread is 6-17x faster than torch's default; the worker's default picks
1 there (cores minus the load average) and min(cores, 4) on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kimi_tui.events import read_events

HOG = "while True: pass"


def converted_project(where: Path) -> Path:
    from kimi_tui.pipeline import start
    from kimi_tui.project import init_project
    from kimi_tui.runs import wait_run

    root = where / "sample"
    project = init_project(root, sample=True)
    for stage in ("prepare", "extract", "convert"):
        info = wait_run(start(project, stage), poll_s=0.1)
        if info.state != "succeeded":
            raise SystemExit(f"{stage} {info.state}: see {info.path / 'stdout.log'}")
    return root


def train_command(root: Path, steps: int, output: Path) -> tuple[list[str], dict[str, str], str]:
    from kimi_tui.config import save_config, set_field
    from kimi_tui.pipeline import plan_stage
    from kimi_tui.project import Project

    project = Project.load(root)
    config = set_field(project.config, "train.epochs", steps)  # the sample is one batch: an epoch is a step
    save_config(project.config_path, config)
    plan = plan_stage(Project.load(root), "train")
    argv = list(plan.argv)
    argv[argv.index("--output") + 1] = str(output)
    return argv, dict(plan.env), plan.cwd


def timed(argv: list[str], env: dict[str, str], cwd: str, log: Path, limit_s: float) -> tuple[float, float | None, int]:
    """(wall seconds, seconds per optimizer step from the worker's progress events, steps done);
    a run past LIMIT_S is stopped (its own process only) and measured on the steps it did."""
    events = log.with_suffix(".events.jsonl")
    env = {**env, "KIMI_TUI_EVENTS": str(events)}
    start = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = 0
    took = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"train exited {code}: see {log}")
    progress = [e for e in read_events(events) if e["type"] == "progress"]
    if len(progress) < 2 or progress[-1]["step"] == progress[0]["step"]:
        return took, None, progress[-1]["step"] if progress else 0
    per_step = (progress[-1]["t"] - progress[0]["t"]) / (progress[-1]["step"] - progress[0]["step"])
    return took, per_step, progress[-1]["step"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, help="a sample project already converted (else made in a temp folder)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--hogs", type=int, default=6, help="busy-loop processes for the loaded runs")
    parser.add_argument("--settings", default="0,1,2", help="KIMI_TUI_CPU_THREADS values; 0 = torch's default")
    parser.add_argument("--limit", type=float, default=150.0, help="stop a run after this many seconds")
    parser.add_argument("--idle", action=argparse.BooleanOptionalAction, default=True,
                        help="also run on the machine as it is")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kimi-tui-threads-"))
    if args.project:  # a copy: the steps are set in its kimi-tui.toml, and the user's is left alone
        root = work / "sample"
        shutil.copytree(args.project, root, ignore=shutil.ignore_patterns("runs", "training*", "exports", "evaluations"))
    else:
        root = converted_project(work)
    argv, plan_env, cwd = train_command(root, args.steps, work / "out")
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start, {args.steps} steps, project {root}")
    rows = []
    for hogs in ([0] if args.idle else []) + [args.hogs]:
        procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
        try:
            if procs:
                time.sleep(3)  # let the load average see them
            for setting in settings:
                env = {**os.environ, **plan_env, "KIMI_TUI_CPU_THREADS": setting}
                env.pop("OMP_NUM_THREADS", None)
                load = os.getloadavg()[0]
                took, per_step, done = timed(argv, env, cwd, work / f"train-{hogs}-{setting}.log", args.limit)
                rows.append((hogs, setting, load, took, per_step, done))
                print(f"  hogs {hogs}  threads {setting:>3}  load {load:4.1f}  {took:7.1f} s wall  "
                      f"{per_step or float('nan'):6.2f} s/step  ({done}/{args.steps} steps)", flush=True)
        finally:
            for proc in procs:
                proc.kill()
            for proc in procs:
                proc.wait()
    print(f"{'hogs':>4} {'threads':>8} {'s/step':>8} {'vs baseline':>12}   (baseline: threads {settings[0]})")
    for hogs, setting, _load, _took, per_step, _done in rows:
        base = next(r[4] for r in rows if r[0] == hogs and r[1] == settings[0])
        ratio = f"{per_step / base:11.2f}x" if per_step and base else f"{'?':>12}"
        print(f"{hogs:4} {setting:>8} {per_step or float('nan'):8.2f} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
