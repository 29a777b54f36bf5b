"""Messages the panels and the workbench screen exchange.

Panels never call each other, so one can be rebuilt, or not built yet, without the
others noticing: a panel posts a message and the screen (app.py's WorkbenchScreen)
acts on it. A saved config is the one change every panel must re-read at once
(ConfigSaved); a finding, a started run or picked checkpoints open the panel that
shows them, as a new message to that panel. What a run, a save or an evaluation
writes behind the app's back comes from the screen's one ProjectWatcher
(project_watcher.py), which sends RunsChanged, CheckpointsChanged and
EvaluationsChanged to every panel on the screen; a panel that shows that area
handles it (and stops it) by re-reading.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message


class Deliver(Message, bubble=False):
    """A worker thread's result, handed to the UI thread without waiting.

    ``app.call_from_thread`` blocks the worker thread until the UI ran the
    callback, and blocks forever if the app stops first (a thread that never
    ends then holds up the interpreter's exit); posting a message never waits.
    """

    def __init__(self, callback: Callable[..., object], *args: object, **kwargs: object) -> None:
        super().__init__()
        self.callback = callback
        self.args = args
        self.kwargs = kwargs


class ConfigSaved(Message):
    """kimi-tui.toml was written: panels that depend on the config re-read the project."""


class RunStarted(Message):
    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class RunsChanged(Message):
    """Something under runs/ changed (a run started, ended or wrote status)."""


class CheckpointsChanged(Message):
    """A checkpoint-N folder appeared, changed or was deleted."""


class EvaluationsChanged(Message):
    """A new evaluation folder or metrics file appeared (the Evaluation panel still polls
    evaluations/ itself as well)."""


class ShowFinding(Message):
    """Jump the Dataset panel to the row a finding names."""

    def __init__(self, split: str, utt_id: str | None, line: int | None) -> None:
        super().__init__()
        self.split = split
        self.utt_id = utt_id
        self.line = line


class ModelsPicked(Message):
    """Checkpoints marked for evaluation/comparison in the Checkpoints panel."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
