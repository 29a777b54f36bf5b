"""PLACEHOLDER until the Evaluation panel lands."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from kimi_tui.tui.panel import Panel


class EvaluationPanel(Panel):
    PANEL_ID = "evaluation"
    TITLE = "Evaluation"

    def compose(self) -> ComposeResult:
        yield Static("Evaluation")
