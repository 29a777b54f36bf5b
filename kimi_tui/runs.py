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
import re
import secrets
import shlex
import shutil
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

from kimi_tui.errors import RunError, describe_os_error
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


def _new_run_id(stage: str) -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-%f") + f"-{stage}"


RUN_ID = re.compile(r"^\d{8}-\d{6}-\d{6}-[A-Za-z0-9_.-]+$")
# Every process of a run carries "run_id/key" of each run it belongs to in this variable (the
# supervisor gets it from launch(), everything below inherits it: workers, torchrun ranks in
# sessions of their own, an `all` run's stages). A run's processes are found by it, not by a
# pid in status.json: that file can be damaged, and the supervisor that writes it can be killed.
RUN_ENV = "KIMI_TUI_RUNS"
KNOWN_STATES = ACTIVE_STATES + FINAL_STATES


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


@dataclass
class ProcessTable:
    """One reading of /proc: every live process's parent and group, and the runs it belongs to."""

    parents: dict[int, int]
    groups: dict[int, int]
    marks: dict[str, dict[int, str]]  # run_id -> {pid: key}

    @classmethod
    def read(cls) -> "ProcessTable":
        parents: dict[int, int] = {}
        groups: dict[int, int] = {}
        marks: dict[str, dict[int, str]] = {}
        needle = RUN_ENV.encode() + b"="
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            fields = _proc_stat(pid)
            if fields is None or len(fields) < 3 or fields[0] == b"Z":
                continue
            parents[pid], groups[pid] = int(fields[1]), int(fields[2])
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:  # another user's process, or it just ended
                continue
            at = environ.find(needle)
            if at < 0 or (at and environ[at - 1] != 0):
                continue
            value = environ[at + len(needle):].split(b"\0", 1)[0].decode("utf-8", "replace")
            for token in value.split():
                run_id, _, key = token.partition("/")
                marks.setdefault(run_id, {})[pid] = key
        return cls(parents, groups, marks)

    def members(self, run_id: str, key: str | None, pgid: int | None) -> frozenset[int]:
        """The run's live processes: those marked with it (with its key, when status.json gives
        one), every descendant of those, and the rest of their process group (a child that
        cleared its environment). A pgid alone proves nothing: pids are reused."""
        found = {pid for pid, k in self.marks.get(run_id, {}).items() if key is None or not k or k == key}
        found.discard(os.getpid())
        if pgid and any(self.groups.get(pid) == pgid for pid in found):
            found |= {pid for pid, group in self.groups.items() if group == pgid}
        frontier = set(found)
        while frontier:
            frontier = {pid for pid, ppid in self.parents.items() if ppid in frontier and pid not in found}
            found |= frontier
        found.discard(os.getpid())
        return frozenset(found)


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
    processes: frozenset[int] = frozenset()  # live processes of the run, found by their mark
    problem: str | None = None  # why the run folder is damaged (state "damaged" when nothing runs)
    note: str | None = None  # what the state alone does not say (a lost supervisor, processes left)

    @property
    def active(self) -> bool:
        """Running, about to, or with any process of it still alive whatever status.json says."""
        return self.state in ACTIVE_STATES or bool(self.processes)

    @property
    def summary(self) -> str:
        """The state with what qualifies it, for one line of a listing."""
        return f"{self.state} ({self.note})" if self.note else self.state

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
            "processes": sorted(self.processes),
            "problem": self.problem,
            "note": self.note,
        }


def create_run(runs_dir: Path, plan: StagePlan, config_text: str | None = None) -> Path:
    """The run folder, whole or not at all: it is built under a hidden name and renamed into
    place, so a reader never meets a run without its status.json (nor a full disk one)."""
    run_id = _new_run_id(plan.stage)
    run_dir = runs_dir / run_id
    building = runs_dir / f".creating-{run_id}"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        building.mkdir()
        atomic_write_json(building / "plan.json", plan.to_dict())
        atomic_write_text(building / "command.sh", plan.shell_script())
        os.chmod(building / "command.sh", 0o755)
        if config_text is not None:
            atomic_write_text(building / "config.toml", config_text)
        (building / "stdout.log").touch()
        (building / "events.jsonl").touch()
        atomic_write_json(
            building / "status.json",
            {
                "run_id": run_id,
                "key": secrets.token_hex(6),
                "stage": plan.stage,
                "state": "queued",
                "exit_code": None,
                "created": time.time(),
                "host": socket.gethostname(),
                "argv": plan.argv,
            },
        )
        os.rename(building, run_dir)
    except OSError as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise RunError(_cannot_write(runs_dir, exc)) from None
    return run_dir


def _cannot_write(runs_dir: Path, exc: OSError) -> str:
    return f"cannot create a run in {runs_dir}: {describe_os_error(exc)}; nothing was started"


def launch(run_dir: Path) -> subprocess.Popen[bytes]:
    """Start the run's supervisor detached: its own session, no terminal, no stdin, marked
    (RUN_ENV) as this run's, and as every run the caller belongs to (`all` -> its stages)."""
    try:
        key = json.loads((run_dir / "status.json").read_text(encoding="utf-8")).get("key", "")
    except (OSError, ValueError, AttributeError):
        key = ""
    env = os.environ.copy()
    env[RUN_ENV] = " ".join(filter(None, [env.get(RUN_ENV, ""), f"{run_dir.name}/{key}"]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kimi_tui.supervisor", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(run_dir / "supervisor.log", "ab"),
        start_new_session=True,
        close_fds=True,
        env=env,
    )
    # Reap it when it ends, so a long-lived launcher (the TUI) leaves no zombie
    # that would make the group look alive.
    threading.Thread(target=proc.wait, name=f"reap-{run_dir.name}", daemon=True).start()
    return proc


def start_stage(runs_dir: Path, plan: StagePlan, config_text: str | None = None) -> Path:
    run_dir = create_run(runs_dir, plan, config_text)
    launch(run_dir)
    return run_dir


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "key": (str,), "stage": (str,), "state": (str,), "host": (str,),
    "exit_code": (int,), "pid": (int,), "pgid": (int,), "supervisor_pid": (int,),
    "created": (int, float), "started": (int, float), "ended": (int, float),
}
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number"}


def _read_status(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """status.json's fields that can be trusted, and why the file is damaged (None when it is not)."""
    path = run_dir / "status.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, "status.json is missing"
    except UnicodeDecodeError:
        return {}, "status.json is not UTF-8 text"
    except OSError as exc:
        return {}, f"cannot read status.json: {exc.strerror or exc}"
    if not text.strip():
        return {}, "status.json is empty"
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return {}, f"status.json is not valid JSON ({exc})"
    if not isinstance(raw, dict):
        return {}, f"status.json holds a JSON {type(raw).__name__}, not an object"
    problems = []
    for name, types in _FIELD_TYPES.items():
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            problems.append(f"{name!r} is {json.dumps(value, ensure_ascii=False)[:40]}, not {_TYPE_NAMES[types[-1]]}")
            raw.pop(name)
    if raw.get("state") is not None and raw["state"] not in KNOWN_STATES:
        problems.append(f"'state' is {raw.pop('state')!r}, not one of {', '.join(KNOWN_STATES)}")
    if raw.get("run_id") not in (None, run_dir.name):  # nothing in it is this run's
        return {}, (f"status.json names run {raw['run_id']!r}, not this folder's {run_dir.name!r} "
                    "(copied from another run?)")
    return raw, ("status.json: " + "; ".join(problems)) if problems else None


def read_run(run_dir: Path, table: ProcessTable | None = None) -> RunInfo:
    """The run as it really is: status.json checked against the run's live processes.

    A run whose supervisor died without writing its end (kill -9, reboot) is interrupted once no
    process of it is left, and running while one is; a damaged status.json is reported with its
    reason, never raised: one broken folder must not break every command on the project."""
    if not run_dir.is_dir() and not run_dir.exists():
        raise RunError(f"{run_dir}: no such run folder (was the project moved or the run deleted?)")
    raw, problem = _read_status(run_dir)
    here = raw.get("host") in (None, socket.gethostname())
    table = table if table is not None or not here else ProcessTable.read()
    processes = table.members(run_dir.name, raw.get("key"), raw.get("pgid")) if here and table else frozenset()
    recorded = raw.get("state")
    state, note = recorded or "interrupted", None
    sup = raw.get("supervisor_pid")
    if problem is not None:
        state = "running" if processes else "damaged"
    elif not here:
        note = f"on host {raw.get('host')}: its processes cannot be checked from here"
    elif recorded in ACTIVE_STATES:
        if processes and sup and sup not in processes:
            note = (f"its supervisor (pid {sup}) is gone; {len(processes)} process(es) of the run still run, "
                    "so nothing will record how it ends")
            state = "running"
        elif processes:
            pass
        elif sup or time.time() - (raw.get("created") or 0) > 30:
            state = "interrupted"
            note = ("its supervisor " + (f"(pid {sup}) " if sup else "") +
                    "ended without recording how the stage ended (killed, or the machine restarted)")
    elif processes:
        note = f"but {len(processes)} process(es) of it are still alive: {', '.join(map(str, sorted(processes)[:8]))}"
    elif recorded == "failed" and isinstance(raw.get("reason"), str):
        note = raw["reason"]  # the supervisor's: the last error the worker reported
    return RunInfo(
        run_id=run_dir.name,
        path=run_dir,
        stage=raw.get("stage") or run_dir.name.rsplit("-", 1)[-1],
        state=state,
        exit_code=raw.get("exit_code"),
        created=raw.get("created"),
        started=raw.get("started"),
        ended=raw.get("ended"),
        pid=raw.get("pid"),
        pgid=raw.get("pgid"),
        host=raw.get("host"),
        raw=raw,
        processes=processes,
        problem=problem,
        note=problem if problem is not None else note,
    )


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder under runs/, damaged ones included (state "damaged", with the reason)."""
    try:
        entries = sorted(runs_dir.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise RunError(f"{runs_dir} is a file, not the project's runs folder: move it aside") from None
    except OSError as exc:
        raise RunError(f"cannot read {runs_dir}: {exc.strerror or exc}") from None
    table = ProcessTable.read()
    runs = []
    for entry in entries:
        if entry.name.startswith(".") or not RUN_ID.match(entry.name):
            continue  # .lock, a run being created, the user's own notes
        try:
            if not entry.is_dir():
                continue
        except OSError:
            pass
        runs.append(read_run(entry, table))
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


def run_processes(pgid: int | None) -> set[int]:
    """The live processes of a process group and every descendant of it, including those
    that left the group (torchrun starts each rank in a session of its own)."""
    if not pgid:
        return set()
    table = ProcessTable.read()
    found = {pid for pid, group in table.groups.items() if group == pgid}
    frontier = set(found)
    while frontier:
        frontier = {pid for pid, ppid in table.parents.items() if ppid in frontier and pid not in found}
        found |= frontier
    return found


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (f := _proc_stat(pid)) is not None and f[0] != b"Z"}


def stop_run(run_dir: Path, grace: tuple[float, float, float] = (15.0, 10.0, 5.0)) -> RunInfo:
    """SIGINT every process of the run, then SIGTERM, then SIGKILL; return once none is left.

    The processes are the run's by their mark, whatever status.json says and whether or not its
    supervisor lives: a killed supervisor or an emptied status.json never hides a worker that
    goes on training. Each signal goes to every one of them, torchrun's ranks in sessions of
    their own included, and to those that appear while the stop goes on."""
    info = read_run(run_dir)
    members = set(info.processes)
    if not members:
        if info.host not in (None, socket.gethostname()) and info.state in ACTIVE_STATES:
            raise RunError(f"{run_dir.name} runs on host {info.host}: stop it there (`kimi-tui stop` on {info.host})")
        return info
    try:
        (run_dir / STOP_MARKER).write_text(str(time.time()))
    except OSError:
        pass  # a full disk or a read-only folder must not keep a run from stopping
    key = None if info.problem else info.raw.get("key")
    for sig, wait_s in zip((signal.SIGINT, signal.SIGTERM, signal.SIGKILL), grace):
        signalled: set[int] = set()
        deadline = time.monotonic() + wait_s
        while True:
            current = set(ProcessTable.read().members(run_dir.name, key, info.pgid))
            members |= current
            for pid in _alive(current) - signalled:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
                signalled.add(pid)
            if not _alive(members) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not _alive(members):
            break
    left = _alive(members)
    if left:
        raise RunError(f"{run_dir.name}: processes {sorted(left)} of the run survive SIGKILL")
    _record_stop(run_dir, sorted(members))
    return read_run(run_dir)


def _record_stop(run_dir: Path, stopped: list[int]) -> None:
    """After every process is gone: the final state, and what was stopped (for the GPU check).
    The supervisor has written its end by now unless it was killed; a damaged status.json is set
    aside (never deleted) and replaced by what is known."""
    raw, problem = _read_status(run_dir)
    if problem is not None:
        path = run_dir / "status.json"
        if path.exists():
            try:
                path.rename(run_dir / f"status.json.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            except OSError:
                pass
        raw = {"run_id": run_dir.name, "stage": run_dir.name.rsplit("-", 1)[-1],
               "note": f"status.json was damaged ({problem}); set aside, rewritten by the stop", **raw}
    if raw.get("state") not in FINAL_STATES:
        raw["state"] = "stopped"
    raw["ended"] = raw.get("ended") or time.time()
    raw["stopped_pids"] = stopped
    try:
        atomic_write_json(run_dir / "status.json", raw)
    except OSError as exc:
        raise RunError(f"{run_dir.name}: every process of the run is stopped, but its status.json cannot be "
                       f"written ({exc.strerror or exc})") from None


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
