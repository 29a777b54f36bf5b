"""Runs: detached, recorded on disk, stoppable as a group, honest about dead processes."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.events import read_events
from kimi_tui.runs import StagePlan, group_alive, list_runs, read_run, start_stage, stop_run, wait_run


def py_plan(code: str, stage: str = "test") -> StagePlan:
    return StagePlan(stage=stage, argv=[sys.executable, "-c", code])


def wait_state(run_dir: Path, state: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_run(run_dir).state == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run_dir.name} never reached {state}: {read_run(run_dir)}")


def test_run_directory_records_command_log_events_and_exit_code(tmp_path: Path) -> None:
    code = (
        "import os, json; print('hello from the worker');"
        "open(os.environ['KIMI_TUI_EVENTS'], 'a').write(json.dumps({'type': 'progress', 'step': 1, 'total': 2}) + '\\n')"
    )
    run_dir = start_stage(tmp_path / "runs", py_plan(code))
    info = wait_run(run_dir)
    assert info.state == "succeeded" and info.exit_code == 0
    assert "hello from the worker" in (run_dir / "stdout.log").read_text()
    script = (run_dir / "command.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "hello from the worker" in script
    assert os.access(run_dir / "command.sh", os.X_OK)
    types = [e["type"] for e in read_events(run_dir / "events.jsonl")]
    assert "progress" in types and types[-1] == "state"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["host"] and status["pid"] and status["started"] <= status["ended"]


def test_failed_worker_is_failed_with_its_exit_code(tmp_path: Path) -> None:
    run_dir = start_stage(tmp_path / "runs", py_plan("import sys; print('boom'); sys.exit(3)"))
    info = wait_run(run_dir)
    assert (info.state, info.exit_code) == ("failed", 3)


def test_missing_program_fails_cleanly(tmp_path: Path) -> None:
    plan = StagePlan(stage="x", argv=["/nonexistent/program"])
    info = wait_run(start_stage(tmp_path / "runs", plan))
    assert info.state == "failed" and info.exit_code == 127
    assert "cannot start" in (info.path / "stdout.log").read_text()


def test_stop_escalates_past_a_worker_that_ignores_sigint(tmp_path: Path) -> None:
    code = (
        "import signal, time, subprocess, sys;"
        "signal.signal(signal.SIGINT, signal.SIG_IGN);"
        # a grandchild, as torchrun would have: it must die too
        "subprocess.Popen([sys.executable, '-c', 'import time, signal; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)']);"
        "print('ready', flush=True); time.sleep(60)"
    )
    run_dir = start_stage(tmp_path / "runs", py_plan(code))
    wait_state(run_dir, "running")
    deadline = time.monotonic() + 10
    while "ready" not in (run_dir / "stdout.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    pgid = read_run(run_dir).pgid
    started = time.monotonic()
    info = stop_run(run_dir, grace=(0.5, 2.0, 2.0))
    assert time.monotonic() - started < 6
    assert info.state == "stopped"
    assert not group_alive(pgid)


def test_killed_supervisor_reads_as_interrupted_not_running(tmp_path: Path) -> None:
    run_dir = start_stage(tmp_path / "runs", py_plan("import time; time.sleep(60)"))
    wait_state(run_dir, "running")
    pgid = read_run(run_dir).pgid
    os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_run(run_dir).state == "interrupted"
    assert [r.state for r in list_runs(tmp_path / "runs")] == ["interrupted"]


def test_truncated_last_event_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "progress", "step": 1, "total": 3}\n{"type": "prog')
    assert [e["step"] for e in read_events(path)] == [1]


def test_secrets_are_masked_in_command_sh() -> None:
    plan = StagePlan(stage="x", argv=["echo"], env={"HF_TOKEN": "hf_secret", "HF_HUB_OFFLINE": "1"})
    script = plan.shell_script()
    assert "hf_secret" not in script and "HF_HUB_OFFLINE=1" in script


@pytest.mark.parametrize("arg", ["a b", "it's", "中文 路径", "$(rm -rf /)"])
def test_command_sh_reproduces_arguments_exactly(tmp_path: Path, arg: str) -> None:
    plan = StagePlan(stage="x", argv=[sys.executable, "-c", "import sys; print(repr(sys.argv[1]))", arg])
    import subprocess

    script = tmp_path / "command.sh"
    script.write_text(plan.shell_script())
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(arg)


def test_a_token_in_the_environment_never_reaches_the_log(tmp_path: Path, monkeypatch) -> None:
    secret = "hf_Sup3rSecretTokenValue"
    monkeypatch.setenv("HF_TOKEN", secret)
    # Printed whole, split across two writes, and next to ordinary output that must survive.
    code = (
        "import os, sys, time; t = os.environ['HF_TOKEN'];"
        "print('token is', t, flush=True);"
        "sys.stdout.write(t[:7]); sys.stdout.flush(); time.sleep(0.3); sys.stdout.write(t[7:] + ' end\\n');"
        "print('TOKENIZERS_PARALLELISM stays', flush=True)"
    )
    plan = StagePlan(stage="x", argv=[sys.executable, "-c", code], env={"HF_TOKEN": secret, "TOKENIZERS_PARALLELISM": "false"})
    run_dir = start_stage(tmp_path / "runs", plan)
    assert wait_run(run_dir).state == "succeeded"
    log = (run_dir / "stdout.log").read_text()
    assert secret not in log and secret[:7] not in log
    assert "token is ***" in log and "*** end" in log and "TOKENIZERS_PARALLELISM stays" in log
    script = (run_dir / "command.sh").read_text()
    assert secret not in script and "TOKENIZERS_PARALLELISM=false" in script


def test_kimi_tui_stop_confirms_that_no_process_of_the_run_is_left(tmp_path: Path, capsys) -> None:
    from kimi_tui.cli import main
    from kimi_tui.project import init_project

    project = init_project(tmp_path / "p", sample=True)
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    run_dir = start_stage(project.runs_dir, py_plan(code, stage="train"))
    wait_state(run_dir, "running")
    deadline = time.monotonic() + 30  # until the grandchild exists
    while time.monotonic() < deadline and len(read_run(run_dir).processes) < 3:
        time.sleep(0.05)
    assert main(["stop", run_dir.name, "--project", str(project.root)]) == 0
    out = capsys.readouterr().out
    info = read_run(run_dir)
    assert info.state == "stopped" and not group_alive(info.pgid)
    assert f"no process of the run is left (process group {info.pgid} and its descendants" in out
    assert len(info.raw["stopped_pids"]) >= 3  # supervisor, worker, grandchild
    assert "GPU memory" in out


def test_stop_reaches_a_child_in_a_session_of_its_own_like_a_torchrun_rank(tmp_path: Path) -> None:
    """torchrun starts every rank with start_new_session: killing the group alone would orphan it."""
    marker = tmp_path / "rank.pid"
    code = (
        "import subprocess, sys, time\n"
        "rank = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'], start_new_session=True)\n"
        f"open({str(marker)!r}, 'w').write(str(rank.pid))\n"
        "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(120)\n"
    )
    run_dir = start_stage(tmp_path / "runs", py_plan(code))
    wait_state(run_dir, "running")
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    rank = int(marker.read_text())
    info = stop_run(run_dir, grace=(0.5, 0.5, 5.0))
    assert info.state == "stopped"
    assert rank in info.raw["stopped_pids"]
    from kimi_tui.runs import processes_left

    assert not processes_left({rank}), "the rank in its own session survived the stop"


def test_an_event_that_cannot_be_written_is_said_once_and_never_raised(tmp_path: Path, capsys) -> None:
    """A worker must not die of its progress report: the run folder moved away, a full disk."""
    from kimi_tui.events import EventWriter

    events = EventWriter(tmp_path / "moved-away" / "events.jsonl")
    events.progress(1, 2)
    events.error("the disk is full")
    err = capsys.readouterr().err
    assert err.count("events no longer recorded") == 1 and "No such file" in err
