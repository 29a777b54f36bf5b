"""Checkpoints as the user sees them: step, loss at that step, size, age, complete or not.

Read from disk only (checkpoint-N/ folders and their trainer_state.json), so the
CLI, the TUI and a later session agree. A folder without its trainer_state.json
or weights is a save that was cut short (a killed worker, a full disk): it is
listed as incomplete and never offered for export, evaluation or resume.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json", "adapter_model.safetensors")


@dataclass
class Checkpoint:
    name: str
    step: int
    path: Path
    complete: bool
    loss: float | None
    size_bytes: int
    mtime: float

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "step": self.step,
            "path": str(self.path),
            "complete": self.complete,
            "loss": self.loss,
            "size_bytes": self.size_bytes,
            "mtime": self.mtime,
        }


def _has_weights(folder: Path) -> bool:
    return any((folder / name).exists() for name in WEIGHT_FILES) or any(folder.glob("global_step*"))


def _loss_at(state: dict, step: int) -> float | None:
    loss = None
    for entry in state.get("log_history", []):
        if "loss" in entry and entry.get("step", 0) <= step:
            loss = entry["loss"]
    return loss


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def list_checkpoints(training_dir: Path, include_incomplete: bool = True) -> list[Checkpoint]:
    if not training_dir.is_dir():
        return []
    found = []
    for entry in training_dir.iterdir():
        match = CHECKPOINT_RE.match(entry.name)
        if not match or not entry.is_dir():
            continue
        step = int(match.group(1))
        state_path = entry / "trainer_state.json"
        state = None
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = None
        complete = state is not None and _has_weights(entry)
        if not complete and not include_incomplete:
            continue
        found.append(
            Checkpoint(
                name=entry.name,
                step=step,
                path=entry,
                complete=complete,
                loss=_loss_at(state, step) if state else None,
                size_bytes=_size(entry),
                mtime=entry.stat().st_mtime,
            )
        )
    return sorted(found, key=lambda c: c.step)
