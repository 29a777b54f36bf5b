"""Step rate and time left of a running stage, the same in `kimi-tui status` and the TUI.

The rate is measured over the last RATE_WINDOW_S seconds of progress events, not
since the start: a train stage's first steps include warm-up, a checkpoint save
stalls a few, and a machine that got busy (or quiet) halfway changes the pace;
an average since the start drags the old pace along for the rest of the run.
Workers report progress at most once a second (and at the last step), so the
window holds a few dozen samples at most. Headless: no textual.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

RATE_WINDOW_S = 30.0
MAX_SAMPLES = 500


def recent_rate(samples: Sequence[tuple[float, int]], window_s: float = RATE_WINDOW_S) -> float | None:
    """Steps per second between the last sample and the oldest one of the last WINDOW_S seconds
    (the one before the last when the last step alone took longer than the window); None until
    two samples at distinct times and steps exist."""
    if len(samples) < 2:
        return None
    t_last, step_last = samples[-1]
    first = None
    for i in range(len(samples) - 2, -1, -1):
        sample = samples[i]
        if sample[1] >= step_last:  # the same step said twice (the last step, then the end)
            continue
        if sample[0] < t_last - window_s:
            first = first or sample
            break
        first = sample
    if first is None:
        return None
    dt, dstep = t_last - first[0], step_last - first[1]
    return dstep / dt if dt > 0 and dstep > 0 else None


def eta_seconds(step: int, total: int, rate: float | None, last_t: float, now: float) -> float | None:
    """Seconds left at RATE, counting down from the last event; never below what the steps
    after the one under way need (a step slower than the rate does not read 0:00:00)."""
    if rate is None or rate <= 0 or not total:
        return None
    left = max(0, total - step)
    if left == 0:
        return 0.0
    return max((left - 1) / rate, left / rate - max(0.0, now - last_t))


@dataclass
class StepProgress:
    """A stage's step/total and the recent (time, step) samples, from its progress events."""

    step: int | None = None
    total: int | None = None
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    def add(self, t: float, step: int, total: int) -> None:
        if self.samples and (step < self.samples[-1][1] or total != self.total):
            self.samples.clear()  # a new count (the next phase or split): its own rate
        self.step, self.total = step, total
        self.samples.append((t, step))

    def add_events(self, events: Iterable[dict[str, Any]]) -> "StepProgress":
        for event in events:
            if event.get("type") != "progress" or not event.get("total"):
                continue
            try:
                self.add(float(event.get("t") or 0), int(event["step"]), int(event["total"]))
            except (KeyError, TypeError, ValueError):
                continue
        return self

    def rate(self) -> float | None:
        return recent_rate(self.samples)

    def eta_s(self, now: float | None = None) -> float | None:
        if self.step is None or not self.total or not self.samples:
            return None
        return eta_seconds(self.step, self.total, self.rate(), self.samples[-1][0],
                           time.time() if now is None else now)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        rate, eta = self.rate(), self.eta_s(now)
        return {
            "step": self.step,
            "total": self.total,
            "steps_per_s": None if rate is None else round(rate, 4),
            "eta_s": None if eta is None else round(eta, 1),
            "updated": self.samples[-1][0] if self.samples else None,
        }

    def summary(self, now: float | None = None) -> str | None:
        """'57/200 (28%) · 1.9 st/s · ETA 0:01:15', or None before the first progress event."""
        if self.step is None or not self.total:
            return None
        parts = [f"{self.step}/{self.total} ({self.step / self.total:.0%})"]
        rate = self.rate()
        if rate is not None:
            parts.append(rate_text(rate))
            parts.append(f"ETA {duration(self.eta_s(now))}")
        return " · ".join(parts)


def rate_text(rate: float) -> str:
    return f"{rate:.0f} st/s" if rate >= 100 else f"{rate:.1f} st/s" if rate >= 1 else f"{1 / rate:.1f} s/st"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "?"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def keep_running_line(runs: Iterable[Any], project_root: Any) -> str | None:
    """What a user who quits the TUI is told about the runs it leaves going (they are detached)."""
    active = [r for r in runs if getattr(r, "active", False)]
    if not active:
        return None
    names = ", ".join(f"{r.stage} {r.run_id}" for r in active)
    verb = "run keeps" if len(active) == 1 else "runs keep"
    return f"{len(active)} {verb} running: {names}; follow with kimi-tui status --project {project_root}"


def run_progress(run_dir: Any, max_bytes: int = 16384) -> StepProgress:
    """A run's progress from the tail of its events.jsonl (a long run's file is not read whole)."""
    from pathlib import Path

    from kimi_tui.events import read_events_tail

    return StepProgress().add_events(read_events_tail(Path(run_dir) / "events.jsonl", max_bytes))


@dataclass
class EventsRead:
    """What was appended to events.jsonl between two byte offsets, boiled down."""

    start: int
    end: int
    progress: list[tuple[float, int, int]] = field(default_factory=list)  # (time, step, total)
    losses: list[tuple[float, float]] = field(default_factory=list)  # (step, loss)
    last_error: str | None = None


def read_new_events(path: Any, offset: int) -> EventsRead:
    """The progress, losses and last error written after OFFSET (complete lines only: a line
    still being written is left for the next read); what a follower of a run needs each second."""
    from kimi_tui.events import read_events_after

    events, end = read_events_after(path, offset)
    result = EventsRead(offset, end)
    for event in events:
        kind = event.get("type")
        try:
            if kind == "progress" and event.get("total"):
                result.progress.append((float(event.get("t") or 0), int(event["step"]), int(event["total"])))
            elif kind == "metric" and isinstance(event.get("loss"), (int, float)):
                result.losses.append((float(event.get("step") or 0), float(event["loss"])))
            elif kind == "error" and event.get("message"):
                result.last_error = str(event["message"])
        except (KeyError, TypeError, ValueError):
            continue
    result.progress = result.progress[-MAX_SAMPLES:]
    return result


@dataclass
class RunProgress(StepProgress):
    """A followed run's progress so far, merged read after read: step/total with rate and ETA,
    the last loss, the last error."""

    offset: int = 0
    loss: float | None = None
    last_error: str | None = None

    def merge(self, read: EventsRead) -> None:
        self.offset = read.end
        for t, step, total in read.progress:
            self.add(t, step, total)
        if read.losses:
            self.loss = read.losses[-1][1]
        if read.last_error:
            self.last_error = read.last_error
