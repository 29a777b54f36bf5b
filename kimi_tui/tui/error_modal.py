"""What cannot be recovered from without the user's attention: shown in a modal, never a traceback."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ErrorModal(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "dismiss", "Close", id="error.close")]

    def __init__(self, title: str, message: str, detail: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="error-dialog"):
            yield Static(self.title_text, id="error-title")
            with VerticalScroll(id="error-body"):
                yield Static(self.message, id="error-message", markup=False)
                if self.detail:
                    yield Static(self.detail, id="error-detail", markup=False)
            yield Button("Close (Esc)", id="error-close", variant="error")

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
