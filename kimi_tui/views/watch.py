"""Which part of a project a change on disk is about, for the one watcher of the workbench.

Notifications do not arrive everywhere (NFS home directories on GPU clusters, inotify limits):
the watcher also wakes every few seconds and compares a cheap stat-only fingerprint of each
area, so every panel is right even when no event ever comes. Headless: no textual.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kimi_tui.views.checkpoints import signature as checkpoints_signature

if TYPE_CHECKING:
    from kimi_tui.project import Project

RUNS, CHECKPOINTS, EVALUATIONS = "runs", "checkpoints", "evaluations"
AREAS = (RUNS, CHECKPOINTS, EVALUATIONS)
RUN_FILES = ("status.json", "events.jsonl", "plan.json")
MOVED_ASIDE_RE = re.compile(r"^training\.\d{8}-\d{6}(-\d+)?$")  # pipeline.keep_previous_outputs' names


def areas_of(project: Project, paths: set[str] | list[str]) -> set[str]:
    """The areas the changed PATHS belong to: runs/, training/ (and training.<time>/ siblings,
    training/ itself appearing or moving aside), exports/, evaluations/."""
    root = project.root
    found: set[str] = set()
    for raw in paths:
        try:
            parts = Path(raw).relative_to(root).parts
        except ValueError:
            continue
        if not parts:
            continue
        top = parts[0]
        if top == "runs":
            found.add(RUNS)
        elif top in ("training", "exports") or MOVED_ASIDE_RE.match(top):
            found.add(CHECKPOINTS)
        elif top == "evaluations":
            found.add(EVALUATIONS)
    return found


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def runs_signature(project: Project) -> tuple:
    """Each run folder's status, events and plan files (stat only)."""
    try:
        names = sorted(os.listdir(project.runs_dir))
    except OSError:
        return ()
    return tuple((name, tuple(_stamp(project.runs_dir / name / f) for f in RUN_FILES)) for name in names)


def evaluations_signature(project: Project) -> tuple:
    """evaluations/<run>/, its plan and the files of the model folders in it (stat only)."""
    top = project.evaluations_dir
    try:
        runs = sorted(os.listdir(top))
    except OSError:
        return ()
    parts = []
    for name in runs:
        folder = top / name
        try:
            models = sorted(os.listdir(folder)) if folder.is_dir() else []
        except OSError:
            models = []
        parts.append((name, _stamp(folder), _stamp(folder / "evaluation.json"),
                      tuple((m, _model_stamps(folder / m)) for m in models)))
    return tuple(parts)


def _model_stamps(model_dir: Path) -> tuple:
    """A model folder's predictions, status and metrics files: they grow while it is transcribed."""
    try:
        names = sorted(n for n in os.listdir(model_dir) if n.endswith((".jsonl", ".json")))
    except OSError:
        return ()
    return tuple((n, _stamp(model_dir / n)) for n in names)


def signatures(project: Project) -> dict[str, tuple]:
    """Every area's fingerprint: a watcher compares them on each wake-up, events or not."""
    return {
        RUNS: runs_signature(project),
        CHECKPOINTS: checkpoints_signature(project),
        EVALUATIONS: evaluations_signature(project),
    }
