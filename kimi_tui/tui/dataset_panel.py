"""The Dataset panel: every row of the train and test sets, and what is wrong with them.

Why it is built this way:

* A fine-tuning run fails late and expensively on bad data, so this is where the
  data is checked before a GPU is touched. It runs the same headless ingest as
  the prepare stage (``kimi_tui.data.load_split``, audio headers only) with the
  same ``[data]`` settings, so what it shows is what prepare will write, and the
  rows it marks as left out are the rows prepare will leave out.
* Probing every audio header takes seconds on a large corpus, so loading runs in
  a named worker and each split appears as soon as it is read. A source that
  cannot be read at all (a DataError: missing file, no id column) is the user's
  to fix, not a crash: it is shown in the panel and as a notification, and the
  other split still loads. Anything else escaping the worker is a bug and goes
  to the app's error modal.
* Corpora have 100,000+ rows: the table is virtual (widgets/utterance_table.py)
  and search/filter rebuild only a list of row references, so both stay
  instant; the statistics of a whole split are computed in the worker.
* It is used over SSH at 80x24: one line of controls (split, filter, search,
  count), the table, and one small area that switches between statistics,
  findings and the selected clip's details, every part reachable by a key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from kimi_tui.tui import messages
from kimi_tui.tui.panel import PaletteCommand, Panel
from kimi_tui.tui.widgets.utterance_table import Cell, Column, UtteranceTable, column_width
from kimi_tui.views.dataset import (
    LEVEL_MARK, LEVELS, ExcludedRow, SplitData, compute_stats, finding_cell, hms, load_split_data, short_message,
)
from kimi_tui.words import plural

if TYPE_CHECKING:  # kimi_tui.data pulls in numpy + soundfile: imported in the worker, not at start-up
    from kimi_tui.data import Finding, Manifest
    from kimi_tui.project import Project

T = TypeVar("T")
SPLITS = ("train", "test")
SPLIT_NAMES = {"train": "training set", "test": "test set"}
FILTERS = ("all", "findings", "errors", "long")
PANES = ("stats", "findings", "details")
STATS_DEBOUNCE_ROWS = 20_000
BLOCKS = " ▏▎▍▌▋▊▉"


def measure_column(values: Sequence[str], minimum: int, maximum: int) -> int:
    """The table's width for a column of VALUES (SplitData.build's measure)."""
    return column_width(values, minimum=minimum, maximum=maximum)


def _unless_cancelled(worker: Worker, fn: Callable[[], T]) -> T | None:
    """``fn()`` in a daemon thread; None as soon as ``worker`` is cancelled (the app quits, a reload starts).

    load_split cannot be interrupted, and a worker's thread is joined when the
    process exits: without this, quitting during a long load would hang until
    every audio header had been probed.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the worker: the app's error modal shows it
            box["error"] = exc

    thread = threading.Thread(target=run, name="dataset: load_split", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.05)
        if worker.is_cancelled:
            return None
    if "error" in box:
        raise box["error"]
    return box["value"]


# --------------------------------------------------------------------------- widgets


class DurationHistogram(Widget):
    """The duration histogram as text bars, drawn to whatever width it gets."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bins: list[tuple[float, float, int]] = []

    def show(self, bins: list[tuple[float, float, int]]) -> None:
        self.bins = bins
        self.refresh()

    def render(self) -> Text:
        if not self.bins:
            return Text("")
        step = self.bins[0][1] - self.bins[0][0]
        decimals = 0 if step >= 1 and float(step).is_integer() else (1 if float(step * 10).is_integer() else 2)
        labels = [f"{lo:.{decimals}f}–{hi:.{decimals}f} s" for lo, hi, _ in self.bins]
        label_w = max(len(s) for s in labels)
        counts = [f"{n:,}" for _, _, n in self.bins]
        count_w = max(len(s) for s in counts)
        bar_w = max(4, self.content_size.width - label_w - count_w - 3)
        top = max(n for _, _, n in self.bins) or 1
        text = Text(no_wrap=True, overflow="crop")
        for i, ((_, _, n), label, count) in enumerate(zip(self.bins, labels, counts)):
            eighths = round(n / top * bar_w * 8)
            if n and not eighths:
                eighths = 1
            bar = "█" * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")
            if i:
                text.append("\n")
            text.append(label.rjust(label_w) + " ", style="dim")
            text.append(bar.ljust(bar_w), style="bold")
            text.append(" " + count.rjust(count_w))
        return text


# --------------------------------------------------------------------------- the panel


class DatasetPanel(Panel):
    PANEL_ID = "dataset"
    TITLE = "Dataset"
    LONG_CLIP_S: ClassVar[float] = 20.0
    """The "over N s" filter: batches are padded to their longest clip, so a few long clips cost
    memory on every step."""

    BINDINGS = [
        Binding("t", "toggle_split", "Train/Test", id="dataset.split",
                tooltip="Switch between the training and test set"),
        Binding("slash", "search", "Search", id="dataset.search",
                tooltip="Filter the rows by id or transcript as you type (Enter: back to the table, Esc: clear)"),
        Binding("f", "cycle_filter", "Filter", id="dataset.filter",
                tooltip="Cycle the rows shown: all / with findings / errors only / over 20 s"),
        Binding("s", "show_pane('stats')", "Stats", id="dataset.stats",
                show=False,
                tooltip="Statistics: clips, hours, duration histogram, characters per second"),
        Binding("e", "show_pane('findings')", "Findings", id="dataset.findings",
                show=False,
                tooltip="Errors, warnings and notes of both sets; Enter jumps to the row"),
        Binding("d", "show_pane('details')", "Details", id="dataset.details",
                show=False,
                tooltip="The selected clip: audio path, format, transcript, findings and their fixes"),
        Binding("n", "next_finding", "Next finding", id="dataset.next", show=False,
                tooltip="Jump to the next finding's row (errors first)"),
        Binding("r", "reload", "Reload", id="dataset.reload", show=False,
                tooltip="Read the data set again from disk"),
        Binding("escape", "escape", "Back", id="dataset.back", show=False,
                tooltip="Clear the search and go back to the table"),
    ]

    def __init__(self, project: Project, *, manifests: dict[str, Manifest | None] | None = None, **kwargs: Any) -> None:
        """``manifests``: show these instead of reading the project's data (benchmarks and tests)."""
        super().__init__(project, **kwargs)
        self._given = manifests
        self._data: dict[str, SplitData] = {}
        self._split = "train"
        self._filter = "all"
        self._query = ""
        self._view: list[Any] = []
        self._selected: dict[str, Any] = {}  # split -> the row under the cursor
        self._all_findings: list[tuple[str, Finding]] = []
        self._finding_pos = -1
        self._pane = "stats"
        self._stats_dirty = True
        self._stats_timer: Timer | None = None
        self._pending_jump: tuple[str, str | None, int | None] | None = None
        self._loading = False
        self._generation = 0

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="dataset-bar"):
            yield Static(id="dataset-split")
            yield Static(id="dataset-filter")
            yield Input(placeholder="/ search id or text", id="dataset-search")
            yield Static(id="dataset-count")
        yield Static(id="dataset-message")
        yield UtteranceTable(
            [Column("id", 4), Column("dur s", 6, "right"), Column("rate", 5, "right"), Column("ch", 2, "right"),
             Column("transcript"), Column("findings", 8)],
            empty_text="no rows", id="dataset-table",
        )
        with Vertical(id="dataset-bottom"):
            with ContentSwitcher(initial="dataset-stats", id="dataset-switcher"):
                with Horizontal(id="dataset-stats"):
                    yield Static(id="dataset-summary")
                    yield DurationHistogram(id="dataset-histogram")
                yield UtteranceTable(
                    [Column("", 1), Column("split", 5), Column("line", 5, "right"), Column("code", 14),
                     Column("message")],
                    empty_text="no findings: every row imports cleanly", id="dataset-findings",
                )
                with VerticalScroll(id="dataset-details"):
                    yield Static(id="dataset-details-body")

    def on_mount(self) -> None:
        if not self.children:  # quit while the panel was being built: nothing to set up
            return
        self._update_bar()
        self._update_pane_title()
        self._update_message()
        self.query_one("#dataset-findings", UtteranceTable).set_rows(0, self._render_finding)
        self.reload()
        self.call_after_refresh(self._take_initial_focus)

    def _take_initial_focus(self) -> None:
        """The Dataset tab opens first: start with the keyboard in its table, not on the tab bar."""
        focused = self.screen.focused
        pane = next((a for a in self.ancestors if isinstance(a, TabPane)), None)
        tabs = next((a for a in self.ancestors if isinstance(a, TabbedContent)), None)
        if tabs is not None and pane is not None and tabs.active != pane.id:
            return
        if (focused is None or focused is tabs or type(focused).__name__ == "ContentTabs"
                or self in focused.ancestors_with_self):
            self.table.focus()

    def focus_default(self) -> None:
        self.table.focus()

    @property
    def table(self) -> UtteranceTable:
        return self.query_one("#dataset-table", UtteranceTable)

    @property
    def findings_table(self) -> UtteranceTable:
        return self.query_one("#dataset-findings", UtteranceTable)

    @property
    def split(self) -> str:
        return self._split

    @property
    def view(self) -> list[Any]:
        """The rows shown, in table order (Utterance or ExcludedRow)."""
        return self._view

    @property
    def selected_row(self) -> Any | None:
        if not self._view:
            return None
        return self._view[min(self.table.cursor_row, len(self._view) - 1)]

    # ------------------------------------------------------------------ loading

    def reload_project(self, project: Project) -> None:
        super().reload_project(project)
        self.reload()

    def reload(self) -> None:
        """Read both splits again, in a worker; what is shown stays until the new data arrives."""
        self._generation += 1
        self._loading = True
        self._update_status()
        self._update_message()
        self._load(self.project, self._generation, self._given)

    # description given: by default Textual builds it from repr() of the arguments (seconds for 100k rows)
    @work(thread=True, name="dataset: load", description="read the train and test data", exit_on_error=False,
          exclusive=True, group="dataset-load")
    def _load(self, project: Project, generation: int, given: dict[str, Manifest | None] | None) -> None:
        worker = get_current_worker()
        loaded: dict[str, SplitData] = {}
        for split in SPLITS:
            if given is not None:
                manifest = given.get(split)
                data = SplitData.build(split, manifest, measure_column) if manifest is not None else SplitData(
                    split, missing=f"No {SPLIT_NAMES[split]} given.")
            else:
                train = loaded["train"].manifest if "train" in loaded else None
                data = _unless_cancelled(worker, lambda split=split, train=train: load_split_data(
                    project, split, train, measure_column))
            if data is None or worker.is_cancelled:
                return
            loaded[split] = data
            self.deliver(self._apply, generation, data)
        if not worker.is_cancelled:
            self.deliver(self._finish, generation)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Not stopped: the app still turns a failure into its error modal.
        if event.worker.name == "dataset: load" and event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            if event.state == WorkerState.ERROR:
                self._loading = False
                self._update_status()
                self._update_message()

    def _apply(self, generation: int, data: SplitData) -> None:
        if generation != self._generation:
            return
        self._data[data.split] = data
        if data.error:
            self.notify(data.error, title=f"Dataset: cannot read the {SPLIT_NAMES[data.split]}", severity="error",
                        timeout=12)
        self._rebuild_findings()
        if data.split == self._split:
            self._show_split(keep=self._selected.get(self._split))
        pending = self._pending_jump
        if pending is not None and pending[0] == data.split:
            self._pending_jump = None
            self.jump_to(*pending)
        self._update_status()
        self._update_bar()

    def _finish(self, generation: int) -> None:
        if generation == self._generation:
            self._loading = False
            self._update_status()
            self._update_message()

    # ------------------------------------------------------------------ the view

    def _show_split(self, keep: Any | None = None) -> None:
        """Rebuild the rows shown (split + filter + search), keeping ``keep`` under the cursor if it is shown."""
        data = self._data.get(self._split)
        table = self.table
        if data is None or not data.rows:
            self._view = []
        else:
            table.set_columns([
                Column("id", data.id_width), Column("dur s", 6, "right"), Column("rate", 5, "right"),
                Column("ch", 2, "right"), Column("transcript"), Column("findings", data.findings_width),
            ])
            self._view = self._filtered(data)
        cursor = 0
        if keep is not None and self._view:
            line = keep.line
            found = self._index_of(keep)
            if found is None and data is not None:  # reloaded: the same line of the new data
                same = data.find(keep.id, line)
                found = self._index_of(same) if same is not None else None
            cursor = found or 0
        table.empty_text = self._empty_text(data)
        table.set_rows(len(self._view), self._render_row, cursor=cursor)
        self._stats_dirty = True
        self._update_bar()
        self._update_message()
        self._update_pane()

    def _filtered(self, data: SplitData) -> list[Any]:
        rows = data.rows
        if self._filter == "all" and not self._query:
            return rows
        by_line = data.by_line
        keep = {
            "all": None,
            "findings": lambda r: r.line in by_line,
            "errors": lambda r: isinstance(r, ExcludedRow),
            "long": lambda r: not isinstance(r, ExcludedRow) and r.duration_s > self.LONG_CLIP_S,
        }[self._filter]
        if self._query:
            q = self._query.casefold()
            pairs = zip(rows, data.search_keys())
            if keep is None:
                return [r for r, k in pairs if q in k]
            return [r for r, k in pairs if q in k and keep(r)]
        assert keep is not None
        return [r for r in rows if keep(r)]

    def _index_of(self, row: Any) -> int | None:
        for i, r in enumerate(self._view):
            if r is row:
                return i
        return None

    def _empty_text(self, data: SplitData | None) -> str:
        if data is None:
            return f"loading the {SPLIT_NAMES[self._split]}…"
        if data.error or data.missing:
            return f"no rows: the {SPLIT_NAMES[self._split]} could not be read (see above)" if data.error else "no rows"
        if not data.rows:
            return "the file has no rows"
        what = {"all": "", "findings": " with findings", "errors": " left out by an error",
                "long": f" over {self.LONG_CLIP_S:g} s"}[self._filter]
        if self._query:
            return f"no row{what} matches “{self._query}” (Esc clears the search)"
        return f"no rows{what} (f: change the filter)"

    def _render_row(self, i: int) -> tuple[Sequence[Cell], str]:
        r = self._view[i]
        data = self._data[self._split]
        found = data.by_line.get(r.line)
        fcell: Cell = finding_cell(found) if found else ""
        if isinstance(r, ExcludedRow):
            return (r.id, "—", "—", "—", f"left out: {r.reason}", fcell), "excluded"
        return (r.id, f"{r.duration_s:.2f}", str(r.sample_rate), str(r.channels), r.text, fcell), ""

    def _render_finding(self, i: int) -> tuple[Sequence[Cell], str]:
        split, f = self._all_findings[i]
        line = "" if f.line is None else str(f.line)
        return ((LEVEL_MARK[f.level], f.level), split, line, (f.code, f.level), short_message(f)), ""

    def _rebuild_findings(self) -> None:
        ordered = [(split, f) for split in SPLITS for f in (self._data[split].findings if split in self._data else [])]
        ordered.sort(key=lambda sf: (LEVELS.index(sf[1].level), SPLITS.index(sf[0])))  # stable: file order kept
        self._all_findings = ordered
        self._finding_pos = min(self._finding_pos, len(ordered) - 1)
        table = self.findings_table
        code_w = column_width([f.code for _, f in ordered], minimum=4, maximum=18)
        table.set_columns([Column("", 1), Column("split", 5), Column("line", 5, "right"), Column("code", code_w),
                           Column("message")])
        table.set_rows(len(ordered), self._render_finding, cursor=table.cursor_row)
        self._update_pane_title()

    # ------------------------------------------------------------------ status, bar, panes

    def _update_status(self) -> None:
        parts = []
        for split in SPLITS:
            data = self._data.get(split)
            if data is None:
                parts.append(f"{split} …")
            elif data.error:
                parts.append(f"{split} unreadable")
            elif data.missing:
                if split == "train":
                    parts.append("train not set")
            else:
                parts.append(f"{split} {data.n_utterances:,}")
        errors = sum(d.count("error") for d in self._data.values())
        warnings = sum(d.count("warning") for d in self._data.values())
        parts.append(plural(errors, "error"))
        if warnings:
            parts.append(plural(warnings, "warning"))
        if self._loading:
            parts.append("loading…")
        self.set_status(" · ".join(parts))

    def _update_bar(self) -> None:
        if not self.is_mounted:
            return
        split_text = Text()
        for i, split in enumerate(SPLITS):
            data = self._data.get(split)
            if data is None:
                n = "…"
            else:
                n = "✗" if data.error else ("–" if data.missing else f"{data.n_utterances:,}")
            label = f" {split} {n} "
            if i:
                split_text.append("│", style="dim")
            split_text.append(label, style="reverse bold" if split == self._split else "dim")
        self.query_one("#dataset-split", Static).update(split_text)
        label = {"all": "all rows", "findings": "with findings", "errors": "errors only",
                 "long": f"over {self.LONG_CLIP_S:g} s"}[self._filter]
        self.query_one("#dataset-filter", Static).update(Text(f"f: {label}"))
        data = self._data.get(self._split)
        total = len(data.rows) if data is not None else 0
        shown = len(self._view)
        count = plural(total, "row") if shown == total else f"{shown:,}/{total:,}"
        self.query_one("#dataset-count", Static).update(Text(count))

    def _update_message(self) -> None:
        if not self.is_mounted:
            return
        message = self.query_one("#dataset-message", Static)
        data = self._data.get(self._split)
        text = ""
        message.set_class(False, "-info")
        if data is not None and data.error:
            text = (f"Cannot read the {SPLIT_NAMES[self._split]}: {data.error}\n"
                    "Fix the file or the [data] settings, then press r to reload.")
        elif data is not None and data.missing:
            text = data.missing
            message.set_class(True, "-info")
        elif data is None and self._loading:
            text = f"Reading the {SPLIT_NAMES[self._split]} (probing the audio headers)…"
            message.set_class(True, "-info")
        message.update(Text(text))
        message.display = bool(text)

    def _update_pane_title(self) -> None:
        if not self.is_mounted:
            return
        errors = sum(1 for _, f in self._all_findings if f.level == "error")
        n = len(self._all_findings)
        count = f" {n:,}" if n else ""
        if errors:
            count = f" {n:,}, {plural(errors, 'error')}"
        labels = {"stats": "s Stats", "findings": f"e Findings{count}", "details": "d Details"}
        title = Text()
        for i, pane in enumerate(PANES):
            if i:
                title.append(" · ", style="dim")
            title.append(labels[pane], style="bold reverse" if pane == self._pane else "")
        self.query_one("#dataset-bottom").border_title = title

    def _show_pane(self, pane: str) -> None:
        self._pane = pane
        self.query_one("#dataset-switcher", ContentSwitcher).current = f"dataset-{pane}"
        self._update_pane_title()
        self._update_pane()

    def _update_pane(self) -> None:
        if not self.is_mounted:
            return
        if self._pane == "stats" and self._stats_dirty:
            if self._stats_timer is not None:
                self._stats_timer.stop()
                self._stats_timer = None
            data = self._data.get(self._split)
            if data is not None and self._view is not data.rows and len(self._view) > STATS_DEBOUNCE_ROWS:
                # statistics of a large filtered view take ~40 ms per 100k rows: not on every keystroke
                self._stats_timer = self.set_timer(0.25, self._update_stats)
            else:
                self._update_stats()
        elif self._pane == "details":
            self._update_details()

    def _update_stats(self) -> None:
        self._stats_dirty = False
        self._stats_timer = None
        data = self._data.get(self._split)
        summary = self.query_one("#dataset-summary", Static)
        hist = self.query_one("#dataset-histogram", DurationHistogram)
        if data is None or not data.rows:
            summary.update(Text("no statistics yet" if data is None else "no rows", style="italic"))
            hist.show([])
            return
        whole = self._view is data.rows
        stats = data.stats if whole else compute_stats(self._view)
        text = Text(no_wrap=True, overflow="ellipsis")
        scope = "all rows" if whole else f"{plural(len(self._view), 'row')} shown"
        text.append(f"{SPLIT_NAMES[self._split]}, {scope}\n", style="bold")
        text.append(plural(stats.clips, "clip"), style="bold")
        text.append(f" · {stats.total_s / 3600:.2f} h ({hms(stats.total_s)})\n")
        text.append(f"mean {stats.mean_s:.2f} s · max {stats.max_s:.2f} s\n")
        text.append(f"min {stats.min_s:.2f} s · {stats.chars_per_s:.1f} chars/s\n")
        if stats.excluded:
            text.append(f"{plural(stats.excluded, 'row')} left out\n", style="bold red")
        counts = [(data.count(level), level) for level in LEVELS]
        text.append(" · ".join(plural(n, level) for n, level in counts), style="red" if counts[0][0] else "dim")
        summary.update(text)
        hist.show(stats.bins)

    def _update_details(self, finding: tuple[str, Finding] | None = None) -> None:
        body = self.query_one("#dataset-details-body", Static)
        text = Text()
        if finding is not None:
            split, f = finding
            text.append(f"{LEVEL_MARK[f.level]} {f.level} {f.code}", style=f"bold {_level_style(f.level)}")
            text.append(f"  ({split}, about the whole file)\n", style="dim")
            text.append(f.message + "\n")
            if f.fix:
                text.append("fix: ", style="bold")
                text.append(f.fix + "\n")
            body.update(text)
            return
        row = self.selected_row
        if row is None:
            body.update(Text("no row selected", style="italic"))
            return
        data = self._data[self._split]
        excluded = isinstance(row, ExcludedRow)
        text.append(row.id, style="bold")
        text.append(f" · {SPLIT_NAMES[self._split]}")
        if excluded:
            text.append(" · left out by the error below", style="bold red")
        text.append("\nrow   ", style="dim")
        text.append(f"line {row.line} of {row.source}\n")
        if row.audio:
            text.append("audio ", style="dim")
            text.append(f"{row.audio}\n")
        if not excluded:
            channels = "mono" if row.channels == 1 else f"{row.channels} channels"
            text.append("      ", style="dim")
            text.append(f"{row.duration_s:.3f} s · {row.sample_rate:,} Hz · {channels} · {row.frames:,} frames\n")
            text.append("text  ", style="dim")
            text.append(f"{row.text}\n")
            instruction, source = row_instruction(row, self.project.config.data)
            text.append("instr ", style="dim")
            text.append(instruction)
            text.append(f"  ({source})\n", style="dim")
        for f in data.by_line.get(row.line, []):
            text.append(f"{LEVEL_MARK[f.level]} {f.level} {f.code}: ", style=f"bold {_level_style(f.level)}")
            text.append(short_message(f) + "\n")
            if f.fix:
                text.append("  fix: ", style="bold")
                text.append(f.fix + "\n")
        if not excluded and row.line not in data.by_line:
            text.append("no findings", style="dim")
        body.update(text)
        self.query_one("#dataset-details", VerticalScroll).scroll_home(animate=False)

    # ------------------------------------------------------------------ events

    @on(UtteranceTable.Highlighted, "#dataset-table")
    def _row_highlighted(self, event: UtteranceTable.Highlighted) -> None:
        event.stop()
        row = self.selected_row
        if row is not None:
            self._selected[self._split] = row
        if self._pane == "details":
            self._update_details()

    @on(UtteranceTable.Selected, "#dataset-table")
    def _row_selected(self, event: UtteranceTable.Selected) -> None:
        event.stop()
        self._show_pane("details")

    @on(UtteranceTable.Highlighted, "#dataset-findings")
    def _finding_highlighted(self, event: UtteranceTable.Highlighted) -> None:
        event.stop()

    @on(UtteranceTable.Selected, "#dataset-findings")
    def _finding_selected(self, event: UtteranceTable.Selected) -> None:
        event.stop()
        self._open_finding(event.row, show_details=False)

    @on(Input.Changed, "#dataset-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._query = event.value.strip()
        self._show_split(keep=self._selected.get(self._split))

    @on(Input.Submitted, "#dataset-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def on_click(self, event: Any) -> None:
        if getattr(event, "widget", None) is not None and event.widget.id == "dataset-split":
            self.action_toggle_split()

    # ------------------------------------------------------------------ actions

    def action_toggle_split(self) -> None:
        self.show_split("test" if self._split == "train" else "train")

    def show_split(self, split: str) -> None:
        if split not in SPLITS:
            return
        if split != self._split:
            self._split = split
            self._show_split(keep=self._selected.get(split))
        self._update_status()

    def action_search(self) -> None:
        self._reveal()
        self.call_after_refresh(self.query_one("#dataset-search", Input).focus)

    def action_cycle_filter(self) -> None:
        self._filter = FILTERS[(FILTERS.index(self._filter) + 1) % len(FILTERS)]
        self._show_split(keep=self._selected.get(self._split))

    def action_show_pane(self, pane: str) -> None:
        focused = self.screen.focused
        bottom = self.query_one("#dataset-bottom")
        was_in_bottom = focused is not None and bottom in focused.ancestors
        self._show_pane(pane)
        if pane == "findings":
            self.findings_table.focus()
        elif was_in_bottom:  # its widget is about to be hidden: keep the keyboard in the panel
            self.table.focus()

    def action_next_finding(self) -> None:
        if not self._all_findings:
            self.notify("No findings: every row imports cleanly.", title="Dataset")
            return
        self._reveal()
        index = (self._finding_pos + 1) % len(self._all_findings)
        self.findings_table.move_cursor(index)
        self._open_finding(index, show_details=self._pane != "findings")

    def action_reload(self) -> None:
        self._reveal()
        self.reload()

    def action_escape(self) -> None:
        search = self.query_one("#dataset-search", Input)
        if search.value:
            search.value = ""
        self.table.focus()

    def _open_finding(self, index: int, *, show_details: bool) -> None:
        if not 0 <= index < len(self._all_findings):
            return
        self._finding_pos = index
        split, f = self._all_findings[index]
        if show_details:
            self._show_pane("details")
        found = self.jump_to(split, f.utt_id, f.line) if (f.line is not None or f.utt_id) else False
        if not found and split in self._data:
            self.show_split(split)
            self._show_pane("details")
            self._update_details((split, f))

    def on_show_finding(self, message: messages.ShowFinding) -> None:
        """Another panel named a finding (the workbench brought this tab forward)."""
        message.stop()
        self.jump_to(message.split, message.utt_id, message.line)

    def jump_to(self, split: str, utt_id: str | None, line: int | None) -> bool:
        """Show the row of ``split`` with this line (or id): switch split and clear filters as needed."""
        if split not in SPLITS:
            return False
        self.show_split(split)
        data = self._data.get(split)
        if data is None:  # still loading: jump when it arrives
            self._pending_jump = (split, utt_id, line)
            return False
        row = data.find(utt_id, line)
        if row is None:
            return False
        index = self._index_of(row)
        if index is None:  # hidden by the filter or the search
            self._filter = "all"
            self._query = ""
            search = self.query_one("#dataset-search", Input)
            with search.prevent(Input.Changed):
                search.value = ""
            self._show_split(keep=row)
            index = self._index_of(row)
        if index is None:
            return False
        self._selected[split] = row
        self.table.move_cursor(index, center=True)
        if self._pane == "details":
            self._update_details()
        return True

    def _reveal(self) -> None:
        """Make this panel's tab the active one (palette commands run from any tab)."""
        pane = next((a for a in self.ancestors if isinstance(a, TabPane)), None)
        tabs = next((a for a in self.ancestors if isinstance(a, TabbedContent)), None)
        if pane is not None and tabs is not None and pane.id and tabs.active != pane.id:
            tabs.active = pane.id

    def palette_commands(self) -> list[PaletteCommand]:
        def show(split: str) -> None:
            self._reveal()
            self.show_split(split)
            self.table.focus()

        return [
            ("Dataset: show train", "Show the training set's rows", lambda: show("train")),
            ("Dataset: show test", "Show the test set's rows", lambda: show("test")),
            ("Dataset: search", "Filter the rows by id or transcript (/)", self.action_search),
            ("Dataset: next finding", "Jump to the next error, warning or note (n)", self.action_next_finding),
            ("Dataset: reload", "Read the training and test data again from disk (r)", self.action_reload),
        ]


def row_instruction(row: Any, data: Any) -> tuple[str, str]:
    """The instruction prepare writes for ``row`` and where it comes from, in the panel's words."""
    from kimi_tui.data.kimi_jsonl import CONFIG_INSTRUCTION, row_instruction as written  # loaded by the worker

    text, source = written(row, data.instruction, data.instruction_for_jsonl)
    if source == CONFIG_INSTRUCTION and getattr(row, "instruction", None) is not None:
        source += ', instruction_for_jsonl = "override"'
    elif source == CONFIG_INSTRUCTION and Path(row.source).suffix.lower() in (".jsonl", ".json"):
        source += "; the row has none of its own"
    return text, source


def _level_style(level: str) -> str:
    return {"error": "red", "warning": "yellow", "note": "dim"}[level]
