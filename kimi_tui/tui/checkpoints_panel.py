"""The Checkpoints panel: what training has saved, kept current while it runs.

Why it works this way:

* The folders are the truth (``checkpoints.list_checkpoints``): a checkpoint-N
  folder without its trainer_state.json or weights is a save that was cut short
  and is shown as incomplete, never offered for evaluation; one whose files are
  there but cannot be read (permissions, an I/O error) is shown as
  "unreadable: <file>: <reason>", because chmod fixes it, not training again.
  training/final and exports/final are listed too, because they are what
  export and evaluation use.
* It updates by itself while a run saves: the workbench's one ProjectWatcher
  (tui/project_watcher.py) posts CheckpointsChanged when training/ or exports/
  change, from notifications or, where none arrive (NFS, inotify limits), from
  a stat fingerprint it compares every 2 s. Listing (which sums folder sizes)
  runs in a worker; the rows themselves are kimi_tui/views/checkpoints.py's.
* Marks (space) say which models to compare: ``e`` hands them to the
  Evaluation panel (ModelsPicked), ``c`` writes them to ``[eval] checkpoints``
  in kimi-tui.toml (read from disk, changed, saved with comments kept), so the
  evaluate stage scores exactly those.
* Deleting frees the disk space big checkpoints take (ZeRO-3 ones carry
  ~125 GB of optimizer state each), so it is offered, but only after a
  confirmation that names the folder and its size, and only for checkpoint-N
  folders inside training/.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from kimi_tui.checkpoints import CHECKPOINT_RE
from kimi_tui.config import load_config, save_config, set_field
from kimi_tui.project import Project
from kimi_tui.tui import messages, ui_state
from kimi_tui.tui.confirm_modal import ConfirmModal
from kimi_tui.tui.panel import Panel, PaletteCommand
from kimi_tui.views.checkpoints import (
    Entry, human_age, human_size, previous_outputs, previous_text, scan, training_id,
)

def saved_marks(project: Project) -> set[str]:
    """The marks of the last session, if they were made on this training/ (see ui_state)."""
    state = ui_state.load(project.root, "checkpoints")
    marked = state.get("marked")
    if not isinstance(marked, list) or state.get("training") != training_id(project):
        return set()
    return {m for m in marked if isinstance(m, str)}


class CheckpointsPanel(Panel):
    PANEL_ID = "checkpoints"
    TITLE = "Checkpoints"

    BINDINGS = [
        Binding("space", "toggle_mark", "Mark", id="checkpoints.mark",
                tooltip="Mark or unmark the row for evaluation / comparison"),
        Binding("a", "mark_all", "Mark all", id="checkpoints.mark_all", show=False,
                tooltip="Mark every complete checkpoint (again: clear the marks)"),
        Binding("e", "evaluate", "Evaluate", id="checkpoints.evaluate",
                tooltip="Send the marked models to the Evaluation panel"),
        Binding("c", "set_eval", "Set [eval]", id="checkpoints.set_eval",
                tooltip="Write the marked checkpoints to [eval] checkpoints in kimi-tui.toml"),
        Binding("x", "export_note", "Export", id="checkpoints.export", show=False,
                tooltip="What the export stage exports (training/final)"),
        Binding("d,delete", "delete", "Delete", id="checkpoints.delete",
                tooltip="Delete the checkpoint folder under the cursor (asks first)"),
        Binding("r", "refresh", "Refresh", id="checkpoints.refresh", show=False, tooltip="Re-read training/ now"),
    ]

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(project, **kwargs)
        self.entries: list[Entry] = []
        self.marked: set[str] = set()
        self._loaded = False
        self._marks_restored = False  # the marks of the last session, read with the first scan

    def compose(self) -> ComposeResult:
        yield DataTable(id="checkpoints-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="checkpoints-previous", markup=False)
        yield Static("", id="checkpoints-hint", markup=False)

    def on_mount(self) -> None:
        if not self.children:  # quit while the panel was being built: nothing to set up
            return
        table = self.query_one(DataTable)
        table.add_column(" ", key="mark", width=1)
        table.add_column("name", key="name", width=16)
        table.add_column("step", key="step", width=6)
        table.add_column("loss", key="loss", width=8)
        table.add_column("size", key="size", width=9)
        table.add_column("age", key="age", width=8)
        table.add_column("state", key="state", width=10)
        self._update_status()
        self.refresh_checkpoints()
        self.set_interval(30, self._render_rows)  # ages move on

    def focus_default(self) -> None:
        self.query_one(DataTable).focus()

    # ------------------------------------------------------------------ reading

    def refresh_checkpoints(self) -> None:
        self._scan_worker(self.project)

    @work(thread=True, exclusive=True, group="checkpoints-scan", name="list checkpoints", exit_on_error=False)
    def _scan_worker(self, project: Project) -> None:
        entries = scan(project)
        saved = None if self._marks_restored else saved_marks(project)
        previous = previous_outputs(project)
        if not get_current_worker().is_cancelled:
            self.deliver(self._show, entries, saved, previous)

    def on_checkpoints_changed(self, message: messages.CheckpointsChanged) -> None:
        """training/ or exports/ changed on disk (the workbench's ProjectWatcher)."""
        message.stop()
        self.refresh_checkpoints()

    def _show(self, entries: list[Entry], saved: set[str] | None = None,
              previous: list[tuple[str, int]] | None = None) -> None:
        kept = self.query_one("#checkpoints-previous", Static)
        kept.display = bool(previous)
        if previous:
            kept.update(previous_text(previous))
        self.entries = entries
        keys = {e.key for e in entries}
        if saved is not None and not self._marks_restored:
            self._marks_restored = True
            self.marked |= {e.key for e in entries if e.key in saved and e.complete}
        self.marked &= keys
        self._loaded = True
        self._render_rows()

    def _render_rows(self) -> None:
        table = self.query_one(DataTable)
        current = self.current_entry()
        table.clear()
        now = time.time()
        for e in self.entries:
            table.add_row(
                "✓" if e.key in self.marked else " ",
                e.label,
                str(e.step) if e.step is not None else "—",
                f"{e.loss:.4f}" if e.loss is not None else "—",
                human_size(e.size_bytes),
                human_age(now - e.mtime),
                e.state_text,
                key=e.key,
            )
        if current is not None:
            keys = [e.key for e in self.entries]
            if current.key in keys:
                table.move_cursor(row=keys.index(current.key))
        self._update_status()
        self._update_hint()

    def _update_status(self) -> None:
        checkpoints = [e for e in self.entries if e.kind == "checkpoint"]
        if not checkpoints:
            self.set_status("none yet" if self._loaded else "")
            return
        complete = sum(1 for e in checkpoints if e.complete)
        unreadable = sum(1 for e in checkpoints if e.state == "unreadable")
        parts = [f"{complete} complete"]
        if len(checkpoints) - complete - unreadable:
            parts.append(f"{len(checkpoints) - complete - unreadable} incomplete")
        if unreadable:
            parts.append(f"{unreadable} unreadable")
        if self.marked:
            parts.append(f"{len(self.marked)} marked")
        self.set_status(" · ".join(parts))

    def _update_hint(self) -> None:
        hint = self.query_one("#checkpoints-hint", Static)
        if not self.entries:
            hint.update(f"No checkpoints yet: the train stage saves checkpoint-N folders into {self.project.training_dir}; "
                        "they appear here as they are written.")
        else:
            current = self.current_entry()
            if current is not None and current.problem:  # the state column is too narrow for the reason
                hint.update(f"{current.label}: {current.problem}")
            else:
                hint.update("space mark · e evaluate marked · c set [eval] · d delete · F1 keys")

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        if self.entries:
            self._update_hint()

    def current_entry(self) -> Entry | None:
        table = self.query_one(DataTable)
        if not self.entries or table.row_count == 0:
            return None
        row = table.cursor_row
        return self.entries[row] if 0 <= row < len(self.entries) else None

    # ------------------------------------------------------------------ marks

    def _markable(self, entry: Entry) -> bool:
        if entry.kind == "final":
            self.notify("training/final is evaluated through its export (exports/final): run the export stage, "
                        "then mark exports/final", title="Checkpoints", severity="warning")
            return False
        if entry.state == "unreadable":
            self.notify(f"{entry.label} is {entry.problem}: make its files readable (chmod / chown, or check the "
                        "disk) and it can be evaluated", title="Checkpoints", severity="warning")
            return False
        if not entry.complete:
            detail = entry.problem.removeprefix("incomplete: ") or "no trainer_state.json or weights"
            self.notify(f"{entry.label} is incomplete ({detail}: the save was cut short); "
                        "it cannot be evaluated", title="Checkpoints", severity="warning")
            return False
        return True

    def action_toggle_mark(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.key in self.marked:
            self.marked.discard(entry.key)
        elif self._markable(entry):
            self.marked.add(entry.key)
        else:
            return
        table = self.query_one(DataTable)
        table.update_cell(entry.key, "mark", "✓" if entry.key in self.marked else " ")
        self._update_status()
        self._save_marks(self.project, set(self.marked))

    def action_mark_all(self) -> None:
        wanted = {e.key for e in self.entries if e.complete and e.kind == "checkpoint"}
        self.marked = set() if wanted and wanted <= self.marked else wanted
        self._render_rows()
        self._save_marks(self.project, set(self.marked))

    @work(thread=True, exclusive=True, group="checkpoints-marks", name="save marks", exit_on_error=False)
    def _save_marks(self, project: Project, marked: set[str]) -> None:
        ui_state.save(project.root, "checkpoints", {"marked": sorted(marked), "training": training_id(project)})

    def picked(self) -> list[str]:
        """Marked names in table order (checkpoints by step, then export); the cursor row when none is marked."""
        names = [e.key for e in self.entries if e.key in self.marked]
        if names:
            return names
        entry = self.current_entry()
        if entry is not None and entry.complete and entry.kind != "final":
            return [entry.key]
        return []

    # ------------------------------------------------------------------ actions

    def action_evaluate(self) -> None:
        names = self.picked()
        if not names:
            self.notify("Mark complete checkpoints with space first", title="Checkpoints", severity="warning")
            return
        self.post_message(messages.ModelsPicked(names))
        self.notify(f"Sent to the Evaluation panel (5): {', '.join(names)}", title="Checkpoints")

    def action_set_eval(self) -> None:
        names = [n for n in self.picked() if n.startswith("checkpoint-")]
        if not names:
            self.notify("Mark the checkpoints to evaluate with space first", title="Checkpoints", severity="warning")
            return
        self._write_eval_checkpoints(names, "export" in self.marked)

    @work(thread=True, exclusive=True, group="checkpoints-config", name="set [eval] checkpoints", exit_on_error=False)
    def _write_eval_checkpoints(self, names: list[str], with_export: bool) -> None:
        path = self.project.config_path
        config = load_config(path)  # the file as it is now, not a possibly stale copy
        config = set_field(config, "eval.checkpoints", list(names), source=str(path))
        if with_export:
            config = set_field(config, "eval.include_export", True, source=str(path))
        save_config(path, config)
        self.deliver(self._eval_written, names)

    def _eval_written(self, names: list[str]) -> None:
        self.notify(f"kimi-tui.toml [eval] checkpoints = {json.dumps(names)}", title="Saved")
        self.post_message(messages.ConfigSaved())

    def action_export_note(self) -> None:
        entry = self.current_entry()
        what = entry.label if entry is not None else "a checkpoint"
        self.notify(f"The export stage exports training/final (the model at the end of training), not {what}. "
                    "Choosing a checkpoint to export is not supported yet.", title="Export", timeout=8)

    def action_delete(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        if entry.kind != "checkpoint":
            self.notify(f"Only checkpoint-N folders are deleted here; {entry.label} is left alone",
                        title="Checkpoints", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._delete(entry.path)

        self.app.push_screen(ConfirmModal(f"Delete {entry.label} ({human_size(entry.size_bytes)})? "
                                          "This cannot be undone", yes="Delete"), answer)

    @work(thread=True, name="delete checkpoint", exit_on_error=False)
    def _delete(self, path: Path) -> None:
        training = self.project.training_dir.resolve()
        target = path.resolve()
        if target.parent != training or not CHECKPOINT_RE.match(target.name):
            raise RuntimeError(f"refusing to delete {target}: not a checkpoint-N folder inside {training}")
        shutil.rmtree(target)
        self.deliver(self._deleted, path.name)

    def _deleted(self, name: str) -> None:
        self.marked.discard(name)
        self._save_marks(self.project, set(self.marked))
        self.notify(f"Deleted {name}", title="Checkpoints")
        self.refresh_checkpoints()

    def action_refresh(self) -> None:
        self.refresh_checkpoints()

    # ------------------------------------------------------------------ panel contract

    def reload_project(self, project: Project) -> None:
        super().reload_project(project)
        self.refresh_checkpoints()

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Checkpoints: refresh", "Re-read training/ now (r)", self.action_refresh),
            ("Checkpoints: evaluate marked", "Send the marked models to the Evaluation panel (e)", self.action_evaluate),
            ("Checkpoints: set [eval] checkpoints", "Write the marked checkpoints to kimi-tui.toml (c)", self.action_set_eval),
            ("Checkpoints: delete", "Delete the checkpoint folder under the cursor, after asking (d)", self.action_delete),
        ]
