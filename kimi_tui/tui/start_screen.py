"""Where `kimi-tui` starts when the folder holds no project: make one, or open one.

A newcomer's first act here is typing a path, so focus starts in the folder box and the
one-letter shortcuts are disabled while any text field has focus: a path such as
`/srv/coqx` is text, never a command. Enter in a field only moves on to the next one; a
project is created only by choosing a button (or its letter, outside the fields).
"""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Static

from kimi_tui.errors import KimiTuiError
from kimi_tui.project import init_project

# The shortcuts that would act on a letter typed into a field.
_LETTER_ACTIONS = frozenset({"sample", "from_csv", "open"})


class StartScreen(Screen):
    BINDINGS = [
        Binding("s", "sample", "Sample project", id="start.sample",
                tooltip="Create a project from the bundled sample in the folder above (outside the text fields)"),
        Binding("c", "from_csv", "From CSV", id="start.csv",
                tooltip="Create a project from the CSV and audio folder given (outside the text fields)"),
        Binding("o", "open", "Open folder", id="start.open",
                tooltip="Open the folder above if it holds kimi-tui.toml (outside the text fields)"),
        Binding("escape", "leave_field", "Leave field", id="start.leave_field",
                tooltip="Leave the text field so the letter shortcuts work"),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical(id="start"):
            yield Static(f"No kimi-tui project in {self.root}", id="start-title")
            yield Label("Project folder (Enter: next field; Esc: leave the field for s/c/o)")
            yield Input(str(self.root / "sample-project"), id="start-dir")
            yield Button("Create from the bundled sample (s)", id="start-sample", variant="primary")
            yield Label("Training CSV (id + transcript) and its audio folder")
            yield Input(placeholder="transcripts.csv", id="start-csv")
            yield Input(placeholder="audio folder", id="start-audio")
            yield Button("Create from CSV + audio (c)", id="start-from-csv")
            yield Button("Open the folder above (o)", id="start-open")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#start-dir", Input).focus()

    def _in_field(self) -> bool:
        return isinstance(self.focused, Input)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in _LETTER_ACTIONS and self._in_field():
            return None  # shown dimmed in the footer: the letter is text while a field has focus
        if action == "leave_field":
            return self._in_field()
        return True

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self.refresh_bindings()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        self.refresh_bindings()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter never creates anything: it moves on, as Tab does.
        event.stop()
        self.focus_next()

    def action_leave_field(self) -> None:
        following = {"start-dir": "#start-sample", "start-csv": "#start-from-csv", "start-audio": "#start-from-csv"}
        self.query_one(following.get(self.focused.id if self.focused else "", "#start-sample"), Button).focus()

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
