"""A run is a directory; this module is the only writer of its skeleton.

Everything a reader needs (the TUI, `kimi-tui status`, a second TUI after an SSH
drop) is on disk under ``runs/<id>/``: ``plan.json`` and ``command.sh`` (what
runs, runnable by hand), ``config.toml`` (the config it started with),
``status.json`` (state, pids, host, exit code, times), ``stdout.log`` and
``events.jsonl``. No process keeps state that is not there, so a run survives
every reader.

Stages run under kimi_tui.supervisor in a new session; stopping signals the
whole process group: SIGINT, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kimi_tui.errors import RunError
from kimi_tui.fsutil import atomic_write_json, atomic_write_text
from kimi_tui.supervisor import SECRET_ENV, STOP_MARKER

FINAL_STATES = ("succeeded", "failed", "stopped", "interrupted")
ACTIVE_STATES = ("queued", "running")



@dataclass
class StagePlan:
    """Exactly what a stage will execute: nothing is decided after launch."""

    stage: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "argv": list(self.argv),
            "env": dict(self.env),
            "cwd": self.cwd,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "description": self.description,
        }

    def shell_script(self) -> str:
        """command.sh: the plan as a script a user can rerun by hand; secrets masked."""
        lines = ["#!/usr/bin/env bash", f"# kimi-tui stage: {self.stage}"]
        if self.description:
            lines.append(f"# {self.description}")
        lines.append("set -euo pipefail")
        if self.cwd:
            lines.append(f"cd {shlex.quote(self.cwd)}")
        for key, value in self.env.items():
            shown = "***" if SECRET_ENV.search(key) else value
            lines.append(f"export {key}={shlex.quote(shown)}")
        lines.append("exec " + " \\\n  ".join(shlex.quote(a) for a in self.argv))
        return "\n".join(lines) + "\n"


@dataclass
class RunInfo:
    run_id: str
    path: Path
    stage: str
    state: str
    exit_code: int | None
    created: float | None
    started: float | None
    ended: float | None
    pid: int | None
    pgid: int | None
    host: str | None
    raw: dict[str, Any]

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stage": self.stage,
            "state": self.state,
            "exit_code": self.exit_code,
            "created": self.created,
            "started": self.started,
            "ended": self.ended,
            "pid": self.pid,
            "pgid": self.pgid,
            "host": self.host,
            "path": str(self.path),
        }


def _new_run_id(stage: str) -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f") + f"-{stage}"


def _proc_stat(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] != b"Z"  # a zombie is dead for our purposes


def group_alive(pgid: int | None) -> bool:
    """Whether any live (non-zombie) process is left in the process group."""
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.scandir("/proc"):
        fields = _proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


def create_run(runs_dir: Path, plan: StagePlan, config_text: str | None = None) -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_id = _new_run_id(plan.stage)
    run_dir = runs_dir / run_id
    run_dir.mkdir()
    atomic_write_json(run_dir / "plan.json", plan.to_dict())
    atomic_write_text(run_dir / "command.sh", plan.shell_script())
    os.chmod(run_dir / "command.sh", 0o755)
    if config_text is not None:
        atomic_write_text(run_dir / "config.toml", config_text)
    (run_dir / "stdout.log").touch()
    (run_dir / "events.jsonl").touch()
    atomic_write_json(
        run_dir / "status.json",
        {
            "run_id": run_id,
            "stage": plan.stage,
            "state": "queued",
            "exit_code": None,
            "created": time.time(),
            "host": socket.gethostname(),
            "argv": plan.argv,
        },
    )
    return run_dir


def launch(run_dir: Path) -> subprocess.Popen[bytes]:
    """Start the run's supervisor detached: its own session, no terminal, no stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimi_tui.supervisor", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(run_dir / "supervisor.log", "ab"),
        start_new_session=True,
        close_fds=True,
    )
    # Reap it when it ends, so a long-lived launcher (the TUI) leaves no zombie
    # that would make the group look alive.
    threading.Thread(target=proc.wait, name=f"reap-{run_dir.name}", daemon=True).start()
    return proc


def start_stage(runs_dir: Path, plan: StagePlan, config_text: str | None = None) -> Path:
    run_dir = create_run(runs_dir, plan, config_text)
    launch(run_dir)
    return run_dir


def read_run(run_dir: Path) -> RunInfo:
    """Status with the truth about dead processes: a run whose supervisor died
    without writing its end (kill -9, reboot) is reported interrupted."""
    try:
        raw = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RunError(f"{run_dir}: not a run directory (no status.json)") from exc
    except ValueError:
        raw = {"state": "interrupted", "note": "status.json unreadable"}
    state = raw.get("state", "interrupted")
    if state in ACTIVE_STATES and raw.get("host") in (None, socket.gethostname()):
        sup = raw.get("supervisor_pid")
        created = raw.get("created") or 0
        if sup and not _pid_alive(sup):
            state = "interrupted"
        elif not sup and time.time() - created > 30:
            state = "interrupted"
    return RunInfo(
        run_id=raw.get("run_id", run_dir.name),
        path=run_dir,
        stage=raw.get("stage", run_dir.name.rsplit("-", 1)[-1]),
        state=state,
        exit_code=raw.get("exit_code"),
        created=raw.get("created"),
        started=raw.get("started"),
        ended=raw.get("ended"),
        pid=raw.get("pid"),
        pgid=raw.get("pgid"),
        host=raw.get("host"),
        raw=raw,
    )


def list_runs(runs_dir: Path) -> list[RunInfo]:
    if not runs_dir.is_dir():
        return []
    runs = []
    for entry in sorted(runs_dir.iterdir()):
        if entry.is_dir() and (entry / "status.json").exists():
            runs.append(read_run(entry))
    return runs


def find_run(runs_dir: Path, ref: str) -> Path:
    """A run by id, unique id prefix or suffix (e.g. 'train' = the latest train run)."""
    runs = [r.path for r in list_runs(runs_dir)]
    exact = [p for p in runs if p.name == ref]
    if exact:
        return exact[0]
    matches = [p for p in runs if p.name.startswith(ref)] or [
        p for p in runs if p.name.endswith("-" + ref)
    ]
    if not matches:
        known = ", ".join(p.name for p in runs[-5:]) or "none yet"
        raise RunError(f"no run {ref!r} in {runs_dir} (latest: {known})")
    return matches[-1]


def _process_table() -> dict[int, tuple[int, int, bytes]]:
    """pid -> (ppid, pgid, state) for every process (Linux /proc)."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and len(fields) > 2:
                table[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def run_processes(pgid: int | None) -> set[int]:
    """The run's live processes: its process group and every descendant of it, including those
    that left the group (torchrun starts each rank in a session of its own)."""
    if not pgid:
        return set()
    table = _process_table()
    found = {pid for pid, (_, group, state) in table.items() if group == pgid and state != b"Z"}
    frontier = set(found)
    while frontier:
        frontier = {pid for pid, (ppid, _, state) in table.items()
                    if ppid in frontier and pid not in found and state != b"Z"}
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (f := _proc_stat(pid)) is not None and f[0] != b"Z"}


def stop_run(run_dir: Path, grace: tuple[float, float, float] = (15.0, 10.0, 5.0)) -> RunInfo:
    """SIGINT the run's processes, then SIGTERM, then SIGKILL; return once none is left.

    The signal goes to the process group and to each descendant outside it (torchrun's ranks
    live in their own sessions: a SIGKILL of torchrun alone would orphan them on the GPUs)."""
    info = read_run(run_dir)
    pgid = info.pgid
    members = run_processes(pgid)
    if not info.active or not members:
        if info.state in ACTIVE_STATES:
            _mark_final(run_dir, "stopped")
        return read_run(run_dir)
    (run_dir / STOP_MARKER).write_text(str(time.time()))
    for sig, wait_s in zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), grace):
        members |= run_processes(pgid)
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        for pid in _alive(members):
            if (f := _proc_stat(pid)) is not None and int(f[2]) != pgid:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            members |= run_processes(pgid)
            if not _alive(members):
                break
            time.sleep(0.1)
        if not _alive(members):
            break
    left = _alive(members)
    if left:
        raise RunError(f"{run_dir.name}: processes {sorted(left)} of the run survive SIGKILL")
    # Give the supervisor's final status write a moment, then make sure it is final.
    for _ in range(20):
        if read_run(run_dir).state in FINAL_STATES and json.loads(
            (run_dir / "status.json").read_text(encoding="utf-8")
        ).get("state") in FINAL_STATES:
            break
        time.sleep(0.05)
    raw = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    if raw.get("state") not in FINAL_STATES:
        _mark_final(run_dir, "stopped")
    raw = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    raw["stopped_pids"] = sorted(members)  # what was stopped, for the GPU-memory check
    atomic_write_json(run_dir / "status.json", raw)
    return read_run(run_dir)


def processes_left(pids: set[int]) -> set[int]:
    """Which of these processes still run (zombies count as gone)."""
    return _alive(set(pids))


def gpu_memory_left(pids: set[int], wait_s: float = 10.0) -> str:
    """After a stop: wait for the driver to drop the stopped processes' GPU memory and say so."""
    from kimi_tui.gpu import read_gpus

    deadline = time.monotonic() + wait_s
    while True:
        snapshot = read_gpus()
        if not snapshot.available:
            return f"no GPU memory to check ({snapshot.reason})"
        held = [(g.index, p.pid, p.used_bytes) for g in snapshot.gpus for p in g.processes if p.pid in pids]
        if not held:
            return f"GPU memory released: no process of the run is on any of the {len(snapshot.gpus)} GPUs"
        if time.monotonic() > deadline:
            return "GPU memory still held by " + ", ".join(
                f"pid {pid} on GPU {index} ({(used or 0) / 2**20:.0f} MiB)" for index, pid, used in held)
        time.sleep(0.5)


def _mark_final(run_dir: Path, state: str) -> None:
    path = run_dir / "status.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(state=state, ended=raw.get("ended") or time.time())
    atomic_write_json(path, raw)


def wait_run(run_dir: Path, poll_s: float = 0.2, on_output: Any = None) -> RunInfo:
    """Block until the run ends, feeding new stdout.log bytes to on_output."""
    log_path = run_dir / "stdout.log"
    offset = 0
    while True:
        info = read_run(run_dir)
        if on_output is not None and log_path.exists():
            with open(log_path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            if chunk:
                offset += len(chunk)
                on_output(chunk)
        if not info.active:
            return info
        time.sleep(poll_s)
