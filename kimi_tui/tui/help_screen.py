"""F1: every key that works here, built from the live bindings (never a hand-kept list)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static("Keys  (Esc closes; Ctrl+P searches every command)", id="help-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("key", "action", "where")
        seen: set[tuple[str, str]] = set()
        for row in self.rows():
            if (row[0], row[1]) not in seen:
                seen.add((row[0], row[1]))
                table.add_row(*row)
        table.focus()

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, description, where) for the focused widget's chain, the screen and the app."""
        rows = []
        bindings = self.under.active_bindings if hasattr(self.under, "active_bindings") else {}
        for key, active in bindings.items():
            binding = active.binding
            if binding.action in ("command_palette",) and key != "ctrl+p":
                continue
            label = binding.description or binding.action
            where = type(active.node).__name__.replace("Panel", "").replace("Screen", "") or "App"
            tip = f" — {binding.tooltip}" if binding.tooltip else ""
            rows.append((self.app.get_key_display(binding), f"{label}{tip}", where))
        return rows

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss()
