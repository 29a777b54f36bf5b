"""Starting stages and watching them run, from a terminal that may close at any time.

Runs are detached processes that write everything to runs/<id>/, so this panel
owns nothing: it re-reads runs/ on RunsChanged (the workbench's one watcher; a
run started from the CLI, by the pipeline or by an earlier TUI shows up the same
way as one started here), tails the followed run's stdout.log and events.jsonl
from a remembered offset, and reads the GPUs.
Quitting or losing SSH only stops the watching. Every read of the disk or the
driver happens in a thread; starting and stopping do too (a stop can take
seconds of SIGINT/SIGTERM grace).

Which run is followed: on open, the latest active run, else the latest run;
afterwards each newer run as it appears (a pipeline moves from stage to stage),
until the user picks one (f / Enter), which stays until `l` (follow latest).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.cells import cell_len
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import OptionList
from textual.worker import Worker, WorkerState

from kimi_tui import pipeline
from kimi_tui.engines import stages_of
from kimi_tui.errors import DataError, KimiTuiError
from kimi_tui.progress import EventsRead, RunProgress, duration, rate_text, read_new_events
from kimi_tui.project import Project
from kimi_tui.runs import RunInfo, list_runs, stop_run
from kimi_tui.tui import messages
from kimi_tui.tui.confirm_modal import ConfirmModal
from kimi_tui.tui.error_modal import ErrorModal
from kimi_tui.tui.panel import Panel, PaletteCommand
from kimi_tui.tui.widgets.gpu_view import GpuView, bar
from kimi_tui.tui.widgets.log_view import LogView
from kimi_tui.tui.widgets.loss_plot import LossPlot
from kimi_tui.tui.widgets.stage_list import RunList, StageList, run_time_label, state_mark

POLL_S = 1.0


def run_label(run_id: str) -> str:
    """'train 14:03:12' for 20250412-140312-123456-train (the date is in the Runs list)."""
    parts = run_id.split("-")
    if len(parts) >= 4 and len(parts[1]) == 6 and parts[1].isdigit():
        hms = parts[1]
        return f"{'-'.join(parts[3:])} {hms[:2]}:{hms[2:4]}:{hms[4:]}"
    return run_id


#: The stages that read the prepared training samples: refused while prepare has left none.
SAMPLE_STAGES = ("extract", "train")


def no_usable_sample(project: Project) -> DataError | None:
    """Prepare ran and left out every row (each had an error): extract or train would start on
    nothing. The reason is prepare's own, from data/findings.json: the first three errors and their fixes."""
    path = project.train_jsonl
    try:
        with open(path, "rb") as fh:
            if any(line.strip() for line in fh):
                return None
    except OSError:  # not prepared yet: the stage's plan says "run prepare first"
        return None
    lines = [f"{path.relative_to(project.root)} holds no usable training sample: prepare left out every row."]
    try:
        findings = json.loads(project.findings_json.read_text(encoding="utf-8"))["train"]["findings"]
        errors = [f for f in findings if isinstance(f, dict) and f.get("level") == "error"]
    except (OSError, ValueError, KeyError, TypeError):
        errors = []
    for finding in errors[:3]:
        where = f"{finding.get('source') or '?'}" + (f":{finding['line']}" if finding.get("line") is not None else "")
        fix = f" Fix: {finding['fix']}" if finding.get("fix") else ""
        lines.append(f"  {where}: {finding.get('message')}{fix}")
    if len(errors) > 3:
        lines.append(f"  … and {len(errors) - 3} more (the Dataset panel lists every row)")
    lines.append("Fix the data or [data] in kimi-tui.toml, then run prepare again.")
    return DataError("\n".join(lines))


class ProgressLine(Widget):
    """One line: the followed run's step/total, a bar, steps/s, ETA and loss, or how it ended.

    What decides a failure (the run's note, its last error) is never dropped for want of
    room: it goes on the lines below, wrapped, and the line grows to hold it."""

    DEFAULT_CSS = "ProgressLine { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info: RunInfo | None = None
        self.progress = RunProgress()
        self.waiting = "no run followed · s: start the selected stage · a: start all"

    def show(self, info: RunInfo | None, progress: RunProgress) -> None:
        self.info, self.progress = info, progress
        # layout: the reason below the line can arrive (or grow) after the first draw, and an auto
        # height is only measured again on a layout refresh; without it the reason was cut after a line.
        self.refresh(layout=True)

    def render(self) -> Content:
        info, p = self.info, self.progress
        if info is None:
            return Content.styled(self.waiting, "$text-muted")
        head = Content.assemble(state_mark(info.state), " ", info.stage, " ")
        # (priority, text): what does not fit is left out, least important first.
        parts: list[tuple[int, str]] = []
        step = p.step
        if step is not None and p.total and info.state == "succeeded":
            step = p.total  # the last progress event may come before the last item's end
        if step is not None and p.total:
            parts.append((0, f"{step}/{p.total}"))
            parts.append((1, f"{step / p.total:.0%}"))
        if info.active:
            rate, eta = p.rate(), p.eta_s()
            if eta is not None:
                parts.append((2, f"ETA {duration(eta)}"))
            else:
                parts.append((2, f"{info.state} {self._elapsed(info)}"))
            if rate is not None:
                parts.append((4, rate_text(rate)))
        else:
            code = f" (exit {info.exit_code})" if info.exit_code not in (None, 0) else ""
            took = f" in {self._elapsed(info)}" if info.ended else ""
            parts.append((2, f"{info.state}{code}{took}"))
        if p.loss is not None:
            parts.append((3, f"loss {p.loss:.4g}"))
        width = self.size.width - head.cell_length
        while parts and cell_len(" · ".join(t for _, t in parts)) > width:
            parts.remove(max(parts, key=lambda part: part[0]))
        text = " · ".join(t for _, t in parts)
        room = width - cell_len(text) - 2
        if step is not None and p.total and room >= 8:
            count, rest = text.split(" · ", 1) if " · " in text else (text, "")
            line = Content.assemble(head, count, " ", bar(step / p.total, min(room, 30)), " ", rest)
        else:
            line = Content.assemble(head, text)
        reason = self.reason()
        if reason:
            return Content.assemble(line, "\n", Content.styled(reason, "$text-error"))
        return line

    def reason(self) -> str:
        """What the state alone does not say: a damaged status.json, a lost supervisor, processes
        left behind, the supervisor's recorded reason, the worker's last error."""
        info, p = self.info, self.progress
        if info is None:
            return ""
        reasons = [info.note] if info.note else []
        if p.last_error and info.state in ("failed", "interrupted") and p.last_error not in reasons:
            reasons.append(p.last_error)
        return " · ".join(reasons)

    @staticmethod
    def _elapsed(info: RunInfo) -> str:
        start = info.started or info.created
        if start is None:
            return ""
        end = info.ended if not info.active and info.ended else time.time()
        return duration(end - start)


class RunPanel(Panel):
    PANEL_ID = "run"
    TITLE = "Run"

    BINDINGS = [
        Binding("s", "start_stage", "Start", id="run.start",
                tooltip="Start the selected stage (all: every stage in order)"),
        Binding("a", "start_all", "Start all", id="run.start_all",
                tooltip="Start every stage in order, as one run"),
        Binding("x", "stop", "Stop", id="run.stop", tooltip="Stop the followed run (asks first)"),
        Binding("f", "follow_selected", "Follow", id="run.follow",
                tooltip="Follow the selected run (or the selected stage's latest run)"),
        Binding("l", "follow_latest", "Latest", id="run.follow_latest", show=False,
                tooltip="Follow the latest run, and each newer one as it starts"),
        Binding("t", "toggle_tail", "Tail", id="run.tail", show=False,
                tooltip="Keep the newest log line in view, or pause to read"),
        Binding("g", "toggle_chart", "Loss/GPU", id="run.chart",
                tooltip="Show the loss curve or the GPUs above the log"),
        Binding("z", "toggle_log_only", "Log only", id="run.log_only", show=False,
                tooltip="Hide the chart to give the log the whole height"),
    ]

    def __init__(self, project: Project, **kwargs) -> None:
        super().__init__(project, **kwargs)
        self.runs: list[RunInfo] = []
        self.followed: Path | None = None
        self.pinned = False  # the user chose the followed run: newer runs do not take over
        self.progress = RunProgress()
        self._generation = 0
        self._polling = False
        self._poll_again = False
        self._first_poll_done = False
        self._starting: str | None = None
        self._stopping: Path | None = None
        self._chart_chosen = False
        self.add_class("-chart-gpu")

    def compose(self) -> ComposeResult:
        with Horizontal(id="run-body"):
            with Vertical(id="run-side"):
                yield StageList(stages_of(self.project), id="run-stages")
                yield RunList(id="run-runs")
            with Vertical(id="run-main"):
                yield ProgressLine(id="run-progress")
                with Horizontal(id="run-charts"):
                    yield LossPlot(id="run-loss")
                    yield GpuView(id="run-gpu")
                yield LogView(id="run-log")

    def on_mount(self) -> None:
        if not self.children:  # quit while the panel was being built: nothing to set up
            return
        stages = self.query_one(StageList)
        stages.border_title = "Stages"
        stages.highlighted = 0
        self.query_one(RunList).border_title = "Runs"
        self.query_one(LogView).border_title = "log"
        self.set_status("reading runs…")
        self.set_interval(POLL_S, self._show_followed)  # elapsed and ETA move on between events
        self._poll()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 140, "-wide")
        self.set_class(self.size.height >= 40, "-tall")

    # -- the Panel contract -----------------------------------------------------

    def palette_commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = [
            ("Run: start all", "Start every stage in order, as one run", self.action_start_all),
        ]
        for stage in stages_of(self.project):
            commands.append((f"Run: start {stage}", f"Start the {stage} stage", lambda s=stage: self.start_stage(s)))
        commands += [
            ("Run: stop", "Stop the followed run (asks first)", self.action_stop),
            ("Run: follow latest", "Follow the latest run, and each newer one", self.action_follow_latest),
        ]
        return commands

    def focus_default(self) -> None:
        self.query_one(StageList).focus()

    # -- following ----------------------------------------------------------------

    def on_run_started(self, message: messages.RunStarted) -> None:
        """A run started somewhere in the app (this panel's own start included): follow it."""
        message.stop()
        self.follow_run(message.run_dir)

    def follow_run(self, run_dir: Path) -> None:
        """Show RUN_DIR's log and progress (a run just started somewhere in the app)."""
        self._follow(Path(run_dir), pinned=False)

    def _follow(self, run_dir: Path, pinned: bool) -> None:
        self.pinned = pinned
        if run_dir == self.followed:
            return
        self.followed = run_dir
        self._generation += 1
        self.progress = RunProgress()
        self.query_one(LossPlot).clear()
        self.query_one(LogView).follow(run_dir / "stdout.log", label=run_label(run_dir.name))
        if not self._chart_chosen:
            self._show_chart("loss" if run_dir.name.endswith("-train") else "gpu")
        self._show_followed()
        self._poll()

    def followed_info(self) -> RunInfo | None:
        return next((r for r in self.runs if r.path == self.followed), None)

    def _latest(self) -> RunInfo | None:
        active = [r for r in self.runs if r.active]
        return (active or self.runs or [None])[-1]

    def _follow_newer(self) -> None:
        """On open follow the latest (active) run; later, each newer one unless the user picked."""
        target = self._latest()
        if target is None:
            return
        if self.followed is None:
            self._follow(target.path, pinned=False)
        elif not self.pinned and (target.run_id > self.followed.name or not self.followed.exists()):
            self._follow(target.path, pinned=False)

    def action_follow_selected(self) -> None:
        focused = self.app.focused
        if isinstance(focused, StageList):
            self._follow_stage(focused.selected_stage)
            return
        run_id = self.query_one(RunList).selected_run_id
        if run_id is None:
            self.notify("No run selected: runs appear under Runs once started", severity="warning")
            return
        self._follow(self.project.runs_dir / run_id, pinned=True)

    def _follow_stage(self, stage: str | None) -> None:
        runs = [r for r in self.runs if r.stage == stage]
        if not runs:
            self.notify(f"{stage} has not run yet: s starts it", severity="warning")
            return
        self._follow(runs[-1].path, pinned=True)

    def action_follow_latest(self) -> None:
        target = self._latest()
        if target is None:
            self.notify("No runs yet: s starts the selected stage, a starts all", severity="warning")
            return
        self._follow(target.path, pinned=False)

    @on(OptionList.OptionSelected, "#run-runs")
    def _run_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self._follow(self.project.runs_dir / event.option.id, pinned=True)

    @on(OptionList.OptionSelected, "#run-stages")
    def _stage_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._follow_stage(event.option.id)

    # -- reading runs/ and the followed run's events --------------------------------

    def on_runs_changed(self, message: messages.RunsChanged) -> None:
        """Something under runs/ changed on disk (the workbench's ProjectWatcher)."""
        message.stop()
        self._poll()

    def _poll(self) -> None:
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        self._read_runs(self.project.runs_dir, self.followed, self.progress.offset, self._generation)

    @work(thread=True, name="read runs", exit_on_error=False, group="run-poll")
    def _read_runs(self, runs_dir: Path, followed: Path | None, offset: int, generation: int) -> None:
        try:
            runs = list_runs(runs_dir)
        except (OSError, KimiTuiError):  # a run folder removed mid-read: the next poll sees it gone
            runs = self.runs
        events = read_new_events(followed / "events.jsonl", offset) if followed else None
        self.deliver(self._runs_read, runs, events, generation)

    def _runs_read(self, runs: list[RunInfo], events: EventsRead | None, generation: int) -> None:
        self._polling = False
        self.runs = runs
        self.query_one(StageList).update_runs(self.runs)
        self.query_one(GpuView).run_groups = {
            r.pgid: f"{r.stage} {run_time_label(r)}" for r in self.runs if r.pgid and r.active
        }
        if generation == self._generation and events is not None:
            if events.start == self.progress.offset:
                self.progress.merge(events)
                if events.losses:
                    self.query_one(LossPlot).add_points(events.losses)
                    if not self._chart_chosen:
                        self._show_chart("loss")
        self._follow_newer()
        if not self._first_poll_done:
            self._first_poll_done = True
            if not self.runs:
                self.query_one(ProgressLine).waiting = "no runs yet · s: start the selected stage · a: start all"
        self._show_followed()
        if self._poll_again:
            self._poll_again = False
            self._poll()

    def _show_followed(self) -> None:
        info = self.followed_info()
        self.query_one(RunList).update_runs(self.runs, self.followed.name if self.followed else None)
        self.query_one(ProgressLine).show(info, self.progress)
        self.set_status(self.status_text())

    def status_text(self) -> str:
        info = self.followed_info()
        if info is not None and info.active:
            parts = [f"{info.stage} {info.state}"]
            p = self.progress
            if p.step is not None and p.total:
                parts[0] += f" {p.step}/{p.total}"
                eta = p.eta_s()
                if eta is not None:
                    parts.append(f"ETA {duration(eta)}")
            return " · ".join(parts)
        active = [r for r in self.runs if r.active]
        if active:
            return f"{active[-1].stage} {active[-1].state} (not followed)"
        if self._starting:
            return f"starting {self._starting}…"
        if info is not None:
            return f"idle · {info.stage} {info.state}"
        return "idle" if self._first_poll_done else "reading runs…"

    # -- starting and stopping ------------------------------------------------------

    def action_start_stage(self) -> None:
        stage = self.query_one(StageList).selected_stage
        if stage is None:
            self.notify("Pick a stage first (↑/↓ in Stages)", severity="warning")
            return
        if stage == "all":
            self.action_start_all()
            return
        self.start_stage(stage)

    def action_start_all(self) -> None:
        """Every stage again over an earlier run's outputs is hours of work: asked first."""
        self._check_outputs()

    @work(thread=True, name="check outputs", exit_on_error=False, group="run-start")
    def _check_outputs(self) -> list[str] | KimiTuiError:
        try:  # a pipeline another run holds is refused before the question, not after it
            pipeline.ensure_no_active(self.project, "all")
        except KimiTuiError as exc:
            return exc
        return pipeline.existing_outputs(self.project)

    def _outputs_checked(self, found: list[str] | KimiTuiError) -> None:
        if isinstance(found, KimiTuiError):
            self.notify(str(found), title="Cannot start all", severity="error", timeout=10)
            return
        if not found:
            self.start_stage("all")
            return
        question = (
            f"Start every stage again?\n\nAn earlier run left {', '.join(found)}. Prepare, extract, convert "
            "and evaluate write theirs again; training/ and exports/final/ are kept aside as <name>.<time>/."
        )
        self.app.push_screen(ConfirmModal(question, yes="Start all"),
                             lambda yes: self.start_stage("all") if yes else None)

    def start_stage(self, stage: str, *, learning_checked: bool = False) -> None:
        if self._starting:
            self.notify(f"Still starting {self._starting}", severity="warning")
            return
        from kimi_tui.lint import will_not_learn, will_not_learn_text

        # A config the lint says will not learn would still end "succeeded": ask first (the schedule
        # checks only, on the cached data size: quick enough for the UI thread).
        if not learning_checked and (findings := will_not_learn(self.project, stage)):
            self.app.push_screen(
                ConfirmModal(will_not_learn_text(stage, findings) + "\n\nStart it anyway?", yes="Start anyway"),
                lambda yes: self.start_stage(stage, learning_checked=True) if yes else None)
            return
        self._starting = stage
        self.set_status(self.status_text())
        self._start(stage)

    @work(thread=True, name="start stage", exit_on_error=False, group="run-start")
    def _start(self, stage: str) -> Path | KimiTuiError:
        if stage in SAMPLE_STAGES and (refused := no_usable_sample(self.project)):
            return refused
        try:
            return pipeline.start(self.project, stage)
        except KimiTuiError as exc:  # "run prepare first", "a run is still running": the user can fix it
            return exc

    def action_stop(self) -> None:
        info = self.followed_info()
        if info is None or not info.active:
            self.notify("The followed run is not running: nothing to stop", severity="warning")
            return
        if self._stopping is not None:
            self.notify(f"Already stopping {self._stopping.name}", severity="warning")
            return
        question = (
            f"Stop the {info.stage} run {info.run_id}?\n\n"
            "Its processes get SIGINT, then SIGTERM, then SIGKILL. Checkpoints already saved are kept."
        )

        def answered(stop: bool | None) -> None:
            if stop:
                self._stopping = info.path
                self.notify(f"Stopping {info.run_id}…")
                self._stop(info.path)

        self.app.push_screen(ConfirmModal(question, yes="Stop"), answered)

    @work(thread=True, name="stop run", exit_on_error=False, group="run-stop")
    def _stop(self, run_dir: Path) -> RunInfo:
        return stop_run(run_dir)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Not stopped: the app shows failures (ERROR) as a modal.
        name, state = event.worker.name, event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if name == "check outputs" and state == WorkerState.SUCCESS:
            self._outputs_checked(event.worker.result)
        elif name == "start stage":
            stage, self._starting = self._starting, None
            result = event.worker.result if state == WorkerState.SUCCESS else None
            if isinstance(result, DataError):  # the data itself must change: not a passing notice
                self.app.push_screen(ErrorModal(f"Cannot start {stage}", str(result)))
            elif isinstance(result, KimiTuiError):
                self.notify(str(result), title=f"Cannot start {stage}", severity="error", timeout=10)
            elif isinstance(result, Path):
                self.notify(f"Started {result.name}")
                self._follow(result, pinned=False)
                self.post_message(messages.RunStarted(result))
            self.set_status(self.status_text())
        elif name == "stop run":
            self._stopping = None
            result = event.worker.result if state == WorkerState.SUCCESS else None
            if isinstance(result, RunInfo):
                self.notify(f"{result.run_id}: {result.state}")
            self._poll()
        elif name == "read runs" and state != WorkerState.SUCCESS:
            # A bug, shown once as a modal by the app; try again later, not every second.
            self.set_timer(10 * POLL_S, self._poll_after_failure)

    def _poll_after_failure(self) -> None:
        self._polling = False
        self._poll()

    # -- view toggles -------------------------------------------------------------

    def _show_chart(self, chart: str) -> None:
        self.set_class(chart == "loss", "-chart-loss")
        self.set_class(chart == "gpu", "-chart-gpu")

    def action_toggle_chart(self) -> None:
        self._chart_chosen = True
        self.remove_class("-log-only")
        self._show_chart("gpu" if self.has_class("-chart-loss") else "loss")

    def action_toggle_log_only(self) -> None:
        self.toggle_class("-log-only")

    def action_toggle_tail(self) -> None:
        log = self.query_one(LogView)
        log.follow_tail = not log.follow_tail
