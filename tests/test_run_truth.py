"""A run's state is its processes' truth: a killed supervisor, an emptied or replaced status.json, a
damaged run folder never make kimi-tui say `interrupted` (or `stopped`) while a process of the run
lives, never keep `stop` from ending them, and never break the other runs and commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.cli import main
from kimi_tui.errors import RunError
from kimi_tui.pipeline import ensure_no_active
from kimi_tui.project import Project, init_project
from kimi_tui.runs import (
    RUN_ENV, StagePlan, list_runs, processes_left, read_run, start_stage, stop_run, wait_run,
)


def wait_for(what, timeout: float = 30.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


# A worker with a grandchild in a session of its own (a torchrun rank): it writes both pids and
# trains on, ignoring SIGINT the way a busy rank does.
WORKER = (
    "import os, signal, subprocess, sys, time\n"
    "rank = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    "open(os.environ['KIMI_TUI_RUN_DIR'] + '/pids', 'w').write(f'{os.getpid()} {rank.pid}')\n"
    "time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 120)\n"
)


def start_worker(runs_dir: Path, stage: str = "train", seconds: float = 120) -> tuple[Path, int, int]:
    plan = StagePlan(stage=stage, argv=[sys.executable, "-c", WORKER, str(seconds)])
    run_dir = start_stage(runs_dir, plan)
    pids = wait_for(lambda: (run_dir / "pids").exists() and (run_dir / "pids").read_text().split())
    wait_for(lambda: read_run(run_dir).raw.get("supervisor_pid"))
    return run_dir, int(pids[0]), int(pids[1])


def kill_supervisor(run_dir: Path) -> int:
    sup = read_run(run_dir).raw["supervisor_pid"]
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not processes_left({sup}))
    return sup


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "p", sample=True)


def test_every_process_of_a_run_carries_its_mark(tmp_path: Path) -> None:
    run_dir, worker, rank = start_worker(tmp_path / "runs")
    key = json.loads((run_dir / "status.json").read_text())["key"]
    for pid in (worker, rank):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"{RUN_ENV}={run_dir.name}/{key}".encode() in environ
    info = read_run(run_dir)
    assert {worker, rank, info.raw["supervisor_pid"]} <= info.processes
    stop_run(run_dir, grace=(0.5, 0.5, 2.0))


def test_a_killed_supervisor_leaves_the_run_running_until_its_last_process_ends(tmp_path: Path) -> None:
    run_dir, worker, rank = start_worker(tmp_path / "runs", seconds=120)
    sup = kill_supervisor(run_dir)
    info = read_run(run_dir)
    assert info.state == "running" and info.active
    assert {worker, rank} <= info.processes
    assert f"supervisor (pid {sup}) is gone" in info.note
    assert [r.state for r in list_runs(tmp_path / "runs")] == ["running"]
    # The worker ends on its own; its rank too: only then is the run over, and nobody recorded how.
    os.kill(rank, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    info = wait_run(run_dir, poll_s=0.05)
    assert info.state == "interrupted" and not info.processes
    assert "ended without recording how the stage ended" in info.note


def test_stop_ends_every_process_of_a_run_whose_supervisor_was_killed(project: Project, capsys) -> None:
    run_dir, worker, rank = start_worker(project.runs_dir)
    kill_supervisor(run_dir)
    # No second train run while the first one's processes write training/.
    with pytest.raises(RunError, match=rf"{run_dir.name} \(train\) is still running .*supervisor .* is gone"):
        ensure_no_active(project, "train")
    assert main(["stop", run_dir.name, "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert not processes_left({worker, rank})
    info = read_run(run_dir)
    assert info.state == "stopped" and not info.processes
    assert {worker, rank} <= set(info.raw["stopped_pids"])
    assert f"{run_dir.name}: stopped" in out and "no process of the run is left" in out
    ensure_no_active(project, "train")  # free again


@pytest.mark.parametrize("damage", ["emptied", "truncated", "replaced", "deleted"])
def test_stop_finds_the_processes_of_a_run_whose_status_json_was_damaged_while_it_ran(
        tmp_path: Path, damage: str) -> None:
    runs = tmp_path / "runs"
    other = wait_run(start_stage(runs, StagePlan(stage="prepare", argv=[sys.executable, "-c", "pass"])))
    run_dir, worker, rank = start_worker(runs)
    status = run_dir / "status.json"
    text = status.read_text()
    if damage == "emptied":
        status.write_text("")
    elif damage == "truncated":
        status.write_text(text[: len(text) // 2])
    elif damage == "replaced":  # another run's status.json copied over it
        shutil.copy(other.path / "status.json", status)
    else:
        status.unlink()
    info = read_run(run_dir)
    assert info.state == "running" and info.problem and {worker, rank} <= info.processes
    listed = {r.run_id: r for r in list_runs(runs)}
    assert listed[other.run_id].state == "succeeded" and listed[run_dir.name].state == "running"
    info = stop_run(run_dir, grace=(0.5, 0.5, 2.0))
    assert not processes_left({worker, rank})
    assert info.state == "stopped" and info.problem is None
    json.loads(status.read_text())  # valid again
    if damage == "replaced":  # still another run's at the end: set aside, never deleted
        assert json.loads(next(run_dir.glob("status.json.damaged-*")).read_text())["run_id"] == other.run_id
    assert read_run(other.path).state == "succeeded"


def test_a_pgid_alone_proves_nothing(tmp_path: Path) -> None:
    """pids are reused: a status.json naming a live process group that is not the run's is never
    taken for the run, and stop never signals it."""
    runs = tmp_path / "runs"
    run_dir = wait_run(start_stage(runs, StagePlan(stage="train", argv=[sys.executable, "-c", "pass"]))).path
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        raw = json.loads((run_dir / "status.json").read_text())
        raw.update(state="running", pgid=stranger.pid, pid=stranger.pid, supervisor_pid=stranger.pid)
        (run_dir / "status.json").write_text(json.dumps(raw))
        info = read_run(run_dir)
        # The recorded supervisor pid is alive, but it is not the run's: the run is over.
        assert not info.processes and info.state == "interrupted"
        stop_run(run_dir, grace=(0.2, 0.2, 0.2))
        assert stranger.poll() is None, "stop signalled a process that is not the run's"
    finally:
        stranger.kill()
        stranger.wait()


def damage_runs(runs: Path) -> dict[str, str]:
    """Three good runs and one of each kind of damage; returns run id -> expected reason."""
    made = {}
    for n in range(3):
        made[wait_run(start_stage(runs, StagePlan(stage="prepare", argv=[sys.executable, "-c", "pass"]))).run_id] = ""
    cases = {
        "list": ("[1, 2, 3]", "holds a JSON list, not an object"),
        "types": (json.dumps({"state": "succeeded", "pid": "abc", "created": "yesterday", "exit_code": 0.5}),
                  "'pid' is \"abc\", not a whole number"),
        "state": (json.dumps({"state": 7}), "'state' is 7, not text"),
        "unknown-state": (json.dumps({"state": "exploded"}), "'state' is 'exploded', not one of"),
        "binary": (b"\xff\xfe\x00garbage", "not UTF-8"),
        "directory": (None, "cannot read status.json"),
    }
    for i, (name, (content, reason)) in enumerate(cases.items()):
        run_id = f"20260101-0000{i:02d}-000000-train"
        folder = runs / run_id
        folder.mkdir()
        if content is None:
            (folder / "status.json").mkdir()  # a folder where the file should be: reading it fails
        elif isinstance(content, bytes):
            (folder / "status.json").write_bytes(content)
        else:
            (folder / "status.json").write_text(content)
        made[run_id] = reason
    (runs / "notes").mkdir()  # the user's own folder: not a run, ignored
    return made


def test_one_damaged_run_folder_breaks_no_command(project: Project, capsys) -> None:
    made = damage_runs(project.runs_dir)
    runs = {r.run_id: r for r in list_runs(project.runs_dir)}
    assert set(runs) == set(made)
    for run_id, reason in made.items():
        if reason:
            assert runs[run_id].state == "damaged" and reason in runs[run_id].problem, runs[run_id]
        else:
            assert runs[run_id].state == "succeeded"
    root = str(project.root)
    assert main(["status", "--project", root]) == 0
    out = capsys.readouterr().out
    assert out.count("damaged") >= 6 and "holds a JSON list" in out
    assert main(["status", "--project", root, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert sum(r["state"] == "damaged" for r in listed) == 6
    damaged = next(r for r, why in made.items() if "JSON list" in why)
    assert main(["stop", damaged, "--project", root]) == 0  # nothing of it runs: said so, no traceback
    assert f"{damaged}: damaged" in capsys.readouterr().out
    ensure_no_active(project, "train")  # a damaged run with no process blocks nothing
    assert main(["run", "prepare", "--project", root, "--wait"]) == 0
    assert "succeeded" in capsys.readouterr().out
    assert main(["doctor", "--project", root]) in (0, 1)  # findings, not a crash
    assert main(["report", "--project", root]) == 2  # no evaluation yet: said so
    assert "no evaluation" in capsys.readouterr().err


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def nobody_can_run_kimi_tui() -> bool:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import kimi_tui.cli"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not nobody_can_run_kimi_tui(), reason="root reads any folder: this needs root, setpriv and "
                    "an interpreter + checkout the unprivileged user 'nobody' can run")
def test_a_run_folder_this_user_cannot_read_is_listed_damaged() -> None:
    home = Path(tmp_path_world := Path("/tmp") / f"kimi-tui-unreadable-{os.getpid()}")
    shutil.rmtree(home, ignore_errors=True)
    try:
        project = init_project(home / "p", sample=True)
        good = wait_run(start_stage(project.runs_dir, StagePlan(stage="prepare", argv=[sys.executable, "-c", "pass"])))
        locked = wait_run(start_stage(project.runs_dir, StagePlan(stage="train", argv=[sys.executable, "-c", "pass"])))
        subprocess.run(["chmod", "-R", "a+rX", str(tmp_path_world)], check=True)
        os.chmod(locked.path, 0o700)  # root's alone
        done = subprocess.run(
            [*AS_NOBODY, sys.executable, "-m", "kimi_tui", "status", "--project", str(project.root)],
            capture_output=True, text=True, env={**os.environ, "HOME": str(home)}, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        lines = done.stdout.splitlines()
        at = next(i for i, l in enumerate(lines) if locked.run_id in l)
        assert "damaged" in lines[at] and "cannot read status.json: Permission denied" in lines[at + 1]
        assert "succeeded" in next(l for l in done.stdout.splitlines() if good.run_id in l)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_run_all_supervisor_killed_mid_pipeline_is_running_and_stop_ends_its_stages(project: Project) -> None:
    from kimi_tui.pipeline import start

    all_dir = start(project, "all")
    stage_dir = wait_for(lambda: next((r.path for r in list_runs(project.runs_dir) if r.stage == "prepare"), None),
                         timeout=60)
    wait_for(lambda: read_run(stage_dir).pid, timeout=60)
    kill_supervisor(all_dir)
    info = read_run(all_dir)
    assert info.state == "running" and "supervisor" in info.note  # the pipeline process goes on
    with pytest.raises(RunError, match="still running"):
        ensure_no_active(project, "train")
    stage = read_run(stage_dir)
    pids = set(info.processes)
    assert stage.processes and stage.processes <= info.processes  # the stage is part of the all run
    info = stop_run(all_dir, grace=(5.0, 5.0, 5.0))
    assert not processes_left(pids | set(stage.processes))
    assert info.state == "stopped"
    assert read_run(stage_dir).state in ("stopped", "succeeded")
    assert not any(r.active for r in list_runs(project.runs_dir))


def test_kimi_tui_toml_broken_while_run_all_is_between_stages_fails_it_with_the_reason(project: Project) -> None:
    from kimi_tui.pipeline import start

    all_dir = start(project, "all")
    # Once prepare has read the config (it prints its first split), the config is broken: prepare
    # finishes, and the next stage cannot be planned.
    def prepare_log() -> str:
        runs = [r for r in list_runs(project.runs_dir) if r.stage == "prepare"]
        return runs and (runs[0].path / "stdout.log").read_text(encoding="utf-8")

    wait_for(lambda: "rows read" in (prepare_log() or ""), timeout=60)
    project.config_path.write_text("[train\nepochs = = 3\n", encoding="utf-8")
    info = wait_run(all_dir, poll_s=0.1)
    log = (all_dir / "stdout.log").read_text(encoding="utf-8")
    assert info.state == "failed" and info.exit_code == 2, log[-2000:]
    assert "pipeline: cannot plan " in log and "kimi-tui.toml" in log
    assert "Traceback" not in log
    assert "kimi-tui.toml" in (info.note or "")  # the reason, in status and the Run panel
    assert not any(r.active for r in list_runs(project.runs_dir))
