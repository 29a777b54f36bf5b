"""The contract every panel keeps, so the app can host any of them the same way.

A panel is built from the project (the folder on disk is the only state), keeps
its status in its border title (what a user glances at), offers its commands to
the palette as "Category: verb", and does anything slow in a named worker whose
failure the app turns into a modal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

from kimi_tui.tui.worker_results import TakesWorkerResults

if TYPE_CHECKING:
    from kimi_tui.project import Project

PaletteCommand = tuple[str, str, Callable[[], object]]  # ("Run: start all", help text, callback)


class Panel(TakesWorkerResults, Vertical, can_focus=True):
    PANEL_ID: ClassVar[str] = "panel"
    TITLE: ClassVar[str] = "Panel"

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(id=kwargs.pop("id", self.PANEL_ID), **kwargs)
        self.project = project
        self.border_title = self.TITLE

    def set_status(self, text: str) -> None:
        self.border_title = f"{self.TITLE} · {text}" if text else self.TITLE

    def reload_project(self, project: Project) -> None:
        """The config changed on disk: keep the new project and refresh what depends on it."""
        self.project = project

    def palette_commands(self) -> list[PaletteCommand]:
        return []

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Worker.StateChanged does not bubble: hand this panel's failed workers to the app,
        the one place failures become a modal."""
        if event.state == WorkerState.ERROR and event.worker.node is self:
            self.app.report_worker_failure(event.worker)

    def focus_default(self) -> None:
        """Put the keyboard where the panel's main work happens (its first focusable widget)."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return
        self.focus()  # nothing to focus yet: the panel itself, so its keys work and focus leaves the old tab
