"""PLACEHOLDER until the Checkpoints panel lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from kimi_tui.tui.panel import Panel


class CheckpointsPanel(Panel):
    PANEL_ID = "checkpoints"
    TITLE = "Checkpoints"

    def compose(self) -> ComposeResult:
        yield Static("Checkpoints")
