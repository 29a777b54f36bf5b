"""PLACEHOLDER until the Config panel lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from kimi_tui.tui.panel import Panel


class ConfigPanel(Panel):
    PANEL_ID = "config"
    TITLE = "Config"

    def compose(self) -> ComposeResult:
        yield Static("Config")
