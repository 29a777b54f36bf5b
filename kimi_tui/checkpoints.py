"""Checkpoints as the user sees them: step, loss at that step, size, age, and whether it can be used.

Read from disk only (checkpoint-N/ folders and their trainer_state.json), so the
CLI, the TUI and a later session agree. A folder without its trainer_state.json
or weights is a save that was cut short (a killed worker, a full disk): it is
listed as incomplete and never offered for export, evaluation or resume. A
folder whose files are there but cannot be read (permissions after a copy by
another user, an I/O error) is *unreadable*, not incomplete: the fix is chmod or
the disk, not training again, so the OSError is kept and shown.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# What a complete checkpoint holds is defined once, with the workers that write and resume them
# (runtime.checkpoint_complete, by stat only); inspect_checkpoint below is its reading form.
from kimi_tui.workers.runtime import CHECKPOINT_RE, DEEPSPEED_STEP_GLOB, TRAINER_STATE, WEIGHT_FILES


State = Literal["complete", "incomplete", "unreadable"]


@dataclass
class Checkpoint:
    name: str
    step: int
    path: Path
    complete: bool
    loss: float | None
    size_bytes: int
    mtime: float
    state: State = "complete"
    #: Why it cannot be used, for one status line: "" when complete, else
    #: "incomplete: no trainer_state.json" or "unreadable: trainer_state.json: Permission denied".
    problem: str = ""
    #: The OSError behind an unreadable checkpoint.
    error: OSError | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "step": self.step,
            "path": str(self.path),
            "complete": self.complete,
            "state": self.state,
            "problem": self.problem,
            "loss": self.loss,
            "size_bytes": self.size_bytes,
            "mtime": self.mtime,
        }


class _Unreadable(Exception):
    def __init__(self, what: str, error: OSError):
        super().__init__(what)
        self.what = what
        self.error = error


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class _Missing(Exception):
    """A file a complete checkpoint needs is absent or cut short; the message says which."""


def _readable(path: Path, what: str) -> None:
    """Open (and close) a file, or raise _Unreadable: exists() says nothing about permission."""
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise _Missing(f"no {what}") from None
    except OSError as exc:
        raise _Unreadable(what, exc) from None


def _weights_problem(folder: Path, names: tuple[str, ...] = WEIGHT_FILES) -> str:
    """"" when the folder holds readable weights, else what is missing; _Unreadable when they can't be read."""
    unreadable: _Unreadable | None = None
    missing = "no weights"
    for name in names:
        path = folder / name
        if not path.exists():
            continue
        try:
            _readable(path, name)
            if name.endswith(".index.json"):
                _shards_readable(folder, path)
            return ""
        except _Unreadable as exc:
            unreadable = unreadable or exc
        except _Missing as exc:
            missing = str(exc)
    for step_dir in sorted(folder.glob(DEEPSPEED_STEP_GLOB)):  # DeepSpeed's own layout
        try:
            with os.scandir(step_dir) as it:
                next(it, None)
            return ""
        except OSError as exc:
            unreadable = unreadable or _Unreadable(step_dir.name, exc)
    if unreadable is not None:
        raise unreadable
    return missing


def _shards_readable(folder: Path, index: Path) -> None:
    try:
        shards = set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values())
    except OSError as exc:
        raise _Unreadable(index.name, exc) from None
    except (ValueError, AttributeError, TypeError):
        raise _Missing(f"{index.name} is cut short (not a valid index)") from None
    for shard in sorted(str(s) for s in shards):
        _readable(folder / shard, shard)


def _loss_at(state: dict, step: int) -> float | None:
    loss = None
    for entry in state.get("log_history", []):
        if isinstance(entry, dict) and "loss" in entry and entry.get("step", 0) <= step:
            loss = entry["loss"]
    return loss


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed); an unreadable part counts 0."""
    total = 0
    try:
        paths = list(folder.rglob("*"))
    except OSError:
        return 0
    for p in paths:
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def model_folder_state(folder: Path, weight_files: tuple[str, ...] = WEIGHT_FILES) -> tuple[State, str, OSError | None]:
    """(state, problem, OSError) of a model folder that needs config.json and weights (training/final,
    exports/final), by the same rules as a checkpoint."""
    try:
        _readable(folder / "config.json", "config.json")
        missing = ""
    except _Missing as exc:
        missing = str(exc)
    except _Unreadable as exc:
        return "unreadable", f"unreadable: {exc.what}: {_why(exc.error)}", exc.error
    try:
        weights = _weights_problem(folder, weight_files)
    except _Unreadable as exc:
        return "unreadable", f"unreadable: {exc.what}: {_why(exc.error)}", exc.error
    problems = [p for p in (missing, weights) if p]
    if problems:
        return "incomplete", "incomplete: " + ", ".join(problems), None
    return "complete", "", None


def inspect_checkpoint(folder: Path) -> tuple[State, str, OSError | None, dict | None]:
    """(state, problem, OSError, trainer state) of one checkpoint-N folder."""
    state = None
    try:
        state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            state = None
            missing = "trainer_state.json is not a JSON object"
        else:
            missing = ""
    except FileNotFoundError:
        missing = "no trainer_state.json"
    except OSError as exc:  # permissions, an I/O error, a folder in its place
        return "unreadable", f"unreadable: trainer_state.json: {_why(exc)}", exc, None
    except ValueError:  # a half-written file (UnicodeDecodeError is a ValueError too)
        missing = "trainer_state.json is cut short (not valid JSON)"
    try:
        weights = _weights_problem(folder)
    except _Unreadable as exc:
        return "unreadable", f"unreadable: {exc.what}: {_why(exc.error)}", exc.error, state
    except OSError as exc:  # the folder itself cannot be listed
        return "unreadable", f"unreadable: {folder.name}: {_why(exc)}", exc, state
    problems = [p for p in (missing, weights) if p]
    if problems:
        return "incomplete", "incomplete: " + ", ".join(problems), None, state
    return "complete", "", None, state


def list_checkpoints(training_dir: Path, include_incomplete: bool = True) -> list[Checkpoint]:
    """Every checkpoint-N folder in step order; ``include_incomplete=False`` keeps the complete ones only
    (unreadable ones count as not complete)."""
    if not training_dir.is_dir():
        return []
    found = []
    for entry in training_dir.iterdir():
        match = CHECKPOINT_RE.match(entry.name)
        if not match or not entry.is_dir():
            continue
        step = int(match.group(1))
        state_name, problem, error, state = inspect_checkpoint(entry)
        complete = state_name == "complete"
        if not complete and not include_incomplete:
            continue
        try:
            mtime = entry.stat().st_mtime
        except OSError:
            mtime = 0.0
        found.append(
            Checkpoint(
                name=entry.name,
                step=step,
                path=entry,
                complete=complete,
                loss=_loss_at(state, step) if state else None,
                size_bytes=folder_size(entry),
                mtime=mtime,
                state=state_name,
                problem=problem,
                error=error,
            )
        )
    return sorted(found, key=lambda c: c.step)
