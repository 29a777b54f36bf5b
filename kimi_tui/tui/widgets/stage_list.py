"""Where each stage stands, and the runs behind that, readable at a glance.

The pipeline is a fixed order of stages (the engine's), so "what has been done, what failed,
what is running" is one short list: each stage with the state of its latest
run. The recent runs below it are the history a user follows into. Both are
rebuilt from runs/ on every poll and redrawn only when something changed, so
the cursor stays where the user left it.
"""

from __future__ import annotations

import time

from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from kimi_tui.runs import RunInfo

# Symbols of East Asian width "N" (one cell even in CJK terminals), and a colour each.
STATE_MARKS = {
    "queued": ("◌", "$text-muted"),
    "running": ("►", "$warning"),
    "succeeded": ("✔", "$success"),
    "failed": ("✘", "$error"),
    "stopped": ("▪", "$warning"),
    "interrupted": ("↯", "$error"),
    "damaged": ("?", "$error"),  # status.json unreadable: see the run's note
}
NEVER_RUN = ("-", "$text-muted")


def state_mark(state: str | None) -> Content:
    symbol, colour = STATE_MARKS.get(state or "", NEVER_RUN)
    return Content.styled(symbol, colour)


def run_time_label(run: RunInfo) -> str:
    """When the run was created, short: 'HH:MM' today, 'MM-DD HH:MM' before."""
    created = run.created
    if created is None:
        return run.run_id[:13]
    now = time.localtime()
    then = time.localtime(created)
    if then[:3] == now[:3]:
        return time.strftime("%H:%M:%S", then)
    return time.strftime("%m-%d %H:%M", then)


def latest_by_stage(runs: list[RunInfo]) -> dict[str, RunInfo]:
    latest: dict[str, RunInfo] = {}
    for run in runs:  # list_runs is in start order (ids begin with the time)
        latest[run.stage] = run
    return latest


class StageList(OptionList):
    """The engine's stages (prepare … evaluate for both built-in ones) and all, each with the state
    of its latest run."""

    def __init__(self, stages: tuple[str, ...], *, id: str | None = None) -> None:
        self.choices = (*stages, "all")
        super().__init__(*[Option(self._prompt(stage, None), id=stage) for stage in self.choices], id=id)
        self.states: dict[str, str | None] = {stage: None for stage in self.choices}

    @staticmethod
    def _prompt(stage: str, state: str | None) -> Content:
        shown = state or "never run"
        return Content.assemble(state_mark(state), " ", f"{stage:<9}", Content.styled(shown, "$text-muted"))

    def update_runs(self, runs: list[RunInfo]) -> None:
        latest = latest_by_stage(runs)
        for stage in self.choices:
            state = latest[stage].state if stage in latest else None
            if self.states.get(stage, "") != state:
                self.states[stage] = state
                self.replace_option_prompt(stage, self._prompt(stage, state))

    @property
    def selected_stage(self) -> str | None:
        if self.highlighted is None:
            return None
        return self.get_option_at_index(self.highlighted).id


class RunList(OptionList):
    """The most recent runs, newest first; the followed one in bold."""

    LIMIT = 100

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple = ()
        self.runs: list[RunInfo] = []

    def update_runs(self, runs: list[RunInfo], followed: str | None) -> None:
        recent = list(reversed(runs))[: self.LIMIT]
        shown = (tuple((r.run_id, r.state, r.note) for r in recent), followed)
        if shown == self._shown:
            return
        self._shown = shown
        self.runs = recent
        keep = self.selected_run_id
        options = []
        for run in recent:
            label = Content.assemble(state_mark(run.state), " ", run_time_label(run), " ", run.stage)
            if run.problem:
                label = Content.assemble(label, Content.styled(" damaged", "$error"))
            elif run.note:
                label = Content.assemble(label, Content.styled(" !", "$warning"))
            if run.run_id == followed:
                label = label.stylize("bold $accent", 2)
            options.append(Option(label, id=run.run_id))
        self.set_options(options)
        ids = [r.run_id for r in recent]
        if keep in ids:
            self.highlighted = ids.index(keep)
        elif ids and self.highlighted is None:
            self.highlighted = 0

    @property
    def selected_run_id(self) -> str | None:
        if self.highlighted is None or self.highlighted >= self.option_count:
            return None
        return self.get_option_at_index(self.highlighted).id
