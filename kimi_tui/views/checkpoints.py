"""The rows of the Checkpoints panel, read from the folders (the only truth about a save).

A checkpoint-N folder without its trainer_state.json or weights is a save cut short and is a row
marked incomplete, never a model to evaluate; training/final and exports/final are rows too,
because they are what export and evaluation use. Blocking (folder sizes are summed): callers run
it in a thread. ``signature`` is the cheap stat-only fingerprint a watcher compares to decide
whether the slow scan is worth doing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kimi_tui.checkpoints import CHECKPOINT_RE, folder_size, list_checkpoints, model_folder_state
from kimi_tui.words import plural

if TYPE_CHECKING:
    from kimi_tui.project import Project

META_FILE = "kimi_tui_model.json"  # written by the whisper worker into final/ and exports/final/
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass
class Entry:
    """One row: a checkpoint-N folder, training/final or exports/final."""

    key: str  # the model's name for evaluation: "checkpoint-30", "final", "export"
    label: str
    kind: str  # "checkpoint" | "final" | "export"
    path: Path
    step: int | None
    loss: float | None
    size_bytes: int
    mtime: float
    complete: bool
    state: str = "complete"  # "complete" | "incomplete" | "unreadable"
    problem: str = ""  # "incomplete: no trainer_state.json", "unreadable: trainer_state.json: Permission denied"

    @property
    def state_text(self) -> str:
        """The state column: complete, incomplete, or unreadable with its reason."""
        if self.state == "unreadable":
            return self.problem or "unreadable"
        return self.state


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def human_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for limit, unit, div in ((60, "s", 1), (3600, "m", 60), (86400, "h", 3600)):
        if seconds < limit:
            return f"{int(seconds // div)}{unit} ago"
    return f"{int(seconds // 86400)}d ago"


def final_entry(key: str, label: str, kind: str, folder: Path, losses: dict[int, float | None]) -> Entry | None:
    if not folder.is_dir():
        return None
    step = None
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        step = int(meta["step"]) if isinstance(meta, dict) and "step" in meta else None
    except (OSError, ValueError, TypeError, KeyError):
        pass
    state, problem, _error = model_folder_state(folder, WEIGHT_FILES)
    try:
        mtime = folder.stat().st_mtime
    except OSError:
        return None
    return Entry(key, label, kind, folder, step, losses.get(step) if step is not None else None,
                 folder_size(folder), mtime, state == "complete", state, problem)


def scan(project: Project) -> list[Entry]:
    """Every row, in step order, then final and export (blocking: sums folder sizes)."""
    entries = []
    losses: dict[int, float | None] = {}
    for c in list_checkpoints(project.training_dir):
        losses[c.step] = c.loss
        entries.append(Entry(c.name, c.name, "checkpoint", c.path, c.step, c.loss, c.size_bytes, c.mtime, c.complete,
                             c.state, c.problem))
    for key, label, kind, folder in (
        ("final", "training/final", "final", project.training_dir / "final"),
        ("export", "exports/final", "export", project.export_dir),
    ):
        entry = final_entry(key, label, kind, folder, losses)
        if entry is not None:
            entries.append(entry)
    return entries


KEPT_RE = re.compile(r"^(training|final)\.\d{8}-\d{6}(-\d+)?$")  # pipeline.keep_previous_outputs' names


def previous_outputs(project: Project) -> list[tuple[str, int]]:
    """Where a re-train or re-export moved the earlier results (training.<time>/, exports/final.<time>/),
    newest first, with how many checkpoint-N folders each holds: they are kept, never deleted, and
    the table shows only the current training/."""
    found: list[tuple[str, str, int]] = []
    for folder in (project.root, project.export_dir.parent):
        try:
            children = list(folder.iterdir())
        except OSError:
            continue
        for child in children:
            if not KEPT_RE.match(child.name) or not child.is_dir():
                continue
            try:
                n = sum(1 for c in child.iterdir() if CHECKPOINT_RE.match(c.name))
            except OSError:
                n = 0
            found.append((child.name.split(".", 1)[1], f"{child.relative_to(project.root)}/", n))
    return [(name, n) for _, name, n in sorted(found, reverse=True)]


def previous_text(previous: list[tuple[str, int]]) -> str:
    shown = [name + (f" ({plural(n, 'checkpoint')})" if n else "") for name, n in previous[:2]]
    more = f" and {len(previous) - 2} more" if len(previous) > 2 else ""
    return "Earlier runs, moved aside: " + ", ".join(shown) + more


def signature(project: Project) -> tuple:
    """A cheap fingerprint of what the table shows: names, mtimes and state files (stat only)."""
    parts: list[tuple] = []
    for folder in (project.training_dir, project.export_dir.parent):
        try:
            children = sorted(folder.iterdir())
        except OSError:
            parts.append((str(folder), None))
            continue
        for child in children:
            if not (CHECKPOINT_RE.match(child.name) or child.name == "final"):
                continue
            stamp = []
            for name in ("", "trainer_state.json", "config.json", *WEIGHT_FILES):
                try:
                    st = (child / name).stat() if name else child.stat()
                    stamp.append((name, st.st_mtime_ns, st.st_size))
                except OSError:
                    pass
            parts.append((str(child), tuple(stamp)))
    return tuple(parts)



def training_id(project: Project) -> str | None:
    """Which training/ this is: a re-train moves the old one aside (training.<time>/) and starts a
    new folder, whose checkpoint-10 is not the one marked before."""
    try:
        st = project.training_dir.stat()
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"
