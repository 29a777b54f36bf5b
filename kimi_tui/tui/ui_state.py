"""What the user chose in the workbench that outlives it: the Checkpoints panel's marks and the
Evaluation panel's A/B pair, in <project>/.kimi-tui/ui-state.json.

Restarting the TUI (a lost SSH session, a quit for the night) must not throw away a comparison
set up by hand. It is a convenience, never a source of truth: a missing, unreadable or damaged
file reads as empty, and a write that fails is dropped (the choice still holds for this session).
Panels call save() from a worker thread; one lock keeps their read-modify-writes apart."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from kimi_tui.fsutil import atomic_write_json

_LOCK = threading.Lock()


def state_path(root: Path) -> Path:
    return Path(root) / ".kimi-tui" / "ui-state.json"


def load(root: Path, key: str) -> dict[str, Any]:
    """The section KEY ("checkpoints", "evaluation"); {} when there is none or the file is damaged."""
    try:
        data = json.loads(state_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    section = data.get(key) if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def save(root: Path, key: str, section: dict[str, Any]) -> bool:
    """Replace the section KEY, keeping the others; False when it could not be written."""
    path = state_path(root)
    with _LOCK:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data[key] = section
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, data)
        except OSError:
            return False
    return True
