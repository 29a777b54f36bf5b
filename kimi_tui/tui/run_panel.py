"""PLACEHOLDER until the Run panel lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from kimi_tui.tui.panel import Panel


class RunPanel(Panel):
    PANEL_ID = "run"
    TITLE = "Run"

    def compose(self) -> ComposeResult:
        yield Static("Run")
