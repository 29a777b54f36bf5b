"""Where `kimi-tui` starts when the folder holds no project: make one, or open one."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from kimi_tui.errors import KimiTuiError
from kimi_tui.project import init_project


class StartScreen(Screen):
    BINDINGS = [
        Binding("s", "sample", "Sample project", id="start.sample", tooltip="Create a project from the bundled sample"),
        Binding("c", "from_csv", "From CSV", id="start.csv", tooltip="Create a project from a CSV and an audio folder"),
        Binding("o", "open", "Open folder", id="start.open", tooltip="Open a folder that holds kimi-tui.toml"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="start"):
            yield Static(f"No kimi-tui project in {self.root}", id="start-title")
            yield Label("Project folder")
            yield Input(str(self.root / "sample-project"), id="start-dir")
            yield Button("Create from the bundled sample (s)", id="start-sample", variant="primary")
            yield Label("Training CSV (id + transcript) and its audio folder")
            yield Input(placeholder="transcripts.csv", id="start-csv")
            yield Input(placeholder="audio folder", id="start-audio")
            yield Button("Create from CSV + audio (c)", id="start-from-csv")
            yield Button("Open the folder above (o)", id="start-open")
        yield Footer()

    def on_mount(self) -> None:
        # Letters are shortcuts here: start on a button so they are not typed into a field.
        self.query_one("#start-sample", Button).focus()

    def _dir(self) -> Path:
        return Path(self.query_one("#start-dir", Input).value).expanduser().resolve()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"start-sample": self.action_sample, "start-from-csv": self.action_from_csv, "start-open": self.action_open}[
            event.button.id or ""
        ]()

    def _create(self, **kwargs) -> None:
        try:
            project = init_project(self._dir(), **kwargs)
        except KimiTuiError as exc:
            self.notify(str(exc), title="Cannot create the project", severity="error")
            return
        self.notify(f"Project ready in {project.root}")
        self.app.open_project(project.root)

    def action_sample(self) -> None:
        self._create(sample=True, exist_ok=True)

    def action_from_csv(self) -> None:
        csv = self.query_one("#start-csv", Input).value.strip()
        audio = self.query_one("#start-audio", Input).value.strip()
        if not csv or not audio:
            self.notify("Give the training CSV and the audio folder first", severity="warning")
            return
        self._create(train_csv=csv, train_audio=audio)

    def action_open(self) -> None:
        try:
            self.app.open_project(self._dir())
        except KimiTuiError as exc:
            self.notify(str(exc), title="Cannot open", severity="error")
