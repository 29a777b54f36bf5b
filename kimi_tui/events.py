"""The event protocol between stage workers and everything that watches them.

A worker appends one JSON object per line to ``events.jsonl`` in its run
directory (path in ``$KIMI_TUI_EVENTS``); readers (``kimi-tui status``, the TUI)
tail it. JSON lines survive a crash: a reader ignores a truncated last line.
Standard library only, because workers of the kimi-audio engine run under the
user's own interpreter, which may lack kimi-tui's dependencies.

Event types: ``progress`` (step, total), ``metric`` (step + named values such as
loss, learning_rate), ``artifact`` (kind, path), ``stage`` (a phase begins),
``error`` (message), ``note`` (message).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from time import monotonic
from typing import Any, Iterator

EVENTS_ENV = "KIMI_TUI_EVENTS"


class EventWriter:
    """Appends events; a no-op when the worker runs by hand without a run dir."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = os.environ.get(EVENTS_ENV) or None
        self.path = Path(path) if path else None

    def emit(self, type: str, **fields: Any) -> None:
        if self.path is None:
            return
        record = {"t": round(time.time(), 3), "type": type, **fields}
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        # One write per line with O_APPEND: concurrent writers never interleave a line.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:  # the run folder moved or deleted, a full disk: the stage goes on
            self._lost(exc)
            return
        try:
            data = line.encode("utf-8")
            written = os.write(fd, data)
            if written != len(data):  # the disk filled mid-line: take the fragment back
                os.ftruncate(fd, os.fstat(fd).st_size - written)
                raise OSError(28, "No space left on device")
        except OSError as exc:
            self._lost(exc)
        finally:
            os.close(fd)

    def _lost(self, exc: OSError) -> None:
        """An event that cannot be written is said once on stderr (the run's log), never raised:
        a worker must not die of its progress report, least of all in its disk-full handler."""
        if not getattr(self, "_warned", False):
            self._warned = True
            sys.stderr.write(f"kimi-tui: events no longer recorded in {self.path}: {exc.strerror or exc}\n")

    def progress(self, step: int, total: int, **fields: Any) -> None:
        self.emit("progress", step=step, total=total, **fields)

    def step_progress(self, step: int, total: int, min_interval_s: float = 1.0, **fields: Any) -> bool:
        """``progress`` for a loop that may step hundreds of times a second: at most one event
        per MIN_INTERVAL_S, the last step always (events.jsonl stays small; watchers see every second).
        True when written."""
        now = monotonic()
        last = getattr(self, "_last_step_progress", None)
        if step < total and last is not None and now - last < min_interval_s:
            return False
        self._last_step_progress = now
        self.progress(step, total, **fields)
        return True

    def metric(self, step: int, **values: Any) -> None:
        self.emit("metric", step=step, **values)

    def artifact(self, kind: str, path: str | os.PathLike[str], **fields: Any) -> None:
        self.emit("artifact", kind=kind, path=str(path), **fields)

    def note(self, message: str, **fields: Any) -> None:
        self.emit("note", message=message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message=message, **fields)


def _event(raw: bytes) -> dict[str, Any] | None:
    """One complete line as an event; None for a garbled line or one that is not an event."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "type" in record else None


def _complete_events(data: bytes) -> list[dict[str, Any]]:
    """The events of DATA's complete lines; a last line without its newline (a writer mid-line,
    or one killed there) ends the list."""
    events = []
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        event = _event(raw)
        if event is not None:
            events.append(event)
    return events


def read_events(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield complete events; a truncated or garbled line (a killed writer) is skipped."""
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                event = _event(raw)
                if event is not None:
                    yield event
    except FileNotFoundError:
        return


def read_events_after(path: str | os.PathLike[str], offset: int) -> tuple[list[dict[str, Any]], int]:
    """The complete events written after byte OFFSET, and the offset to read from next time (the
    end of the last complete line: a line still being written is read whole on the next call).
    A follower calls this again and again, so a long run's file is read once, not every second."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return _complete_events(data[: end + 1]), offset + end + 1


def read_events_tail(path: str | os.PathLike[str], max_bytes: int = 16384) -> list[dict[str, Any]]:
    """The complete events among the last MAX_BYTES of the file (the line cut by the start of
    that window dropped): what a status needs of a long run's events without reading them all."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(0, size - max_bytes - 1)  # one byte more: is the window's first line whole?
            fh.seek(start)
            data = fh.read(size - start)
    except (FileNotFoundError, NotADirectoryError):
        return []
    if start > 0:
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    return _complete_events(data)
