"""The parent of every stage worker: it outlives the terminal and records how the stage ended.

A stage is started detached (its own session, so SIGHUP from a closing SSH
connection or tmux pane never reaches it). The launcher may exit straight away,
so someone else must wait for the worker and write its exit code: this small
process does, then exits. It imports only the standard library and
kimi_tui.fsutil/events, so it costs nothing next to the worker.

Stops are sent to the whole process group (see runs.stop_run); the supervisor
shares that group, ignores the signals itself and records "stopped" once the
worker is gone.

Usage: python -m kimi_tui.supervisor RUN_DIR
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kimi_tui.events import EVENTS_ENV, EventWriter
from kimi_tui.fsutil import atomic_write_json

STOP_MARKER = "stop_requested"
# Whole words of the name only: HF_TOKEN and AWS_SECRET_ACCESS_KEY are secrets, TOKENIZERS_PARALLELISM is not.
SECRET_ENV = re.compile(r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|CREDENTIALS?)(_|$)", re.I)
MASK = b"***"


def secret_values(env: dict[str, str]) -> list[bytes]:
    """Values of secret-named variables long enough to mask without mangling ordinary output."""
    return sorted({v.encode() for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= 6}, key=len, reverse=True)


def copy_masked(source, log, secrets: list[bytes]) -> None:
    """Worker output -> stdout.log with every secret replaced, also one split across two reads."""
    keep = max(len(s) for s in secrets) - 1
    pending = b""
    while True:
        chunk = os.read(source.fileno(), 65536)
        if not chunk:
            break
        pending += chunk
        for secret in secrets:
            pending = pending.replace(secret, MASK)
        cut = max(0, len(pending) - keep)
        newline = pending.rfind(b"\n", 0, len(pending))
        if newline >= cut:
            cut = newline + 1  # whole lines go out at once; only a possible secret prefix waits
        log.write(pending[:cut])
        pending = pending[cut:]
    log.write(pending)


def _update_status(run_dir: Path, **fields: object) -> dict:
    path = run_dir / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = {}
    status.update(fields)
    atomic_write_json(path, status)
    return status


def supervise(run_dir: Path) -> int:
    plan = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    stop_signals: list[int] = []

    def on_stop(signum: int, _frame: object) -> None:
        stop_signals.append(signum)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)

    env = os.environ.copy()
    env.update(plan.get("env", {}))
    env[EVENTS_ENV] = str(run_dir / "events.jsonl")
    env["KIMI_TUI_RUN_DIR"] = str(run_dir)
    env.setdefault("PYTHONUNBUFFERED", "1")
    events = EventWriter(run_dir / "events.jsonl")
    # Only this process writes status.json from here on (no lost updates).
    _update_status(run_dir, supervisor_pid=os.getpid(), pgid=os.getpgid(0), host=socket.gethostname())
    # Output goes straight to the log (the worker outlives even a killed supervisor), except when
    # the environment holds a secret (HF_TOKEN...): then it passes through here to be masked.
    secrets = secret_values(env)
    with open(run_dir / "stdout.log", "ab", buffering=0) as log:
        try:
            worker = subprocess.Popen(
                plan["argv"],
                cwd=plan.get("cwd") or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if secrets else log,
                stderr=subprocess.STDOUT,
                # exec resets the caught SIGINT/SIGTERM to their defaults in the
                # worker, and keeps SIGHUP ignored: exactly what a stage needs.
            )
        except OSError as exc:
            log.write(f"kimi-tui: cannot start {plan['argv'][0]!r}: {exc}\n".encode())
            events.error(f"cannot start {plan['argv'][0]!r}: {exc}")
            _update_status(run_dir, state="failed", exit_code=127, ended=time.time())
            return 127
        _update_status(
            run_dir,
            state="running",
            pid=worker.pid,
            started=time.time(),
        )
        events.emit("state", state="running", pid=worker.pid)
        if secrets:
            copy_masked(worker.stdout, log, secrets)
        while True:
            try:
                code = worker.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
    stopped = bool(stop_signals) or (run_dir / STOP_MARKER).exists()
    if code == 0:
        state = "succeeded"
    elif stopped:
        state = "stopped"
    else:
        state = "failed"
    events.emit("state", state=state, exit_code=code)
    _update_status(run_dir, state=state, exit_code=code, ended=time.time())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kimi_tui.supervisor RUN_DIR", file=sys.stderr)
        return 2
    return supervise(Path(args[0]).resolve())


if __name__ == "__main__":
    raise SystemExit(main())
