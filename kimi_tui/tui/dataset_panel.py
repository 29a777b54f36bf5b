"""PLACEHOLDER until the Dataset panel lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from kimi_tui.tui.panel import Panel


class DatasetPanel(Panel):
    PANEL_ID = "dataset"
    TITLE = "Dataset"

    def compose(self) -> ComposeResult:
        yield Static("Dataset")
