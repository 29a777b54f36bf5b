"""The one watcher of a project's folder on the workbench screen.

Every panel shows something on disk that a detached run changes behind its back; one
``watchfiles`` watch over the project (not one per panel) merges a burst of writes into one
wake-up (a checkpoint save is hundreds of files) and tells each panel on the screen which area
changed, as a message: RunsChanged, CheckpointsChanged, EvaluationsChanged. Every wake-up,
including a timeout every POLL_S when nothing is reported, also compares stat fingerprints
(kimi_tui.views.watch), so the panels stay right where notifications never arrive (NFS, inotify
limits) or where watchfiles cannot start at all (then it polls).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING

from textual import work
from textual.widget import Widget

from kimi_tui.tui import messages
from kimi_tui.tui.panel import Panel
if TYPE_CHECKING:
    from kimi_tui.project import Project

POLL_S = 2.0  # the fingerprint check, whether or not the watcher reports anything
DEBOUNCE_MS = 300  # changes closer together than this are one wake-up
STEP_MS = 50

#: kimi_tui.views.watch's areas, in the order their messages go out.
MESSAGES = {"runs": messages.RunsChanged, "checkpoints": messages.CheckpointsChanged,
            "evaluations": messages.EvaluationsChanged}


class ProjectWatcher(Widget):
    """Invisible; posts the change messages to every Panel on its screen."""

    DEFAULT_CSS = "ProjectWatcher { display: none; }"

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.watching = "starting"  # what the watcher does now: for debugging, and tests
        self._stop = threading.Event()
        self._seen: dict[str, tuple] | None = None

    def on_mount(self) -> None:
        self._watch()

    def on_unmount(self) -> None:
        self._stop.set()

    def reload_project(self, project: Project) -> None:
        self.project = project

    @work(exclusive=True, group="project-watch", name="watch the project", exit_on_error=False)
    async def _watch(self) -> None:
        from kimi_tui.views.watch import areas_of, signatures  # after the first frame

        try:
            from watchfiles import awatch
        except ImportError:  # pragma: no cover - a dependency, but never fatal
            awatch = None
        self._seen = await asyncio.to_thread(signatures, self.project)
        while not self._stop.is_set():
            root = self.project.root
            try:
                if awatch is None:
                    raise OSError("watchfiles is not installed")
                self.watching = f"watching {root}"
                async for changes in awatch(
                    root, recursive=True, stop_event=self._stop, debounce=DEBOUNCE_MS, step=STEP_MS,
                    rust_timeout=int(POLL_S * 1000), yield_on_timeout=True, watch_filter=None,
                ):
                    await self._check(areas_of(self.project, {path for _, path in changes}))
                    if self.project.root != root:
                        break
            except Exception as exc:  # notify unavailable here (inotify limit, permissions): poll instead
                self.watching = f"polling every {POLL_S:g} s ({type(exc).__name__}: {exc})"
                await asyncio.sleep(POLL_S)
                await self._check(set())

    async def _check(self, changed: set[str]) -> None:
        from kimi_tui.views.watch import signatures

        seen = await asyncio.to_thread(signatures, self.project)
        before, self._seen = self._seen or {}, seen
        changed |= {area for area, value in seen.items() if before.get(area) != value}
        for area, message_class in MESSAGES.items():
            if area in changed:
                self.announce(message_class)

    def announce(self, message_class: type) -> None:
        """A fresh message to every panel on this screen (a message is delivered once)."""
        for panel in self.screen.query(Panel):
            panel.post_message(message_class())
