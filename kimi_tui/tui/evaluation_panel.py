"""The Evaluation panel: which model is better, by how much, whether that is more than noise,
and on which utterances.

Why it is laid out this way (top to bottom, in 80x24):

* a compact table of every scored model for one split (CER with its S/D/I, macro CER, SER,
  exact match, similarity, N), because "which checkpoint?" is the first question;
* two CERs a point apart on a few hundred utterances can be noise, so right under the table the
  panel compares two chosen models, A and B, with the paired bootstrap: B-A in points, its 95%
  interval, P(B better), how many utterances improved or regressed, and a one-line verdict;
* then the utterances themselves, sortable by how much B changed them, beside the selected
  utterance aligned against its reference for every model, so the errors behind the numbers can
  be read (``z`` hides the table to give them the whole height).

Scores are recomputed from the evaluation folder's raw predictions with the normaliser the
project's config asks for (``kimi_tui.evaluate.report``), never read back from metrics.json, so
changing ``[eval]`` options in the Config panel re-scores what is shown here and the export
agrees with the screen. Loading, scoring, the bootstrap and the export run in named workers (a
failure becomes the app's modal). The workbench's one watcher (tui/project_watcher.py) says when
``evaluations/`` changed: a new evaluation appears without a key press, and one still being
written is re-scored as its predictions grow.

With ``[eval] mixed_tokens`` on, the table has an MER column beside CER (the same errors counted
over CJK characters + Latin words, for code-switched speech), so what the report and the screen
show stays the same set of numbers.

What is finished comes from ``kimi_tui.evaluate.state``, the same answer `kimi-tui report` and
`kimi-tui status` give: the title says running / partial / failed and what is missing, a failed
model is listed with its reason and never with numbers (its missing predictions are not a
transcript of nothing), and a partial model's numbers are over the clips it has, marked so.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState, get_current_worker

from kimi_tui.evaluate.align import display_width
from kimi_tui.evaluate.compare import PairedComparison, compare
from kimi_tui.evaluate.metric_table import PANEL_COLUMNS, metrics, pct, points
from kimi_tui.evaluate.metrics import UtteranceScore, summarise
from kimi_tui.evaluate.normalise import Normaliser, NormaliserOptions
from kimi_tui.evaluate.report import (
    Evaluation,
    build_report,
    common_clips,
    default_pairs,
    load_evaluation,
    render_csv,
    render_markdown,
    render_utterances_csv,
    score_evaluation,
)
from kimi_tui.evaluate.state import EvaluationState
from kimi_tui.fsutil import atomic_write_json, atomic_write_text
from kimi_tui.project import Project
from kimi_tui.tui.panel import PaletteCommand, Panel
from kimi_tui.tui import messages, ui_state
from kimi_tui.tui.widgets.alignment_view import STYLE_LABEL, AlignedModel, AlignmentView, UtteranceAlignment

NO_EVALUATION = "No evaluation yet: run the evaluate stage (Run panel, or `kimi-tui run evaluate`)"
# An evaluation still being written (no metrics.json yet) is re-scored at most this often.
RESCORE_IN_PROGRESS_SECONDS = 10.0
BOOTSTRAP_SEED = 0
REPORT_FILES = ("report.md", "report.csv", "report.json", "report-utterances.csv")
REF_CELLS = 12  # the reference column of the utterance list: six CJK characters
NARROW_BELOW = 74  # panel width under which the alignment goes below the utterance list

# (name shown to the user, the column that carries the sort arrow, the arrow)
SORTS = (
    ("id", "id", "▲"),
    ("worst B", "B", "▼"),
    ("largest regression", "B-A", "▼"),
    ("largest improvement", "B-A", "▲"),
)
SORT_DIFFERENCE = (2, 3)
#: The order `o` goes through: what B changed first (the README's "o sorts by CER difference"),
#: then the worst of B, then back to id order.
SORT_CYCLE = (0, 2, 3, 1)


def _short_rate(x: float | None) -> str:
    """Per-utterance rates in five cells: 16.7, 100, 1028."""
    if x is None:
        return "-"
    return f"{x * 100:.1f}" if abs(x) < 1 else f"{x * 100:.0f}"


def _short_delta(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x * 100:+.1f}" if abs(x) < 1 else f"{x * 100:+.0f}"


def metric_columns(mixed: bool) -> tuple[str, ...]:
    """The metrics table's headers: the model, then kimi_tui.evaluate.metric_table's PANEL_COLUMNS."""
    return ("model", *(m.column for m in metrics(PANEL_COLUMNS, mixed)))


def _crop(text: str, cells: int) -> str:
    """Cut `text` to `cells` terminal cells (CJK counts two), with an ellipsis when cut."""
    if display_width(text) <= cells:
        return text
    out = ""
    for ch in text:
        if display_width(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def _id_prefix(ids: list[str]) -> str:
    """A prefix every id shares ("lingyin_test_"), cut at a separator, so the list shows "001"."""
    if len(ids) < 2:
        return ""
    prefix = os.path.commonprefix(ids)
    cut = max(prefix.rfind(sep) for sep in "_-/.:")
    return prefix[: cut + 1] if cut >= 3 else ""


def verdict(c: PairedComparison) -> tuple[str, str]:
    """(one-line verdict, style), from whether the 95% interval of B-A excludes zero."""
    if c.a == c.b:
        return "A and B are the same model (press b for another)", "dim"
    if c.ci_low is None or c.ci_high is None:
        return "nothing to compare (no reference characters)", "dim"
    if c.ci_high < 0:
        return "B better", "bold green"
    if c.ci_low > 0:
        return "B worse", "bold red"
    return "no significant difference", "bold yellow"


def normaliser_options(project: Project) -> NormaliserOptions:
    ev = project.config.eval
    return NormaliserOptions(numbers=ev.normalise_numbers, fillers=ev.remove_fillers, mixed=ev.mixed_tokens)


def evaluation_folders(project: Project) -> list[Path]:
    """Every evaluation folder, oldest first (their names are start times)."""
    root = project.evaluations_dir
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob("*/evaluation.json"))


def _signature(folder: Path) -> tuple:
    """Size and mtime of every file scoring reads, to notice predictions being written."""
    out = []
    for path in [folder / "evaluation.json", folder / "references.jsonl", folder / "metrics.json",
                 *sorted(folder.glob("*/predictions*.jsonl")), *sorted(folder.glob("*/status*.json"))]:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name if path.parent == folder else path.parent.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass
class Loaded:
    """One evaluation folder, scored: everything the panel draws comes from here."""

    folder: Path
    evaluation: Evaluation
    options: NormaliserOptions
    label: str
    scores: dict[str, dict[str, list[UtteranceScore]]]  # model -> split -> scores (reference order)
    metrics: dict[str, dict[str, dict]]  # scored model -> split -> summarise()
    finished: bool  # the transcription is over (complete, partial or failed): its files stop changing
    state: EvaluationState | None = None

    def __post_init__(self) -> None:
        self.index = {m: {s: {u.id: u for u in per[s]} for s in per} for m, per in self.scores.items()}

    @property
    def models(self) -> list[str]:
        """The models with numbers (complete, or partial over their clips): the ones A and B can be."""
        return self.evaluation.scored

    @property
    def all_models(self) -> list[str]:
        return self.evaluation.models

    def model_state(self, model: str) -> str:
        return self.evaluation.model_state(model)

    def headline(self) -> str:
        """'failed: checkpoint-30 · partial: checkpoint-20 3/9' for the title; '' when complete."""
        st = self.state
        if st is None or st.complete:
            return ""
        failed = [m.name for m in st.models if m.state == "failed"]
        partial = [f"{m.name} {m.clips}/{m.of}" for m in st.models if m.state in ("partial", "running", "pending")]
        parts = []
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if partial:
            parts.append(("running: " if st.state == "running" else "partial: ") + ", ".join(partial))
        return " · ".join(parts) or st.state

    @property
    def splits(self) -> list[str]:
        return self.evaluation.splits


def load_and_score(folder: Path, options: NormaliserOptions, runs_dir: Path | None = None) -> Loaded:
    ev = load_evaluation(folder, runs_dir=runs_dir)
    normaliser = Normaliser(options)
    scores = score_evaluation(ev, normaliser)
    metrics = {m: {s: summarise(scores[m][s], normaliser) for s in ev.splits} for m in scores}
    finished = ev.state is None or ev.state.state != "running"
    return Loaded(folder, ev, options, normaliser.label, scores, metrics, finished, ev.state)


@dataclass(frozen=True)
class UtteranceRow:
    id: str
    reference: str
    a: UtteranceScore
    b: UtteranceScore

    @property
    def delta(self) -> float:
        """B's errors minus A's, per reference character (the per-utterance CER difference)."""
        return (self.b.errors - self.a.errors) / max(self.a.n_ref, 1)

    def sort_key(self, mode: int) -> tuple:
        if mode == 1:
            return (-self.b.errors / max(self.b.n_ref, 1), -self.b.errors, self.id)
        if mode == 2:
            return (-self.delta, self.id)
        if mode == 3:
            return (self.delta, self.id)
        return (self.id,)


class EvaluationPanel(Panel):
    PANEL_ID = "evaluation"
    TITLE = "Evaluation"

    BINDINGS = [
        Binding("a", "cycle_a", "Next A", id="evaluation.cycle_a",
                tooltip="Compare: make the next model A (the baseline)"),
        Binding("b", "cycle_b", "Next B", id="evaluation.cycle_b",
                tooltip="Compare: make the next model B (the candidate)"),
        Binding("t", "toggle_split", "Test/train", id="evaluation.split",
                tooltip="Show the other split (test or train)"),
        Binding("o", "cycle_sort", "Sort", id="evaluation.sort",
                tooltip="Sort utterances: largest regression (CER B-A) / largest improvement / worst B / id"),
        Binding("e", "export", "Export", id="evaluation.export",
                tooltip="Write report.md, report.csv, report.json and report-utterances.csv into the evaluation folder"),
        Binding("p", "older", "Older", id="evaluation.older", show=False,
                tooltip="Show the next older evaluation (wraps round to the latest)"),
        Binding("z", "zoom", "Zoom", id="evaluation.zoom", show=False,
                tooltip="Hide or show the metrics table, giving the utterances the whole height"),
    ]

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(project, **kwargs)
        self.folders: list[Path] = []
        self.folder: Path | None = None
        self.follow_latest = True
        self.data: Loaded | None = None
        self.split = "test"
        self.model_a: str | None = None
        self.model_b: str | None = None
        self._pair_restored = False  # the A/B of the last session (ui_state), read with the first load
        self.sort_mode = 0
        self.comparison: PairedComparison | None = None
        self.selected_id: str | None = None
        self._signature: tuple | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._pending_pick: list[str] | None = None
        self._compare_cache: dict[tuple, PairedComparison] = {}
        self._metric_columns: tuple[str, ...] = ()

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Static(NO_EVALUATION, id="ev-empty", markup=False)
        with Vertical(id="ev-body"):
            yield DataTable(id="ev-metrics", cursor_type="row", zebra_stripes=True)
            yield Static("", id="ev-comparison", markup=False)
            with Horizontal(id="ev-lower"):
                yield DataTable(id="ev-utterances", cursor_type="row")
                yield AlignmentView(id="ev-alignment")

    def on_mount(self) -> None:
        if not self.children:  # quit while the panel was being built: nothing to set up
            return
        self._set_metric_columns(metric_columns(mixed=False))
        self._show_message(NO_EVALUATION)
        self.set_status("no evaluation")
        self.poll()

    def on_resize(self) -> None:
        # Side by side, the alignment needs ~30 cells beside the utterance list's 42: below that
        # it would wrap a character a line, so the two are stacked (and the metrics shortened).
        self.set_class(self.size.width < NARROW_BELOW, "-narrow")

    def focus_default(self) -> None:
        if self.data is not None:
            self.query_one("#ev-utterances", DataTable).focus()
        else:
            self.focus()

    # ----------------------------------------------------------- loading

    def on_evaluations_changed(self, message: messages.EvaluationsChanged) -> None:
        """evaluations/ changed on disk (the workbench's ProjectWatcher)."""
        message.stop()
        self.poll()

    def on_models_picked(self, message: messages.ModelsPicked) -> None:
        """The Checkpoints panel's marked models, handed on by the workbench screen."""
        message.stop()
        self.pick_models(message.names)

    def poll(self) -> None:
        """Notice new evaluation folders and changed files in the one shown."""
        folders = evaluation_folders(self.project)
        if folders != self.folders:
            new = [f for f in folders if f not in self.folders]
            had_any = bool(self.folders)
            self.folders = folders
            if not folders:
                self._show_nothing()
                return
            if self.follow_latest or self.folder not in folders:
                if self.folder != folders[-1]:
                    self.folder = folders[-1]
                    self.follow_latest = True
                    self._signature = None
                    if had_any and new:
                        self.notify(f"New evaluation {folders[-1].name}", title="Evaluation")
            elif new:
                self.notify(f"New evaluation {new[-1].name} (press p to cycle to it)", title="Evaluation")
            self._update_status()
        if self.folder is None:
            return
        signature = _signature(self.folder)
        if signature == self._signature:
            return
        in_progress = self.data is not None and self.data.folder == self.folder and not self.data.finished
        if in_progress and time.monotonic() - self._loaded_at < RESCORE_IN_PROGRESS_SECONDS and not (
            self.folder / "metrics.json"
        ).exists():
            return
        self._signature = signature  # set before loading: a folder that fails is not retried until it changes
        self._start_load()

    def _start_load(self) -> None:
        assert self.folder is not None
        self._generation += 1
        self._loaded_at = time.monotonic()
        if self.data is None:
            self._show_message(f"Loading and scoring {self.folder.name}…")
        if self.data is None or self.data.folder != self.folder:
            self.set_status(f"{self.folder.name} · loading…")
        self._load(self.folder, normaliser_options(self.project), self._generation)

    @work(thread=True, name="evaluation: load", exit_on_error=False, exclusive=True, group="evaluation-load")
    def _load(self, folder: Path, options: NormaliserOptions, generation: int) -> None:
        loaded = load_and_score(folder, options, self.project.runs_dir)
        saved = None if self._pair_restored else ui_state.load(self.project.root, "evaluation")
        if not get_current_worker().is_cancelled:
            self.deliver(self._on_loaded, generation, loaded, saved)

    def _on_loaded(self, generation: int, loaded: Loaded, saved: dict | None = None) -> None:
        if generation != self._generation:
            return  # a newer load was asked for meanwhile
        if saved is not None and not self._pair_restored:
            self._pair_restored = True
            a, b = saved.get("a"), saved.get("b")
            if a in loaded.models and b in loaded.models and a != b:
                self.model_a, self.model_b = a, b
        first = self.data is None
        same_folder = self.data is not None and self.data.folder == loaded.folder
        was = self.data.state.state if same_folder and self.data.state is not None else None
        was_notes = self.data.state.notes() if same_folder and self.data.state is not None else []
        self.data = loaded
        notes = loaded.state.notes() if loaded.state is not None else []
        if notes and notes != was_notes:  # old numbers must not pass as the new checkpoint's
            self.notify("; ".join(notes), title="Evaluation: from an earlier run", severity="warning", timeout=12)
        if loaded.state is not None and loaded.state.state in ("failed", "partial") and was != loaded.state.state:
            self.notify(f"{loaded.folder.name} is {loaded.state.state}: {loaded.state.missing()}",
                        title="Evaluation", severity="warning" if loaded.state.state == "partial" else "error")
        self._compare_cache.clear()
        self.comparison = None
        models = loaded.models
        if self.split not in loaded.splits:
            self.split = "test" if "test" in loaded.splits else (loaded.splits[0] if loaded.splits else "test")
        if self.model_a not in models or self.model_b not in models:
            self.model_a, self.model_b = self._default_pair(models)
        self.set_class(False, "-empty")
        if self._pending_pick is not None:
            names, self._pending_pick = self._pending_pick, None
            self.pick_models(names)
        self.refresh_view(keep_selection=same_folder)
        if first and self._tab_shown() and (self.has_focus or not self.has_focus_within):
            self.focus_default()  # the user opened the tab before the first load finished

    def _tab_shown(self) -> bool:
        """Is this panel's tab the one on screen (every ancestor displayed)?"""
        return all(node.display for node in self.ancestors_with_self if hasattr(node, "display"))

    @staticmethod
    def _default_pair(models: list[str]) -> tuple[str | None, str | None]:
        """The last two checkpoints (did the end of training still help?), else base -> the last model."""
        if not models:
            return None, None
        pairs = default_pairs(models)
        if pairs:
            return pairs[-1]
        return (models[-2], models[-1]) if len(models) > 1 else (models[0], models[0])

    def _show_nothing(self) -> None:
        self.folder = None
        self.data = None
        self._signature = None
        self._generation += 1
        self._show_message(NO_EVALUATION)
        self.set_status("no evaluation")

    def _show_message(self, text: str) -> None:
        """Instead of the body: no evaluation, still loading, or one that failed to load."""
        self.query_one("#ev-empty", Static).update(text)
        self.set_class(True, "-empty")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The Panel base hands the failure to the app's modal; here the panel also says so
        # where the tables would be.
        if event.state != WorkerState.ERROR or event.worker.node is not self:
            return
        if event.worker.name == "evaluation: load" and self.data is None:
            name = self.folder.name if self.folder else "the evaluation"
            self._show_message(f"Could not load {name} (see the error). It is re-read when its files change; "
                               "p shows an older evaluation.")
            self.set_status(f"{name} · failed to load")

    def reload_project(self, project: Project) -> None:
        old = (normaliser_options(self.project), self.project.config.eval.bootstrap_resamples)
        super().reload_project(project)
        if old[0] != normaliser_options(project):
            self._signature = None  # re-score with the new normaliser on the next poll
            self.poll()
        elif old[1] != project.config.eval.bootstrap_resamples and self.data is not None:
            self._compare_cache.clear()
            self.refresh_view(keep_selection=True)

    def refresh_evaluations(self) -> None:
        """Look at evaluations/ now (the app may call this on EvaluationsChanged)."""
        self.poll()

    # ---------------------------------------------------------- drawing

    @property
    def resamples(self) -> int:
        return self.project.config.eval.bootstrap_resamples

    def _update_status(self) -> None:
        if self.folder is None:
            self.set_status("no evaluation")
            return
        name = self.folder.name
        if len(self.folders) > 1 and self.folder in self.folders:
            name += f" ({self.folders.index(self.folder) + 1}/{len(self.folders)})"
        d = self.data
        if d is None or d.folder != self.folder:
            self.set_status(f"{name} · loading…")
            return
        n = next((per[self.split]["n_utts"] for per in d.metrics.values() if self.split in per), 0)
        complete = [per for m, per in d.metrics.items() if d.model_state(m) == "complete" and self.split in per]
        n = next((per[self.split]["n_utts"] for per in complete), n)
        headline = d.headline()
        status = f"{name} · {headline} · {self.split} N={n}" if headline else f"{name} · {self.split} N={n} · {d.label}"
        self.set_status(status)

    def refresh_view(self, keep_selection: bool = True) -> None:
        if self.data is None:
            return
        self._update_status()
        self._fill_metrics()
        self._fill_comparison()
        self._fill_utterances(keep_selection)

    def _set_metric_columns(self, names: tuple[str, ...]) -> None:
        if names != self._metric_columns:
            self._metric_columns = names
            table = self.query_one("#ev-metrics", DataTable)
            table.clear(columns=True)
            table.add_columns(*names)

    @property
    def mixed(self) -> bool:
        """Was the mixed-token MER computed for the evaluation shown?"""
        return self.data is not None and any("mer" in m for per in self.data.metrics.values() for m in per.values())

    def _fill_metrics(self) -> None:
        assert self.data is not None
        shown = metrics(PANEL_COLUMNS, self.mixed)
        columns = metric_columns(self.mixed)
        self._set_metric_columns(columns)
        table = self.query_one("#ev-metrics", DataTable)
        row = table.cursor_row
        table.clear()
        d = self.data
        rated = [per[self.split]["cer"] for model, per in d.metrics.items()
                 if self.split in per and per[self.split]["cer"] is not None and d.model_state(model) == "complete"]
        best = min(rated) if rated else None
        for model in d.all_models:
            state = d.model_state(model)
            roles = ("A" if model == self.model_a else "") + ("B" if model == self.model_b else "")
            name = Text()
            name.append(f"{roles:<2}", style=STYLE_LABEL.get(roles[:1], ""))
            name.append(model, style="bold" if roles else "")
            m = d.metrics.get(model, {}).get(self.split)
            ms = d.state.model(model) if d.state is not None else None
            if m is None:
                if model in d.metrics:
                    continue  # scored, but not on this split
                # Failed or not transcribed: the reason instead of numbers (never a CER of nothing).
                word = "failed" if state == "failed" else state if state == "running" else "none"
                dash = Text("-", justify="right", style="dim")
                clips = f"{ms.clips}/{ms.of}" if ms is not None else "-"
                table.add_row(name, Text(word, justify="right", style="bold red" if state == "failed" else "dim"),
                              *[dash] * (len(columns) - 3), Text(clips, justify="right", style="dim"), key=model)
                continue
            partial = state in ("partial", "running")
            if partial:
                name.append(" partial", style="yellow")
            if ms is not None and ms.moved:
                name.append(" moved", style="yellow")
            cells = []
            for metric in shown:
                text, style = metric.format(m), ""
                if metric.key == "cer":
                    style = ("bold green" if m["cer"] is not None and m["cer"] == best and not partial
                             else "yellow" if partial else "")
                elif metric.key == "n_utts" and partial:  # of this split's clips
                    text, style = f"{m['n_utts']}/{len(d.evaluation.references.get(self.split, {}))}", "yellow"
                elif metric.key == "mer" and partial:
                    style = "yellow"
                cells.append(Text(text, justify="right", style=style))
            table.add_row(name, *cells, key=model)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1), animate=False)

    def _compare_key(self) -> tuple:
        return (self._generation, self.split, self.model_a, self.model_b, self.resamples)

    def _fill_comparison(self) -> None:
        d = self.data
        assert d is not None
        static = self.query_one("#ev-comparison", Static)
        if len(d.models) < 2 or self.model_a is None or self.model_b is None:
            static.update(Text("One model in this evaluation: nothing to compare.", style="dim"))
            return
        key = self._compare_key()
        self.comparison = self._compare_cache.get(key)
        if self.comparison is None:
            static.update(self._comparison_text(None))
            sa, sb = d.scores[self.model_a][self.split], d.scores[self.model_b][self.split]
            if self._partial_pair():
                sa, sb = common_clips(sa, sb)  # a partial model: over the clips both have
            self._compare(key, sa, sb)
        else:
            static.update(self._comparison_text(self.comparison))

    @work(thread=True, name="evaluation: compare", exit_on_error=False, exclusive=True, group="evaluation-compare")
    def _compare(self, key: tuple, scores_a: list[UtteranceScore], scores_b: list[UtteranceScore]) -> None:
        _, _, a, b, resamples = key
        result = compare(a, scores_a, b, scores_b, resamples=resamples, seed=BOOTSTRAP_SEED)
        if not get_current_worker().is_cancelled:
            self.deliver(self._on_compared, key, result)

    def _on_compared(self, key: tuple, result: PairedComparison) -> None:
        self._compare_cache[key] = result
        if key == self._compare_key():
            self.comparison = result
            self.query_one("#ev-comparison", Static).update(self._comparison_text(result))

    def _comparison_text(self, c: PairedComparison | None) -> Text:
        t = Text()
        t.append("A ", style=STYLE_LABEL["A"])
        t.append(str(self.model_a), style="bold")
        t.append(" -> ")
        t.append("B ", style=STYLE_LABEL["B"])
        t.append(str(self.model_b), style="bold")
        t.append(f" · {self.split}: ")
        if c is None:
            t.append(f"bootstrapping ({self.resamples} resamples)…", style="dim")
            return t
        text, style = verdict(c)
        t.append(text, style=style)
        t.append(f"\nCER {pct(c.cer_a)} -> {pct(c.cer_b)}  B-A {points(c.delta)} pts  ")
        t.append(f"95% CI [{points(c.ci_low)}, {points(c.ci_high)}]")
        p = "-" if c.p_b_better is None else f"{c.p_b_better:.2f}"
        t.append(f"\nP(B better) {p} · improved {c.improved}, regressed {c.regressed}, "
                 f"unchanged {c.unchanged} of {c.n_utts}")
        if c.missing_in_b:
            t.append(f" · {c.missing_in_b} missing in B", style="red")
        if self._partial_pair():
            t.append(" · partial: over the clips both have", style="yellow")
        return t

    def _partial_pair(self) -> bool:
        d = self.data
        return d is not None and any(d.model_state(m) in ("partial", "running")
                                     for m in (self.model_a, self.model_b) if m is not None)

    def _fill_utterances(self, keep_selection: bool) -> None:
        d = self.data
        assert d is not None
        table = self.query_one("#ev-utterances", DataTable)
        refs = d.evaluation.references.get(self.split, {})
        rows: list[UtteranceRow] = []
        if self.model_a is not None and self.model_b is not None:
            ia, ib = d.index[self.model_a].get(self.split, {}), d.index[self.model_b].get(self.split, {})
            rows = [UtteranceRow(i, r, ia[i], ib[i]) for i, r in refs.items() if i in ia and i in ib]
        rows.sort(key=lambda r: r.sort_key(self.sort_mode))
        prefix = _id_prefix([r.id for r in rows])
        id_width = min(max((display_width(r.id) - len(prefix) for r in rows), default=2), 10)
        _, sort_column, arrow = SORTS[self.sort_mode]
        table.clear(columns=True)
        for label, width in (("id", max(id_width, 4)), ("reference", REF_CELLS), ("A", 5), ("B", 5), ("B-A", 6)):
            shown = Text(f"{label} {arrow}" if label == sort_column else label,
                         style=STYLE_LABEL.get(label, ""))
            table.add_column(shown, width=width, key=label)
        for r in rows:
            delta = r.delta
            table.add_row(
                _crop(r.id[len(prefix):], id_width),
                _crop(r.reference, REF_CELLS),
                Text(_short_rate(r.a.cer), justify="right"),
                Text(_short_rate(r.b.cer), justify="right"),
                Text(_short_delta(delta), justify="right",
                     style="green" if delta < 0 else "red" if delta > 0 else "dim"),
                key=r.id,
            )
        target = 0
        if keep_selection and self.selected_id is not None:
            target = next((i for i, r in enumerate(rows) if r.id == self.selected_id), 0)
        if rows:
            table.move_cursor(row=target, animate=False)
            self.show_utterance(rows[target].id)
        else:
            self.selected_id = None
            self.query_one(AlignmentView).show(None, f"No utterances in the {self.split} split.")

    def show_utterance(self, utt_id: str) -> None:
        """Align utterance `utt_id` (current split) for A, B and then every other model."""
        d = self.data
        if d is None:
            return
        self.selected_id = utt_id
        order = [m for m in (self.model_a, self.model_b) if m is not None]
        order += [m for m in d.models if m not in order]
        models = []
        for m in order:
            score = d.index[m].get(self.split, {}).get(utt_id)
            if score is None:
                continue
            role = ("A" if m == self.model_a else "") + ("B" if m == self.model_b else "")
            models.append(AlignedModel(m, score, role))
        reference = d.evaluation.references.get(self.split, {}).get(utt_id, "")
        self.query_one(AlignmentView).show(UtteranceAlignment(utt_id, reference, models))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "ev-utterances" and event.row_key.value is not None:
            if event.row_key.value != self.selected_id:
                self.show_utterance(str(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "ev-utterances":
            self.query_one(AlignmentView).focus()  # Enter: read (scroll) the alignment

    # ---------------------------------------------------------- actions

    def _need_data(self) -> bool:
        if self.data is None:
            self.notify(NO_EVALUATION if self.folder is None else "The evaluation is still loading.",
                        severity="warning")
            return False
        return True

    def _next_model(self, current: str | None, other: str | None) -> str | None:
        models = self.data.models if self.data else []
        if not models:
            return None
        start = models.index(current) if current in models else -1
        for step in range(1, len(models) + 1):
            candidate = models[(start + step) % len(models)]
            if candidate != other or len(models) == 1:
                return candidate
        return current

    def action_cycle_a(self) -> None:
        if self._need_data():
            self.model_a = self._next_model(self.model_a, self.model_b)
            self.refresh_view()
            self._remember_pair()

    def action_cycle_b(self) -> None:
        if self._need_data():
            self.model_b = self._next_model(self.model_b, self.model_a)
            self.refresh_view()
            self._remember_pair()

    def _remember_pair(self) -> None:
        """The pair the user chose outlives the session (a/b keys, marks from Checkpoints)."""
        self._pair_restored = True  # chosen here: a late first load must not bring back the old one
        self._save_pair(self.project.root, self.model_a, self.model_b)

    @work(thread=True, name="evaluation: save A/B", exit_on_error=False, exclusive=True, group="evaluation-pair")
    def _save_pair(self, root: Path, a: str | None, b: str | None) -> None:
        ui_state.save(root, "evaluation", {"a": a, "b": b})

    def pick_models(self, names: list[str]) -> None:
        """Compare the models the Checkpoints panel marked (in its order: by step, then the export):
        the first is A and the last B; a single mark becomes B, against the current A (or base)."""
        if self.data is None:
            self._pending_pick = list(names)
            return
        models = self.data.models
        found: list[str] = []
        unknown: list[str] = []
        for name in names:
            match = self._resolve_model(name, models)
            if match is None:
                unknown.append(name)
            elif match not in found:
                found.append(match)
        unscored = [n for n in unknown if self._resolve_model(n, self.data.all_models) is not None]
        unknown = [n for n in unknown if n not in unscored]
        for name in unscored:  # in the evaluation, but failed or never transcribed: say why
            st = self.data.state.model(self._resolve_model(name, self.data.all_models)) if self.data.state else None
            self.notify(f"{st.describe() if st else name} in {self.data.folder.name}: it has no numbers to compare.",
                        title="Evaluation", severity="warning")
        if unknown:
            self.notify(f"Not in evaluation {self.data.folder.name}: {', '.join(unknown)}. "
                        "Run the evaluate stage to score them.", title="Evaluation", severity="warning")
        if not found:
            return
        if len(found) == 1:
            self.model_b = found[0]
            if self.model_a == self.model_b:
                self.model_a = "base" if "base" in models and self.model_b != "base" else \
                    self._next_model(self.model_b, self.model_b)
        else:
            self.model_a, self.model_b = found[0], found[-1]
        self.notify(f"Comparing A {self.model_a} -> B {self.model_b}", title="Evaluation", timeout=3)
        self.refresh_view()
        self._remember_pair()

    @staticmethod
    def _resolve_model(name: str, models: list[str]) -> str | None:
        """A model by its evaluation name ("checkpoint-10", "export") or its folder's path."""
        for candidate in (name, Path(name).name):
            if candidate in models:
                return candidate
        return None

    def set_split(self, split: str) -> None:
        if not self._need_data():
            return
        assert self.data is not None
        if split not in self.data.splits:
            self.notify(f"This evaluation has no {split} split (it scored: {', '.join(self.data.splits)}).",
                        severity="warning")
            return
        self.split = split
        self.refresh_view(keep_selection=False)

    def action_toggle_split(self) -> None:
        if not self._need_data():
            return
        assert self.data is not None
        splits = self.data.splits
        if len(splits) < 2:
            self.notify(f"This evaluation scored only {', '.join(splits) or 'nothing'}.", severity="warning")
            return
        self.set_split(splits[(splits.index(self.split) + 1) % len(splits)] if self.split in splits else splits[0])

    def set_sort(self, mode: int) -> None:
        self.sort_mode = mode % len(SORTS)
        if self.data is not None:
            self._fill_utterances(keep_selection=False)  # the sorted column's header carries the arrow

    def action_cycle_sort(self) -> None:
        self.set_sort(SORT_CYCLE[(SORT_CYCLE.index(self.sort_mode) + 1) % len(SORT_CYCLE)])

    def sort_by_difference(self) -> None:
        """Largest regression first; asked again, largest improvement first."""
        self.set_sort(3 if self.sort_mode == 2 else 2)

    def action_zoom(self) -> None:
        self.toggle_class("-zoomed")

    def action_older(self) -> None:
        if not self.folders:
            self.notify(NO_EVALUATION, severity="warning")
            return
        if len(self.folders) == 1:
            self.notify("This is the only evaluation.", timeout=2)
            return
        index = self.folders.index(self.folder) if self.folder in self.folders else len(self.folders)
        self.folder = self.folders[(index - 1) % len(self.folders)]
        self.follow_latest = self.folder == self.folders[-1]
        self._signature = None
        self.poll()

    def action_export(self) -> None:
        if not self._need_data():
            return
        assert self.data is not None
        d = self.data
        pairs: list[tuple[str, str]] = []
        if self.model_a and self.model_b and self.model_a != self.model_b:
            pairs.append((self.model_a, self.model_b))
        pairs += [p for p in default_pairs(d.models) if p not in pairs]
        self._export(d.evaluation, d.options, pairs, self.resamples)

    @work(thread=True, name="evaluation: export", exit_on_error=False, group="evaluation-export")
    def _export(self, ev: Evaluation, options: NormaliserOptions, pairs: list[tuple[str, str]], resamples: int) -> None:
        report = build_report(ev, Normaliser(options), pairs=pairs, resamples=resamples, seed=BOOTSTRAP_SEED)
        paths = [ev.path / name for name in REPORT_FILES]
        try:
            atomic_write_text(paths[0], render_markdown(report))
            atomic_write_text(paths[1], render_csv(report))
            atomic_write_json(paths[2], report)
            atomic_write_text(paths[3], render_utterances_csv(report))
        except OSError as exc:  # a read-only or full disk: the user can fix it and press e again
            self.deliver(self.notify, f"Cannot write the report into {ev.path}: {exc}", title="Export",
                         severity="error")
            return
        self.deliver(
            self.notify, f"{ev.path}{os.sep}\n" + " · ".join(p.name for p in paths), title="Report written", timeout=8
        )

    # ---------------------------------------------------------- palette

    def _show_me(self) -> None:
        show = getattr(self.screen, "action_show", None)
        if callable(show):
            show(self.PANEL_ID)

    def _palette(self, callback) -> object:
        def run() -> None:
            self._show_me()
            callback()
        return run

    def _compare_command(self) -> None:
        self.set_class(False, "-zoomed")
        if self._need_data():
            self.query_one("#ev-metrics", DataTable).focus()
            self.notify("a / b choose the models compared; the verdict is under the table.", timeout=4)

    def palette_commands(self) -> list[PaletteCommand]:
        ab = f" (now {self.model_a} -> {self.model_b})" if self.data is not None else ""
        return [
            ("Evaluation: export report", "Write report.md, report.csv, report.json and report-utterances.csv "
             "into the evaluation folder",
             self._palette(self.action_export)),
            ("Evaluation: compare A/B", f"Paired bootstrap of two models; a / b choose them{ab}",
             self._palette(self._compare_command)),
            ("Evaluation: show train", "Metrics and utterances of the training split",
             self._palette(lambda: self.set_split("train"))),
            ("Evaluation: show test", "Metrics and utterances of the test split",
             self._palette(lambda: self.set_split("test"))),
            ("Evaluation: sort by CER difference", "Utterances by B-A: largest regression first (again: improvement)",
             self._palette(self.sort_by_difference)),
        ]
