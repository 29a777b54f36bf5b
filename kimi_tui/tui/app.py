"""The workbench: one screen of tabs over the project folder, keyboard first.

The app holds no state of its own: every panel reads the project folder (config,
data/, runs/, training/, evaluations/), so closing the app, or losing SSH, never
touches a run, and reopening it shows the same picture. Slow work happens in
named workers; a worker that fails opens one modal (ErrorModal), recoverable
problems are notifications.
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from kimi_tui.errors import KimiTuiError
from kimi_tui.tui import messages
from kimi_tui.tui.error_modal import ErrorModal
from kimi_tui.tui.panel import Panel
from kimi_tui.tui.project_watcher import ProjectWatcher

if TYPE_CHECKING:
    from kimi_tui.project import Project

# Not imported from kimi_tui.config: that module (pydantic) loads after the first frame.
CONFIG_FILENAME = "kimi-tui.toml"

# (panel id, tab title, module, class): modules are imported when their panel is first built,
# so start-up pays only for the Dataset panel.
PANELS = (
    ("dataset", "Dataset", "kimi_tui.tui.dataset_panel", "DatasetPanel"),
    ("config", "Config", "kimi_tui.tui.config_panel", "ConfigPanel"),
    ("run", "Run", "kimi_tui.tui.run_panel", "RunPanel"),
    ("checkpoints", "Checkpoints", "kimi_tui.tui.checkpoints_panel", "CheckpointsPanel"),
    ("evaluation", "Evaluation", "kimi_tui.tui.evaluation_panel", "EvaluationPanel"),
)
PANEL_ORDER = tuple(p[0] for p in PANELS)


def panel_class(panel_id: str) -> type[Panel]:
    import importlib

    _, _, module, name = next(p for p in PANELS if p[0] == panel_id)
    return getattr(importlib.import_module(module), name)


def stylesheets(package: Path | None = None) -> list[Path]:
    """Every styles/*.tcss, from the one folder this installation has: kimi_tui/_bundled/styles in a
    wheel (pyproject force-includes styles/ there), else styles/ at the top of the source checkout
    (an editable install). PACKAGE is the kimi_tui folder (default: this one's).

    A missing folder or stylesheet raises KimiTuiError at start-up: Textual would draw the
    workbench unstyled without a word, which passes for a broken app.
    """
    package = package or Path(__file__).resolve().parents[1]
    needed = [f"{name}.tcss" for name in ("app", *PANEL_ORDER)]
    places = (package / "_bundled" / "styles", package.parent / "styles")
    folder = next((place for place in places if place.is_dir()), None)
    if folder is None:
        raise KimiTuiError(
            f"the workbench's stylesheets are missing: no styles/ folder at {places[0]} (an installed wheel) "
            f"or {places[1]} (a source checkout); reinstall kimi-tui, or restore styles/ in the checkout"
        )
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise KimiTuiError(
            f"the workbench's stylesheets are incomplete: {', '.join(missing)} missing from {folder}; "
            "reinstall kimi-tui, or restore styles/ in the checkout"
        )
    return sorted(folder.glob("*.tcss"))


class WorkbenchScreen(Screen):
    """The five panels of one project."""

    BINDINGS = [
        Binding("1", "show('dataset')", "Dataset", id="tab.dataset", tooltip="Show the Dataset panel", show=False),
        Binding("2", "show('config')", "Config", id="tab.config", tooltip="Show the Config panel", show=False),
        Binding("3", "show('run')", "Run", id="tab.run", tooltip="Show the Run panel", show=False),
        Binding("4", "show('checkpoints')", "Checkpoints", id="tab.checkpoints", tooltip="Show the Checkpoints panel", show=False),
        Binding("5", "show('evaluation')", "Evaluation", id="tab.evaluation", tooltip="Show the Evaluation panel", show=False),
    ]

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project
        self._mount_lock = asyncio.Lock()
        self._closing_down = False

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="tab-dataset", id="panels"):
            # The digit in each tab's label is its key (the footer keeps its room for the panel's keys).
            for number, (panel_id, title, _, _) in enumerate(PANELS, 1):
                with TabPane(f"{number} {title}", id=f"tab-{panel_id}"):
                    if panel_id == "dataset":
                        yield panel_class(panel_id)(self.project)
        yield ProjectWatcher(self.project)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.project.root)
        # The other panels are built after the first frame, one per refresh, so the screen
        # appears at once and stays responsive; a panel asked for earlier is built on demand.
        self.set_timer(0.3, self._build_panels)

    async def _build_panels(self) -> None:
        for panel_id in PANEL_ORDER:
            if self._closing_down:
                return
            await self.mount_panel(panel_id)
            await asyncio.sleep(0.01)  # let keys and paints through between panels

    async def finish_building(self, timeout: float = 10.0) -> None:
        """Before the app stops: build no further panel and let a mount in flight end. A widget
        pruned while it is still mounting can find its own children gone (Textual's Select queries
        its label in on_mount): a quit in the first second ended in a traceback."""
        self._closing_down = True
        try:
            await asyncio.wait_for(self._mount_lock.acquire(), timeout)
        except TimeoutError:
            return
        self._mount_lock.release()

    async def mount_panel(self, panel_id: str) -> Panel:
        """The panel, built now if it was not yet. Mounts happen one at a time: a widget
        mounted while another mount is still composing can find its own children missing."""
        async with self._mount_lock:
            panel = self.panel(panel_id)
            if panel is None:
                panel = panel_class(panel_id)(self.project)
                await self.query_one(f"#tab-{panel_id}", TabPane).mount(panel)
            return panel

    def action_show(self, panel_id: str, _tries: int = 0) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.tab_count < len(PANELS) or not self.is_mounted:
            # A key pressed in the first frames, before the tabs exist: do it once they do.
            if _tries < 50:
                self.set_timer(0.05, lambda: self.action_show(panel_id, _tries + 1))
            return
        self.set_focus(None)  # focus left in the hidden pane would make Textual switch back to it
        tabs.active = f"tab-{panel_id}"
        self.run_worker(self._focus_when_built(panel_id), name=f"show {panel_id}", group="show")

    async def _focus_when_built(self, panel_id: str) -> None:
        panel = await self.mount_panel(panel_id)
        # After the switch is drawn: focusing a widget of a still-hidden pane fails, and
        # focus left in the old pane would switch the tabs straight back.
        self.call_after_refresh(panel.focus_default)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:  # a tab clicked with the mouse
            self.run_worker(self.mount_panel(event.pane.id.removeprefix("tab-")), name="build panel", group="show")

    def panel(self, panel_id: str) -> Panel | None:
        found = self.query(f"#{panel_id}")
        return found.first(Panel) if found else None

    def panels(self) -> list[Panel]:
        return list(self.query(Panel))

    def on_config_saved(self, message: messages.ConfigSaved) -> None:
        from kimi_tui.project import Project

        try:
            self.project = Project.load(self.project.root)
        except KimiTuiError as exc:
            self.app.notify(str(exc), title="kimi-tui.toml", severity="error")
            return
        self.query_one(ProjectWatcher).reload_project(self.project)
        for panel in self.panels():
            panel.reload_project(self.project)

    # A message from one panel for another is handed on as a new message (a message is delivered
    # once); the receiving panel stops it, so it does not come back up here.

    async def on_show_finding(self, message: messages.ShowFinding) -> None:
        self.action_show("dataset")
        panel = await self.mount_panel("dataset")
        panel.post_message(messages.ShowFinding(message.split, message.utt_id, message.line))

    async def on_run_started(self, message: messages.RunStarted) -> None:
        run_panel = await self.mount_panel("run")
        run_panel.post_message(messages.RunStarted(message.run_dir))

    async def on_models_picked(self, message: messages.ModelsPicked) -> None:
        panel = await self.mount_panel("evaluation")
        panel.post_message(messages.ModelsPicked(message.names))


class KimiTuiApp(App):
    """kimi-tui [DIR]: the project in DIR, or a start screen when DIR holds none."""

    TITLE = "kimi-tui"
    CSS_PATH = stylesheets()
    BINDINGS = [
        Binding("f1", "help", "Help", id="app.help", tooltip="Every key of the current screen"),
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Quit (runs keep going)"),
    ]
    ENABLE_COMMAND_PALETTE = True

    def __init__(self, root: Path | None = None) -> None:
        super().__init__()
        self.root = (root or Path.cwd()).expanduser().resolve()
        self.project: Project | None = None

    async def _shutdown(self) -> None:
        # Textual's own shutdown (every way the app stops: q, Ctrl+C, a test's run_test) prunes
        # every widget; a panel still being built then is pruned mid-mount. Let that mount end first.
        for screen in list(self.screen_stack):
            if isinstance(screen, WorkbenchScreen):
                await screen.finish_building()
        await super()._shutdown()

    def compose(self) -> ComposeResult:
        yield Static(f"kimi-tui: opening {self.root} …", id="opening")
        yield Footer()

    def on_mount(self) -> None:
        # Paint first, then load the project: the config's validation library alone costs
        # ~0.1 s to import, and the user should see the app answer at once.
        self.call_after_refresh(self._open_initial)

    def _open_initial(self) -> None:
        if (self.root / CONFIG_FILENAME).exists():
            try:
                self.open_project(self.root)
                return
            except KimiTuiError as exc:
                self.push_screen(ErrorModal(f"Cannot open {self.root}", str(exc)))
        from kimi_tui.tui.start_screen import StartScreen

        self.push_screen(StartScreen(self.root))

    def open_project(self, root: Path) -> None:
        from kimi_tui.project import Project

        self.project = Project.load(root)
        self.sub_title = str(self.project.root)
        self.switch_screen(WorkbenchScreen(self.project)) if len(self.screen_stack) > 1 else self.push_screen(
            WorkbenchScreen(self.project)
        )

    def action_help(self) -> None:
        from kimi_tui.tui.help_screen import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("App: help", "Every key of the current screen (F1)", self.action_help)
        if isinstance(screen, WorkbenchScreen):
            for panel_id in PANEL_ORDER:
                yield SystemCommand(
                    f"Panel: show {panel_id}", f"Switch to the {panel_id.title()} panel",
                    lambda p=panel_id: screen.action_show(p),
                )
            for panel in screen.panels():
                for title, help_text, callback in panel.palette_commands():
                    yield SystemCommand(title, help_text, callback)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.report_worker_failure(event.worker)

    def report_worker_failure(self, worker: Worker) -> None:
        """The one place background failures surface (panels forward theirs here): a modal,
        never a traceback on screen."""
        error = worker.error
        if isinstance(error, KimiTuiError):
            self.push_screen(ErrorModal(f"{worker.name} failed", str(error)))
        else:
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)) if error else ""
            self.push_screen(ErrorModal(f"{worker.name} failed", f"{type(error).__name__}: {error}", detail))


    def still_running(self) -> str | None:
        """Said after the app is gone: the runs it leaves going (detached, they never stop with it)."""
        if self.project is None:
            return None
        from kimi_tui.progress import keep_running_line
        from kimi_tui.runs import list_runs

        try:
            runs = list_runs(self.project.runs_dir)
        except (OSError, KimiTuiError):
            return None
        return keep_running_line(runs, self.project.root)


def run(root: Path | None = None) -> int:
    app = KimiTuiApp(root)
    app.run()
    line = app.still_running()  # after exit: the terminal is the user's again, and the line stays
    if line:
        print(line)
    return 0
