"""The Config panel: every setting of kimi-tui.toml as a form, checked as you type.

Why it works this way:

* The form edits a *working copy*; nothing reaches the disk until Ctrl+S. Every
  keystroke goes through ``config.set_field`` (the same validation as loading
  the file), so a value the file would reject is shown as an error beside its
  field, and the working copy keeps the last valid value. Saving is refused
  while a field is invalid, so a typo can never be written.
* Validation alone cannot see the seed report's failures (save_steps larger
  than the run, eight GPUs on nine samples): ``lint.lint_project`` combines the
  working copy with the data and the machine, and its findings update live in a
  box below the form, next to the exact command each stage would run (the
  engine's own plan, so what you see is what runs; ``y`` copies it via OSC 52,
  which works over SSH and tmux). Both are computed in a worker, debounced,
  because counting a large CSV must not stall typing.
* Saving merges: only the settings changed in the form are written, on top of
  what is on disk now (``save_config`` keeps comments and layout), so a hand
  edit made meanwhile in another pane is not reverted.
* ``e`` hands the real file to $EDITOR. If the edit leaves the file invalid,
  the located error is shown and nothing overwrites the file: the user's text
  is never lost.
* At 80x24 the form scrolls and the help of the focused field, the findings
  and the command preview share the bottom rows (``f`` switches). Letter keys
  act when no text field has focus: Esc leaves a field, Tab enters the next.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from typing import Any, Literal, get_args, get_origin

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Label, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from kimi_tui.config import TABLE_HELP, ProjectConfig, format_float, load_config, save_config, set_field
from kimi_tui.engines import engine_names, get_engine, stages_of
from kimi_tui.errors import ConfigError, KimiTuiError
from kimi_tui.lint import Lint, lint_project
from kimi_tui.presets import PRESETS, apply_preset, preset_changes
from kimi_tui.project import Project
from kimi_tui.tui import messages
from kimi_tui.tui.confirm_modal import ConfirmModal
from kimi_tui.tui.error_modal import ErrorModal
from kimi_tui.tui.panel import Panel, PaletteCommand
from kimi_tui.words import plural

PREVIEW_DELAY_S = 0.25  # debounce: lint + plan once typing pauses
Kind = Literal["input", "switch", "select"]


def _sections() -> list[tuple[str, Any]]:
    return [(name, info.annotation) for name, info in ProjectConfig.model_fields.items()]


def _table_help(table: str) -> str:
    text = " ".join(TABLE_HELP.get(table, "").split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""


FIELDS: list[tuple[str, str, Any]] = [
    (table, key, info) for table, section in _sections() for key, info in section.model_fields.items()
]
DESCRIPTIONS = {f"{t}.{k}": " ".join((info.description or "").split()) for t, k, info in FIELDS}


def field_id(dotted: str) -> str:
    return "cfg-" + dotted.replace(".", "-")


def _kind(annotation: Any) -> Kind:
    if annotation is bool:
        return "switch"
    if get_origin(annotation) is Literal:
        return "select"
    return "input"


def _get(config: ProjectConfig, dotted: str) -> Any:
    table, key = dotted.split(".", 1)
    return getattr(getattr(config, table), key)


def as_text(value: Any) -> str:
    """A value as it is typed into the form (what set_field reads back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def diff(a: ProjectConfig, b: ProjectConfig) -> list[str]:
    """table.key of every setting that differs between two configs."""
    return [f"{t}.{k}" for t, k, _ in FIELDS if _get(a, f"{t}.{k}") != _get(b, f"{t}.{k}")]


def short_error(dotted: str, message: str) -> str:
    """'kimi-tui.toml: [train] epochs = "abc": expected a whole number' -> 'expected a whole number'."""
    table, key = dotted.split(".", 1)
    lines = []
    for line in message.splitlines():
        marker = f"[{table}] {key}"
        if marker in line:
            line = line.split(marker, 1)[1]
            line = line.split(": ", 1)[1] if ": " in line else line
        lines.append(line.strip())
    return " ".join(lines)


def compact_script(script: str, argv: list[str]) -> str:
    """``script`` (StagePlan.shell_script) with its exec line as one ``--option value`` per line.

    The same command, shorter to read in six rows than one word per line; ``y``
    still copies the plan's own script.
    """
    lines = script.splitlines()
    head = []
    for line in lines:
        if line.startswith("exec "):
            break
        head.append(line)
    groups: list[list[str]] = []
    for arg in argv:
        if not groups or (arg.startswith("-") and len(arg) > 1):
            groups.append([arg])
        else:
            groups[-1].append(arg)
    body = " \\\n  ".join(" ".join(shlex.quote(a) for a in group) for group in groups)
    return "\n".join(head + ["exec " + body]) + "\n"



class PresetModal(ModalScreen[str | None]):
    """Pick a preset; the list shows what each would change in the current form."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="preset.cancel", tooltip="Close without applying")]

    def __init__(self, config: ProjectConfig) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        with Vertical(id="preset-dialog"):
            yield Static("Preset: Enter fills the form, Esc cancels (Ctrl+S saves)", id="preset-title", markup=False)
            options: list[Option | None] = []
            for name, (description, _values) in PRESETS.items():
                changes = preset_changes(self.config, name)
                prompt = Text(name, style="bold")
                prompt.append(f"\n{description}\n", style="")
                if changes:
                    shown = ", ".join(f"{d} {as_text(old)} -> {as_text(new)}" for d, old, new in changes)
                    prompt.append(f"changes: {shown}", style="italic")
                else:
                    prompt.append("already applied: changes nothing", style="italic")
                if options:
                    options.append(None)  # a separator line
                options.append(Option(prompt, id=name))
            yield OptionList(*options, id="preset-list")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option_id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfigPanel(Panel):
    PANEL_ID = "config"
    TITLE = "Config"

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="config.save", tooltip="Write the form to kimi-tui.toml (comments kept)"),
        Binding("p", "preset", "Preset", id="config.preset", tooltip="Fill the form from a named preset (not saved)"),
        Binding("e", "edit", "$EDITOR", id="config.edit", tooltip="Open kimi-tui.toml in $EDITOR, then re-check it"),
        Binding("y", "copy", "Copy cmd", id="config.copy", tooltip="Copy the previewed stage command (OSC 52)"),
        Binding("f", "toggle_view", "Findings/cmd", id="config.view",
                tooltip="Switch the bottom area between the findings and the command preview"),
        Binding("s", "next_stage", "Stage", id="config.stage", tooltip="Preview the next stage's command"),
        Binding("u", "revert", "Revert", id="config.revert", tooltip="Drop unsaved changes: back to the file"),
        Binding("escape", "leave_field", "Leave field", id="config.leave", show=False,
                tooltip="Leave the text field so letter keys act on the panel"),
    ]

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(project, **kwargs)
        self._field_to_focus: Widget | None = None  # "Config: go to field": where showing the panel lands
        self.saved: ProjectConfig = project.config  # what the file holds (as last loaded or saved)
        self.working: ProjectConfig = project.config  # the form's last valid values
        self.errors: dict[str, str] = {}  # table.key -> why the typed text is invalid
        self.findings: list[Lint] = []
        self.disk_error: str | None = None  # the file is invalid after an edit in $EDITOR
        self.stage = "train" if "train" in stages_of(project) else stages_of(project)[0]  # previewed
        self.command_text: str | None = None  # the previewed stage's shell script, if it could be planned
        self.command_reason = ""
        self._gpus = None
        self._preview_timer: Timer | None = None
        self._widgets: dict[str, Widget] = {}

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Static("", id="config-disk-error", markup=False)
        with VerticalScroll(id="config-form"):
            current = None
            for table, key, info in FIELDS:
                if table != current:
                    current = table
                    title = Text(f"[{table}]", style="bold")
                    help_text = _table_help(table)
                    if help_text:
                        title.append(f"  {help_text}", style="dim")
                    yield Static(title, classes="config-table", id=f"cfg-table-{table}")
                dotted = f"{table}.{key}"
                yield from self._field_row(dotted, key, info)
        yield Static("", id="config-help", markup=False)
        with Horizontal(id="config-bottom-bar"):
            yield Static("", id="config-bottom-title", markup=False)
            stages = stages_of(self.project)
            yield Select([(s, s) for s in stages], value=self.stage if self.stage in stages else stages[0],
                         allow_blank=False, compact=True,
                         id="config-stage", tooltip="Which stage's command to preview (s cycles)")
        with ContentSwitcher(initial="config-findings", id="config-bottom"):
            yield OptionList(id="config-findings")
            with VerticalScroll(id="config-command"):
                yield Static("", id="config-command-text", markup=False)

    def _field_row(self, dotted: str, key: str, info: Any) -> ComposeResult:
        value = _get(self.working, dotted)
        # engine.name is a str checked against the registry: its choices are the engines registered now
        kind = "select" if dotted == "engine.name" else _kind(info.annotation)
        wid = field_id(dotted)
        tip = DESCRIPTIONS[dotted]
        if kind == "switch":
            widget: Widget = Switch(value=bool(value), id=wid, tooltip=tip, classes="config-value")
        elif kind == "select":
            choices = engine_names() if dotted == "engine.name" else get_args(info.annotation)
            widget = Select([(as_text(c), c) for c in choices], value=value, allow_blank=False, compact=True,
                            id=wid, tooltip=tip, classes="config-value")
        else:
            placeholder = f"(empty)  e.g. {as_text(info.examples[0])}" if info.examples else "(empty)"
            widget = Input(as_text(value), placeholder=placeholder, compact=True, id=wid, tooltip=tip,
                           classes="config-value", select_on_focus=False)
        self._widgets[dotted] = widget
        with Horizontal(classes="config-row", id=f"{wid}-row"):
            yield Label(key, classes="config-key", id=f"{wid}-key")
            yield widget
        yield Static("", classes="config-error", id=f"{wid}-error", markup=False)

    def on_mount(self) -> None:
        if not self.children:  # quit while the panel was being built: nothing to set up
            return
        self.query_one("#config-disk-error").display = False
        self._show_help(None)
        self._update_status()
        self._update_bottom_title()
        self._read_gpus()
        self.schedule_preview(now=True)

    def focus_default(self) -> None:
        field, self._field_to_focus = self._field_to_focus, None
        if field is not None:
            field.focus()
            field.scroll_visible(top=True, animate=False)
            self.set_timer(0.05, lambda: self._land_on(field))
            return
        self.query_one("#config-form").focus()

    def _land_on(self, field: Widget, tries: int = 40) -> None:
        """Until ``field`` is in view: a panel just shown (a tab switch from the palette) has no
        scroll range for a few frames, and a scroll asked for then is clamped to the top."""
        form = self.query_one("#config-form")
        if not tries or self.app.focused is not field or (
                field.region.height and form.region.contains_region(field.region)):
            return  # in view (or the user has moved on)
        form.scroll_to_widget(field, top=True, animate=False)
        self.set_timer(0.05, lambda: self._land_on(field, tries - 1))

    # ------------------------------------------------------------------ editing

    def _dotted_of(self, widget: Widget | None) -> str | None:
        wid = widget.id if widget is not None else None
        if not wid or not wid.startswith("cfg-"):
            return None
        for dotted, w in self._widgets.items():
            if w is widget:
                return dotted
        return None

    def set_value(self, dotted: str, raw: Any) -> None:
        """What every edit goes through: validate into the working copy, or remember why not."""
        try:
            self.working = set_field(self.working, dotted, raw)
        except ConfigError as exc:
            self.errors[dotted] = short_error(dotted, str(exc))
        else:
            self.errors.pop(dotted, None)
        self._show_field_state(dotted)
        self._update_status()
        self.schedule_preview()

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        dotted = self._dotted_of(event.input)
        if dotted is not None:
            event.stop()
            self.set_value(dotted, event.value)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        if self._dotted_of(event.input) is not None:
            event.stop()
            self.screen.focus_next()

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        dotted = self._dotted_of(event.switch)
        if dotted is not None:
            event.stop()
            self.set_value(dotted, event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "config-stage":
            if event.value != Select.NULL and event.value != self.stage:
                self.stage = str(event.value)
                self.schedule_preview(now=True)
            return
        dotted = self._dotted_of(event.select)
        if dotted is not None and event.value != Select.NULL:
            self.set_value(dotted, event.value)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        self._show_help(self._dotted_of(event.widget))

    def _show_help(self, dotted: str | None) -> None:
        help_widget = self.query_one("#config-help", Static)
        if dotted is None:
            help_widget.update("Tab: next field · Esc: leave field · Ctrl+S: save · F1: all keys")
        else:
            help_widget.update(f"{dotted}: {DESCRIPTIONS[dotted]}")

    def _show_field_state(self, dotted: str) -> None:
        wid = field_id(dotted)
        error = self.errors.get(dotted)
        error_widget = self.query_one(f"#{wid}-error", Static)
        error_widget.update(f"✗ {error} (the last valid value, {as_text(_get(self.working, dotted))}, is kept)"
                            if error else "")
        error_widget.set_class(bool(error), "-shown")
        self._widgets[dotted].set_class(bool(error), "-invalid-value")
        key_label = self.query_one(f"#{wid}-key", Label)
        key_label.set_class(_get(self.working, dotted) != _get(self.saved, dotted), "-modified")

    def _fill(self, config: ProjectConfig, *, keep_invalid: bool = True) -> None:
        """Put ``config`` into the widgets; fields showing invalid text keep it unless told otherwise."""
        self.working = config
        if not keep_invalid:
            self.errors.clear()
        for dotted, widget in self._widgets.items():
            if dotted in self.errors:
                self._show_field_state(dotted)
                continue
            value = _get(config, dotted)
            if isinstance(widget, Input):
                text = as_text(value)
                if widget.value != text:
                    widget.value = text
            elif isinstance(widget, Switch):
                if widget.value != bool(value):
                    widget.value = bool(value)
            elif isinstance(widget, Select):
                if widget.value != value:
                    widget.value = value
            self._show_field_state(dotted)
        self._update_status()
        self.schedule_preview()

    # ------------------------------------------------------------------ status

    @property
    def modified(self) -> list[str]:
        return diff(self.saved, self.working)

    def _update_status(self) -> None:
        parts = []
        if self.disk_error:
            parts.append("file has errors")
        if self.modified:
            parts.append("modified")
        if self.errors:
            parts.append(plural(len(self.errors), "error"))
        lint_errors = sum(1 for f in self.findings if f.level == "error")
        lint_warnings = sum(1 for f in self.findings if f.level == "warning")
        if lint_errors or lint_warnings:
            counts = [plural(n, w) for n, w in ((lint_errors, "error"), (lint_warnings, "warning")) if n]
            parts.append("preflight: " + ", ".join(counts))
        self.set_status(" · ".join(parts))

    def _update_bottom_title(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        title = self.query_one("#config-bottom-title", Static)
        stage_select = self.query_one("#config-stage", Select)
        if switcher.current == "config-findings":
            counts = {level: sum(1 for f in self.findings if f.level == level) for level in ("error", "warning", "note")}
            summary = ", ".join(plural(n, level) for level, n in counts.items() if n) or "no findings"
            title.update(f"Preflight: {summary}   (f: command preview)")
            stage_select.display = False
        else:
            title.update("Command  (y: copy · f: findings · s: stage)")
            stage_select.display = True

    # ------------------------------------------------------------------ preview (lint + plan)

    def schedule_preview(self, now: bool = False) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(0.01 if now else PREVIEW_DELAY_S, self._start_preview)

    def _start_preview(self) -> None:
        self._preview_timer = None
        self._compute_preview(self.working, self.stage, self._gpus)

    @work(thread=True, exclusive=True, group="config-preview", name="config preview", exit_on_error=False)
    def _compute_preview(self, config: ProjectConfig, stage: str, gpus: Any) -> None:
        project = Project(root=self.project.root, config=config)
        findings = lint_project(project, gpus=gpus)
        try:
            plan = get_engine(config.engine.name).plan(stage, project)
        except (KimiTuiError, OSError) as exc:
            text, ok = str(exc), False
        else:
            text, ok = plan.shell_script(), True
            shown = compact_script(text, plan.argv)
        if not get_current_worker().is_cancelled:
            self.deliver(self._show_preview, config, findings, stage, text, ok, shown if ok else text)

    def _show_preview(self, config: ProjectConfig, findings: list[Lint], stage: str, text: str, ok: bool,
                      display: str) -> None:
        if config is not self.working or stage != self.stage:
            return  # stale: a newer preview is on its way
        self.findings = findings
        self.command_text = text if ok else None
        self.command_reason = "" if ok else text
        shown = Text(display) if ok else Text(f"No {stage} command yet: {text}", style=self._level_style("warning"))
        self.query_one("#config-command-text", Static).update(shown)
        self._show_findings()
        self._update_status()
        self._update_bottom_title()

    def _level_style(self, level: str) -> str:
        theme = self.app.current_theme
        color = {"error": theme.error, "warning": theme.warning}.get(level)
        return f"bold {color}" if color and level == "error" else (color or "dim")

    def _show_findings(self) -> None:
        option_list = self.query_one("#config-findings", OptionList)
        highlighted = option_list.highlighted
        option_list.clear_options()
        icons = {"error": "✗", "warning": "!", "note": "·"}
        options = []
        for i, finding in enumerate(self.findings):
            prompt = Text(f"{icons[finding.level]} {finding.field}: ", style=self._level_style(finding.level))
            prompt.append(finding.message)
            prompt.append(f"\n  fix: {finding.fix}", style="italic")
            options.append(Option(prompt, id=f"finding-{i}"))
        if not options:
            options.append(Option(Text("No problems found for this config and data.", style="dim"), disabled=True))
        option_list.add_options(options)
        if highlighted is not None and self.findings:
            option_list.highlighted = min(highlighted, len(self.findings) - 1)
        lint_fields = {}
        for finding in self.findings:
            lint_fields.setdefault(finding.field, finding.level)
        for dotted in self._widgets:
            label = self.query_one(f"#{field_id(dotted)}-key", Label)
            for level in ("error", "warning"):
                label.set_class(lint_fields.get(dotted) == level, f"-lint-{level}")

    @on(OptionList.OptionSelected, "#config-findings")
    def _finding_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if not event.option_id or not event.option_id.startswith("finding-"):
            return
        finding = self.findings[int(event.option_id.split("-", 1)[1])]
        widget = self._widgets.get(finding.field)
        if widget is not None:
            widget.focus()
            widget.scroll_visible()

    @work(thread=True, name="read GPUs", exit_on_error=False)
    def _read_gpus(self) -> None:
        from kimi_tui.gpu import read_gpus

        snapshot = read_gpus()
        self.deliver(self._got_gpus, snapshot)

    def _got_gpus(self, snapshot: Any) -> None:
        self._gpus = snapshot
        self.schedule_preview(now=True)

    # ------------------------------------------------------------------ actions

    def action_leave_field(self) -> None:
        self.query_one("#config-form").focus()

    def action_toggle_view(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "config-command" if switcher.current == "config-findings" else "config-findings"
        self._update_bottom_title()

    def action_next_stage(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        if switcher.current != "config-command":
            switcher.current = "config-command"
        else:
            stages = stages_of(self.project)
            self.stage = stages[(stages.index(self.stage) + 1) % len(stages)] if self.stage in stages else stages[0]
            self.query_one("#config-stage", Select).value = self.stage
            self.schedule_preview(now=True)
        self._update_bottom_title()

    def action_copy(self) -> None:
        if self.command_text is None:
            reason = self.command_reason or "still computing"
            self.notify(f"No {self.stage} command to copy: {reason}", title="Config", severity="warning")
            return
        self.app.copy_to_clipboard(self.command_text)
        self.notify(f"Copied the {self.stage} command to the clipboard (OSC 52)", title="Config")

    def action_save(self) -> None:
        if self.disk_error:
            self.notify("kimi-tui.toml has errors from your last edit (shown above): press e to fix them; "
                        "the file was not overwritten", title="Not saved", severity="error")
            return
        if self.errors:
            first, why = next(iter(self.errors.items()))
            self.notify(f"{plural(len(self.errors), 'field')} invalid: {first}: {why}. Fix it, or press u to "
                        "revert to the file", title="Not saved", severity="error")
            return
        changed = self.modified
        if not changed:
            self.notify("No changes to save", title="Config")
            return
        self._save(self.saved, self.working, changed)

    @work(thread=True, exclusive=True, group="config-save", name="save config", exit_on_error=False)
    def _save(self, base: ProjectConfig, working: ProjectConfig, changed: list[str]) -> None:
        path = self.project.config_path
        # Merge onto the file as it is now: settings not changed in the form keep their on-disk value.
        merged = load_config(path) if path.exists() else base
        for dotted in changed:
            merged = set_field(merged, dotted, _get(working, dotted), source=str(path))
        save_config(path, merged)
        self.deliver(self._saved, merged, working, changed)

    def _saved(self, merged: ProjectConfig, working: ProjectConfig, changed: list[str]) -> None:
        self.saved = merged
        # Anything typed while saving stays a pending change on top of what was written.
        current = merged
        for dotted in diff(working, self.working):
            try:
                current = set_field(current, dotted, _get(self.working, dotted))
            except ConfigError:
                pass
        self._fill(current)
        self.notify(f"Saved {plural(len(changed), 'change')} to {self.project.config_path.name}", title="Config")
        self.post_message(messages.ConfigSaved())

    def action_preset(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.apply_named_preset(name)

        self.app.push_screen(PresetModal(self.working), chosen)

    def apply_named_preset(self, name: str) -> None:
        changes = preset_changes(self.working, name)
        try:
            config = apply_preset(self.working, name)
        except ConfigError as exc:
            self.notify(str(exc), title="Preset", severity="error")
            return
        for dotted in PRESETS[name][1]:
            self.errors.pop(dotted, None)
        self._fill(config)
        if changes:
            self.notify(f"Preset {name}: {plural(len(changes), 'setting')} changed in the form; Ctrl+S saves",
                        title="Config")
        else:
            self.notify(f"Preset {name} changes nothing here", title="Config")

    def action_revert(self) -> None:
        if not self.modified and not self.errors:
            self.notify("Nothing to revert: the form matches the file", title="Config")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._fill(self.saved, keep_invalid=False)
                self.notify("Reverted to kimi-tui.toml", title="Config")

        count = len(set(self.modified) | set(self.errors))
        self.app.push_screen(ConfirmModal(f"Drop {plural(count, 'unsaved change')} and go back to the file?",
                                          yes="Revert"), answer)

    def action_edit(self) -> None:
        if self.modified or self.errors:
            count = len(set(self.modified) | set(self.errors))

            def answer(yes: bool | None) -> None:
                if yes:
                    self.edit_in_editor()

            self.app.push_screen(ConfirmModal(
                f"The form has {plural(count, 'unsaved change')}. Drop them and open kimi-tui.toml in "
                "$EDITOR? (No keeps them: save with Ctrl+S first.)", yes="Drop and edit"), answer)
            return
        self.edit_in_editor()

    def edit_in_editor(self) -> None:
        path = self.project.config_path
        editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        before = path.read_bytes() if path.exists() else b""
        try:
            with self.app.suspend():
                subprocess.call([*editor, str(path)])
        except SuspendNotSupported:
            self.notify("This terminal cannot hand over to an editor; edit kimi-tui.toml in another window",
                        title="$EDITOR", severity="error")
            return
        except OSError as exc:
            self.notify(f"Cannot run {editor[0]!r} ({exc.strerror or exc}); set $EDITOR", title="$EDITOR",
                        severity="error")
            return
        after = path.read_bytes() if path.exists() else b""
        self.reload_from_disk(changed=before != after or self.disk_error is not None)

    def reload_from_disk(self, changed: bool = True) -> bool:
        """Re-read kimi-tui.toml after a hand edit; an invalid file is reported, never overwritten."""
        disk_error = self.query_one("#config-disk-error", Static)
        try:
            config = load_config(self.project.config_path)
        except ConfigError as exc:
            self.disk_error = str(exc)
            disk_error.update(f"kimi-tui.toml is invalid (e: fix it in $EDITOR; nothing is saved over it):\n{exc}")
            disk_error.display = True
            self._update_status()
            self.app.push_screen(ErrorModal("kimi-tui.toml has errors", str(exc)))
            return False
        self.disk_error = None
        disk_error.display = False
        self.saved = config
        self._fill(config, keep_invalid=False)
        if changed:
            self.notify("Re-read kimi-tui.toml", title="Config")
            self.post_message(messages.ConfigSaved())
        return True

    # ------------------------------------------------------------------ panel contract

    def reload_project(self, project: Project) -> None:
        """The file changed (saved here or by another panel): adopt it, keeping unsaved form edits."""
        pending = self.modified
        super().reload_project(project)
        current = project.config
        for dotted in pending:
            try:
                current = set_field(current, dotted, _get(self.working, dotted))
            except ConfigError:
                pass
        self.saved = project.config
        if self.disk_error:  # the screen just loaded the file, so it is valid again
            self.disk_error = None
            self.query_one("#config-disk-error", Static).display = False
        self._fill(current)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("Config: save", "Write the form to kimi-tui.toml, keeping comments (Ctrl+S)", self.action_save),
            ("Config: apply preset", "Fill the form from a named preset; not saved until Ctrl+S (p)", self.action_preset),
            ("Config: edit in $EDITOR", "Open kimi-tui.toml in $EDITOR, then re-check it (e)", self.action_edit),
            ("Config: copy command", "Copy the previewed stage command to the clipboard (y)", self.action_copy),
            ("Config: revert unsaved changes", "Drop the form's unsaved edits (u)", self.action_revert),
        ] + [  # one per field: the palette's fuzzy match finds "go to lr" as train.learning_rate
            (f"Config: go to field {dotted}", DESCRIPTIONS[dotted] or f"Edit {dotted}",
             lambda d=dotted: self.go_to_field(d))
            for dotted in (f"{table}.{key}" for table, key, _ in FIELDS)
        ]

    def go_to_field(self, dotted: str) -> None:
        """Show the panel and put the cursor in DOTTED's field, scrolled into view."""
        widget = self._widgets.get(dotted)
        if widget is None:
            self.notify(f"No field {dotted} in the form", severity="warning")
            return
        self._field_to_focus = widget  # focus_default takes it: showing the panel ends there
        show = getattr(self.screen, "action_show", None)
        if show is not None:
            show(self.PANEL_ID)
        else:
            self.call_after_refresh(self.focus_default)
