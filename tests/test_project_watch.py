"""The workbench's one project watcher: which area a change is about (headless), and that the
panels hear of it, from notifications or, where none arrive, from the fingerprints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from tui_helpers import wait_for
from kimi_tui.project import Project, init_project
from kimi_tui.tui import messages
from kimi_tui.tui.panel import Panel
from kimi_tui.tui.project_watcher import ProjectWatcher
from kimi_tui.views import watch


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "p", sample=True)


def test_changed_paths_name_their_area(project: Project) -> None:
    root = project.root
    paths = [root / "runs" / "20260101-120000-000001-train" / "events.jsonl"]
    assert watch.areas_of(project, {str(p) for p in paths}) == {watch.RUNS}
    assert watch.areas_of(project, {str(root / "training" / "checkpoint-10" / "model.safetensors"),
                                    str(root / "exports" / "final"),
                                    str(root / "training.20260101-120000")}) == {watch.CHECKPOINTS}
    assert watch.areas_of(project, {str(root / "evaluations" / "e1" / "base" / "metrics.json")}) == {
        watch.EVALUATIONS}
    assert watch.areas_of(project, {str(root / ".kimi-tui" / "ui-state.json"), str(root / "kimi-tui.toml"),
                                    "/elsewhere/runs/x", str(root)}) == set()


def test_fingerprints_change_with_what_the_panels_show(project: Project) -> None:
    before = watch.signatures(project)
    assert watch.signatures(project) == before
    run = project.runs_dir / "20260101-120000-000001-train"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "running"}), encoding="utf-8")
    after_run = watch.signatures(project)
    assert after_run[watch.RUNS] != before[watch.RUNS]
    assert after_run[watch.CHECKPOINTS] == before[watch.CHECKPOINTS]
    (run / "events.jsonl").write_text('{"type": "note"}\n', encoding="utf-8")
    assert watch.signatures(project)[watch.RUNS] != after_run[watch.RUNS]

    (project.training_dir / "checkpoint-10").mkdir(parents=True)
    assert watch.signatures(project)[watch.CHECKPOINTS] != before[watch.CHECKPOINTS]
    metrics = project.evaluations_dir / "e1" / "base" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    assert watch.signatures(project)[watch.EVALUATIONS] != before[watch.EVALUATIONS]
    evaluations = watch.signatures(project)[watch.EVALUATIONS]
    metrics.write_text("{}", encoding="utf-8")
    assert watch.signatures(project)[watch.EVALUATIONS] != evaluations


class Listener(Panel):
    """A panel that counts the change messages it is sent."""

    PANEL_ID = "listener"

    def __init__(self, project: Project) -> None:
        super().__init__(project)
        self.heard: list[str] = []

    def on_runs_changed(self, message: messages.RunsChanged) -> None:
        self.heard.append("runs")

    def on_checkpoints_changed(self, message: messages.CheckpointsChanged) -> None:
        self.heard.append("checkpoints")

    def on_evaluations_changed(self, message: messages.EvaluationsChanged) -> None:
        self.heard.append("evaluations")


class Harness(App):
    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project

    def compose(self) -> ComposeResult:
        yield Listener(self.project)
        yield ProjectWatcher(self.project)


async def started(pilot, app: Harness) -> tuple[Listener, ProjectWatcher]:
    watcher = app.query_one(ProjectWatcher)
    await wait_for(pilot, lambda: watcher.watching != "starting")
    return app.query_one(Listener), watcher


async def test_a_checkpoint_save_is_one_message_not_one_per_file(project: Project) -> None:
    app = Harness(project)
    async with app.run_test() as pilot:
        listener, _ = await started(pilot, app)
        folder = project.training_dir / "checkpoint-10"
        folder.mkdir(parents=True)
        for i in range(40):
            (folder / f"shard-{i}.bin").write_bytes(b"\0" * 100)
        await wait_for(pilot, lambda: "checkpoints" in listener.heard)
        assert listener.heard.count("checkpoints") < 40
        assert "runs" not in listener.heard and "evaluations" not in listener.heard

        metrics = project.evaluations_dir / "e1" / "base" / "metrics.json"
        metrics.parent.mkdir(parents=True)
        metrics.write_text("{}", encoding="utf-8")
        await wait_for(pilot, lambda: "evaluations" in listener.heard)
        run = project.runs_dir / "20260101-120000-000001-prepare"
        run.mkdir(parents=True)
        (run / "status.json").write_text("{}", encoding="utf-8")
        await wait_for(pilot, lambda: "runs" in listener.heard)


async def test_without_notifications_the_fingerprints_still_tell_the_panels(project: Project, monkeypatch) -> None:
    import watchfiles

    def no_notifications(*args, **kwargs):
        raise OSError("inotify watch limit reached")

    monkeypatch.setattr(watchfiles, "awatch", no_notifications)
    app = Harness(project)
    async with app.run_test() as pilot:
        listener, watcher = await started(pilot, app)
        await wait_for(pilot, lambda: watcher.watching.startswith("polling"))
        (project.training_dir / "checkpoint-10").mkdir(parents=True)
        await wait_for(pilot, lambda: "checkpoints" in listener.heard)
        run = project.runs_dir / "20260101-120000-000001-prepare"
        run.mkdir(parents=True)
        (run / "status.json").write_text("{}", encoding="utf-8")
        await wait_for(pilot, lambda: "runs" in listener.heard)
