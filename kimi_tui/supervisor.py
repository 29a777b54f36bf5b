"""The parent of every stage worker: it outlives the terminal and records how the stage ended.

A stage is started detached (its own session, so SIGHUP from a closing SSH
connection or tmux pane never reaches it). The launcher may exit straight away,
so someone else must wait for the worker and write its exit code: this small
process does, then exits. It imports only the standard library and kimi-tui's
stdlib-only modules (fsutil, events, errors, workers.disk_full), so it costs
nothing next to the worker.

Stops are sent to the whole process group (see runs.stop_run); the supervisor
shares that group, ignores the signals itself and records "stopped" once the
worker is gone.

A full disk must not take the record down with the run: the supervisor keeps a
small reserve file in the run folder and gives it up when status.json or
events.jsonl cannot be written, so a run that filled the disk still ends
"failed" with its exit code and the reason (the worker's last error line) in a
status.json that parses. It reaches the run folder through a directory file
descriptor opened at start, so a project moved (renamed on its file system)
while the run goes on still gets its final status.

Usage: python -m kimi_tui.supervisor RUN_DIR
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kimi_tui.events import EVENTS_ENV
from kimi_tui.fsutil import atomic_write_json
from kimi_tui.workers.disk_full import is_disk_full, nearly_full

STOP_MARKER = "stop_requested"
RESERVE = ".reserve"
RESERVE_BYTES = 256 << 10  # room for the last status.json and events of a run that filled its disk
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


class RunLog:
    """stdout.log as the supervisor appends to it: on a full disk the bytes are dropped (the
    worker must keep running and its pipe drained), never the supervisor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dropped = 0

    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self.dropped += len(view)


class RunFolder:
    """The run folder through a directory descriptor: the same folder wherever it is moved
    (on its file system), and a reserve of space given up when a record would not fit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self.reserved = self._reserve()

    def _reserve(self) -> bool:
        try:
            fd = os.open(RESERVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=self.fd)
        except OSError:
            return False
        try:
            # Random bytes: a compressing or deduplicating file system stores zeros in nothing.
            data = memoryview(os.urandom(RESERVE_BYTES))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
            return True
        except OSError:  # the disk is full already: nothing to keep
            self.release()
            return False
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Give the reserve back to the disk; whether there was one."""
        try:
            os.unlink(RESERVE, dir_fd=self.fd)
        except OSError:
            return False
        self.reserved = False
        return True

    def _retry_on_full(self, write: Any) -> None:
        try:
            write()
        except OSError as exc:
            if not (is_disk_full(exc) and self.release()):
                raise
            write()

    def read(self, name: str, tail: int | None = None) -> bytes:
        fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        try:
            if tail is not None:
                os.lseek(fd, max(0, os.fstat(fd).st_size - tail), os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.fd)
        except OSError:
            return False
        return True

    def open_log(self) -> RunLog:
        return RunLog(os.open("stdout.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644, dir_fd=self.fd))

    def update_status(self, **fields: object) -> dict:
        try:
            status = json.loads(self.read("status.json"))
            if not isinstance(status, dict):
                status = {}
        except (OSError, ValueError):
            status = {}
        status.update(fields)
        data = (json.dumps(status, ensure_ascii=False, indent=2, default=str) + "\n").encode("utf-8")
        try:
            self._retry_on_full(lambda: atomic_write_json("status.json", status, dir_fd=self.fd))
        except OSError as exc:
            if not (is_disk_full(exc) and self._write_in_place("status.json", data)):
                raise
        return status

    def _write_in_place(self, name: str, data: bytes) -> bool:
        """No room for a temporary file: overwrite the file's own blocks (its last one is
        allocated whole), padded with spaces (JSON allows them) to its old length, when the
        new text fits in them; else False."""
        try:
            fd = os.open(name, os.O_WRONLY, dir_fd=self.fd)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if len(data) > max(st.st_size, st.st_blocks * 512):
                return False
            os.pwrite(fd, data + b" " * max(0, st.st_size - len(data)), 0)
            os.fsync(fd)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def emit(self, type: str, **fields: Any) -> None:
        """One event, as events.EventWriter writes it; a line that did not fit is taken back."""
        record = {"t": round(time.time(), 3), "type": type, **fields}
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")

        def append() -> None:
            fd = os.open("events.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644, dir_fd=self.fd)
            try:
                before = os.fstat(fd).st_size
                try:
                    written = os.write(fd, line)
                except OSError:
                    written = 0
                    raise
                finally:
                    if written < len(line) and os.fstat(fd).st_size == before + written:
                        os.ftruncate(fd, before)  # no half line for the next writer to glue onto
                if written < len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "events.jsonl")
            finally:
                os.close(fd)

        self._retry_on_full(append)

    def failure_reason(self, code: int) -> str:
        """Why the worker failed, in one line: its last error event, else the last line it printed."""
        reason = ""
        try:
            for raw in reversed(self.read("events.jsonl", tail=256 << 10).splitlines()):
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("type") == "error" and event.get("message"):
                    reason = str(event["message"])
                    break
        except OSError:
            pass
        if not reason:
            try:
                lines = self.read("stdout.log", tail=16 << 10).decode("utf-8", "replace").splitlines()
            except OSError:
                lines = []
            reason = next((line.strip() for line in reversed(lines) if line.strip()), "")
        reason = (reason if len(reason) <= 600 else reason[:597] + "...") or f"exit code {code}"
        if "full" not in reason.lower() and nearly_full(self.fd):
            reason = f"disk full: the disk holding {self.path} has no space left; {reason}"
        return reason

    def close(self) -> None:
        self.release()
        os.close(self.fd)


def supervise(run_dir: Path) -> int:
    folder = RunFolder(run_dir)
    try:
        return _supervise(folder)
    finally:
        folder.close()


def _safely(what: str, write: Any, *args: Any, **fields: Any) -> None:
    """A record that cannot be written is reported on stderr (supervisor.log), not fatal:
    the worker must still be waited for and its end written when it can be."""
    try:
        write(*args, **fields)
    except OSError as exc:
        try:
            print(f"kimi-tui supervisor: cannot write {what}: {exc}", file=sys.stderr, flush=True)
        except OSError:
            pass


def _supervise(folder: RunFolder) -> int:
    run_dir = folder.path
    plan = json.loads(folder.read("plan.json"))
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
    # Only this process writes status.json from here on (no lost updates).
    _safely("status.json", folder.update_status,
            supervisor_pid=os.getpid(), pgid=os.getpgid(0), host=socket.gethostname())
    # Output goes straight to the log (the worker outlives even a killed supervisor), except when
    # the environment holds a secret (HF_TOKEN...): then it passes through here to be masked.
    secrets = secret_values(env)
    log = folder.open_log()
    try:
        try:
            worker = subprocess.Popen(
                plan["argv"],
                cwd=plan.get("cwd") or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if secrets else log.fd,
                stderr=subprocess.STDOUT,
                # exec resets the caught SIGINT/SIGTERM to their defaults in the
                # worker, and keeps SIGHUP ignored: exactly what a stage needs.
            )
        except OSError as exc:
            message = f"cannot start {plan['argv'][0]!r}: {exc}"
            log.write(f"kimi-tui: {message}\n".encode())
            _safely("events.jsonl", folder.emit, "error", message=message)
            _safely("status.json", folder.update_status, state="failed", exit_code=127, ended=time.time(),
                    reason=message)
            return 127
        _safely("status.json", folder.update_status, state="running", pid=worker.pid, started=time.time())
        _safely("events.jsonl", folder.emit, "state", state="running", pid=worker.pid)
        if secrets:
            copy_masked(worker.stdout, log, secrets)
        while True:
            try:
                code = worker.wait()
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
    finally:
        os.close(log.fd)
    stopped = bool(stop_signals) or folder.exists(STOP_MARKER)
    if code == 0:
        state = "succeeded"
    elif stopped:
        state = "stopped"
    else:
        state = "failed"
    end: dict[str, Any] = {"state": state, "exit_code": code, "ended": time.time()}
    if state == "failed":
        end["reason"] = folder.failure_reason(code)
    if log.dropped:
        end["log_dropped_bytes"] = log.dropped  # the disk was full: stdout.log lacks them
    _safely("events.jsonl", folder.emit, "state", state=state, exit_code=code)
    _safely("status.json", folder.update_status, **end)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m kimi_tui.supervisor RUN_DIR", file=sys.stderr)
        return 2
    return supervise(Path(args[0]).resolve())


if __name__ == "__main__":
    raise SystemExit(main())
