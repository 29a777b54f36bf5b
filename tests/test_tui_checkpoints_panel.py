"""The Checkpoints panel as a user sees it: rows appear as training saves, marks, config, delete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer
from textual.worker import Worker, WorkerState

from tui_helpers import wait_for
from kimi_tui.config import load_config
from kimi_tui.project import Project, init_project
from kimi_tui.tui import messages
from kimi_tui.tui.app import KimiTuiApp, stylesheets
from kimi_tui.tui.checkpoints_panel import CheckpointsPanel
from kimi_tui.tui.confirm_modal import ConfirmModal
from kimi_tui.tui.project_watcher import ProjectWatcher

SIZE = (80, 24)


def make_checkpoint(training: Path, step: int, *, complete: bool = True, weights: int = 4096) -> Path:
    folder = training / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * weights)
    if complete:
        history = [{"step": s, "loss": round(3.0 / s, 4)} for s in range(1, step + 1)]
        (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}), encoding="utf-8")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "p", sample=True)


class Harness(App):
    CSS_PATH = stylesheets()

    def __init__(self, project: Project) -> None:
        super().__init__()
        self.project = project
        self.picked: list[list[str]] = []
        self.config_saved = 0
        self.worker_errors: list[BaseException | None] = []

    def compose(self) -> ComposeResult:
        yield CheckpointsPanel(self.project)
        yield ProjectWatcher(self.project)  # what the workbench screen has: it tells the panel of changes
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CheckpointsPanel).focus_default()

    def on_models_picked(self, message: messages.ModelsPicked) -> None:
        self.picked.append(message.names)

    def on_config_saved(self, _message: messages.ConfigSaved) -> None:
        self.config_saved += 1

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.report_worker_failure(event.worker)

    def report_worker_failure(self, worker: Worker) -> None:
        """What KimiTuiApp turns into a modal (panels forward their failed workers here)."""
        self.worker_errors.append(worker.error)


def rows(panel: CheckpointsPanel) -> dict[str, list[str]]:
    table = panel.query_one(DataTable)
    return {str(key.value): [str(c) for c in table.get_row(key)] for key in table.rows}


async def test_checkpoints_are_listed_with_step_loss_and_state_in_the_app(project: Project) -> None:
    make_checkpoint(project.training_dir, 10)
    make_checkpoint(project.training_dir, 20, weights=12_900_000)
    make_checkpoint(project.training_dir, 25, complete=False)  # a save cut short: no trainer_state.json
    app = KimiTuiApp(project.root)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: bool(app.screen.query("TabbedContent")))
        await pilot.press("4")
        await wait_for(pilot, lambda: bool(app.screen.query(CheckpointsPanel)))
        panel = app.screen.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: len(rows(panel)) == 3)
        shown = rows(panel)
        # columns: mark, name, step, loss, size, age, state
        assert shown["checkpoint-10"][1:4] == ["checkpoint-10", "10", "0.3000"]
        assert shown["checkpoint-20"][2:5] == ["20", "0.1500", "12.9 MB"]
        assert shown["checkpoint-20"][6] == "complete"
        assert shown["checkpoint-25"][3] == "—" and shown["checkpoint-25"][6] == "incomplete"
        assert str(panel.border_title) == "Checkpoints · 2 complete · 1 incomplete"


async def test_a_checkpoint_saved_while_the_panel_is_open_appears(project: Project) -> None:
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: str(panel.border_title) == "Checkpoints · none yet")
        assert rows(panel) == {}
        assert "No checkpoints yet" in str(panel.query_one("#checkpoints-hint").content)
        assert str(panel.border_title) == "Checkpoints · none yet"
        make_checkpoint(project.training_dir, 5)  # training/ did not exist when the panel opened
        await wait_for(pilot, lambda: "checkpoint-5" in rows(panel))
        make_checkpoint(project.training_dir, 10, complete=False)
        await wait_for(pilot, lambda: "checkpoint-10" in rows(panel))
        assert rows(panel)["checkpoint-10"][6] == "incomplete"
        # the save completes: trainer_state.json is written last
        state = project.training_dir / "checkpoint-5" / "trainer_state.json"
        (project.training_dir / "checkpoint-10" / "trainer_state.json").write_text(state.read_text())
        await wait_for(pilot, lambda: rows(panel)["checkpoint-10"][6] == "complete")
    assert app.worker_errors == []


async def test_marked_checkpoints_go_to_evaluation_and_to_the_eval_config(project: Project) -> None:
    for step in (10, 20, 30):
        make_checkpoint(project.training_dir, step)
    make_checkpoint(project.training_dir, 40, complete=False)
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: len(rows(panel)) == 4)
        await pilot.press("space", "down", "down", "space")  # checkpoint-10 and checkpoint-30
        assert rows(panel)["checkpoint-10"][0] == "✓" and rows(panel)["checkpoint-30"][0] == "✓"
        await pilot.press("down", "space")  # the incomplete one cannot be marked
        assert rows(panel)["checkpoint-40"][0] == " "
        assert "2 marked" in str(panel.border_title)

        await pilot.press("e")
        assert app.picked == [["checkpoint-10", "checkpoint-30"]]

        await pilot.press("c")
        await wait_for(pilot, lambda: app.config_saved == 1)
        assert load_config(project.config_path).eval.checkpoints == ["checkpoint-10", "checkpoint-30"]
        assert "# " in project.config_path.read_text(encoding="utf-8")  # comments kept
    assert app.worker_errors == []


async def test_delete_asks_first_and_deletes_only_on_yes(project: Project) -> None:
    make_checkpoint(project.training_dir, 10)
    folder = make_checkpoint(project.training_dir, 20, weights=12_900_000)
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: len(rows(panel)) == 2)
        await pilot.press("down", "d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.screen.question == "Delete checkpoint-20 (12.9 MB)? This cannot be undone"
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmModal))
        await pilot.pause(0.3)  # a delete, had "n" been taken for "y", would be under way by now
        assert folder.is_dir() and len(rows(panel)) == 2

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        await pilot.press("y")
        await wait_for(pilot, lambda: "checkpoint-20" not in rows(panel))
        assert not folder.exists()
        assert (project.training_dir / "checkpoint-10").is_dir()
        assert str(panel.border_title) == "Checkpoints · 1 complete"
    assert app.worker_errors == []


async def test_final_and_export_are_listed_and_export_can_be_picked(project: Project) -> None:
    make_checkpoint(project.training_dir, 20)
    for folder in (project.training_dir / "final", project.export_dir):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}", encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"\0" * 2048)
        (folder / "kimi_tui_model.json").write_text(json.dumps({"step": 20}), encoding="utf-8")
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: len(rows(panel)) == 3)
        shown = rows(panel)
        assert shown["final"][1:4] == ["training/final", "20", shown["checkpoint-20"][3]]
        assert shown["export"][1] == "exports/final" and shown["export"][6] == "complete"
        await pilot.press("down", "space")  # training/final is evaluated through its export: not markable
        assert shown["final"][0] == " " and rows(panel)["final"][0] == " "
        await pilot.press("down", "space", "up", "up", "space", "e")
        assert app.picked == [["checkpoint-20", "export"]]
        await pilot.press("down", "d")  # only checkpoint-N folders are deleted here
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert (project.training_dir / "final").is_dir()


def test_palette_commands_and_keys_are_named(project: Project) -> None:
    titles = [title for title, _help, _callback in CheckpointsPanel(project).palette_commands()]
    assert {"Checkpoints: refresh", "Checkpoints: evaluate marked", "Checkpoints: delete"} <= set(titles)
    assert all(binding.id and binding.tooltip for binding in CheckpointsPanel.BINDINGS)


# ---------------------------------------------------------------------------
# Unreadable checkpoints (permissions, I/O errors) are named as such, not as "incomplete"


def _deny_reading(monkeypatch, *names: str) -> None:
    """Reading the named files (a file name, or a full path) raises PermissionError, as it does for a user
    without read permission (the tests run as root, which reads everything)."""
    import builtins
    import io

    from kimi_tui import checkpoints

    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        path = Path(str(file))
        if (path.name in names or str(path) in names) and path.exists():
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "open", guarded, raising=False)  # the weights check
    monkeypatch.setattr(io, "open", guarded)  # Path.read_text (trainer_state.json)


def test_unreadable_trainer_state_or_weights_are_named_with_the_os_error(tmp_path: Path, monkeypatch) -> None:
    from kimi_tui.checkpoints import list_checkpoints

    training = tmp_path / "training"
    make_checkpoint(training, 10)
    make_checkpoint(training, 20, complete=False)
    shards = make_checkpoint(training, 30)
    (shards / "model.safetensors").unlink()
    (shards / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    _deny_reading(monkeypatch, "trainer_state.json")
    by_name = {c.name: c for c in list_checkpoints(training)}
    c10 = by_name["checkpoint-10"]
    assert (c10.state, c10.complete) == ("unreadable", False)
    assert c10.problem == "unreadable: trainer_state.json: Permission denied"
    assert isinstance(c10.error, PermissionError)
    assert by_name["checkpoint-20"].state == "incomplete"
    assert by_name["checkpoint-20"].problem == "incomplete: no trainer_state.json"
    assert by_name["checkpoint-30"].state == "unreadable"  # its trainer_state.json too

    monkeypatch.undo()
    _deny_reading(monkeypatch, "model.safetensors")
    by_name = {c.name: c for c in list_checkpoints(training)}
    assert by_name["checkpoint-10"].problem == "unreadable: model.safetensors: Permission denied"
    assert by_name["checkpoint-10"].loss == 0.3  # the trainer state was read
    # a sharded save whose shard never arrived is cut short, not unreadable
    assert by_name["checkpoint-30"].problem == "incomplete: no model-1.safetensors"
    assert [c.name for c in list_checkpoints(training, include_incomplete=False)] == []
    monkeypatch.undo()
    assert [c.name for c in list_checkpoints(training, include_incomplete=False)] == ["checkpoint-10"]
    assert {c.name: c.to_dict()["state"] for c in list_checkpoints(training)} == {
        "checkpoint-10": "complete", "checkpoint-20": "incomplete", "checkpoint-30": "incomplete"}


_UNPRIVILEGED = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unreadable_checkpoint_for_real_as_an_unprivileged_user(tmp_path: Path) -> None:
    """chmod 000 on trainer_state.json and on the weights, listed by a user who cannot read them."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import kimi_tui

    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root, which reads every file, and no setpriv to drop to an unprivileged user")
    # pytest's tmp_path is private to root (0700): the other user needs a folder it can traverse
    base = Path(tempfile.mkdtemp(prefix="kimi-tui-ckpt-", dir="/tmp" if as_root else None))
    try:
        base.chmod(0o755)
        training = base / "training"
        make_checkpoint(training, 10)
        make_checkpoint(training, 20)
        make_checkpoint(training, 30)
        for folder in (training, *training.iterdir()):
            folder.chmod(0o755)
        for path in training.rglob("*"):
            if path.is_file():
                path.chmod(0o644)
        (training / "checkpoint-10" / "trainer_state.json").chmod(0)
        (training / "checkpoint-20" / "model.safetensors").chmod(0)
        code = ("import json, sys; from pathlib import Path; from kimi_tui.checkpoints import list_checkpoints; "
                "print(json.dumps({c.name: [c.state, c.problem] for c in list_checkpoints(Path(sys.argv[1]))}))")
        env = dict(os.environ, PYTHONPATH=str(Path(kimi_tui.__file__).resolve().parents[1]))
        argv = [sys.executable, "-c", code, str(training)]
        out = subprocess.run((_UNPRIVILEGED if as_root else []) + argv, capture_output=True, text=True, env=env,
                             timeout=60)
        if out.returncode != 0 and as_root and "setpriv" in out.stderr:
            pytest.skip(f"setpriv cannot drop privileges here: {out.stderr.strip()}")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {
            "checkpoint-10": ["unreadable", "unreadable: trainer_state.json: Permission denied"],
            "checkpoint-20": ["unreadable", "unreadable: model.safetensors: Permission denied"],
            "checkpoint-30": ["complete", ""],
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_the_panel_shows_an_unreadable_checkpoint_with_its_reason(project: Project, monkeypatch) -> None:
    make_checkpoint(project.training_dir, 10)
    make_checkpoint(project.training_dir, 20)
    make_checkpoint(project.training_dir, 30, complete=False)
    _deny_reading(monkeypatch, str(project.training_dir / "checkpoint-20" / "trainer_state.json"))
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: len(rows(panel)) == 3)
        shown = rows(panel)
        assert shown["checkpoint-10"][6] == "complete"
        assert shown["checkpoint-20"][6] == "unreadable: trainer_state.json: Permission denied"
        assert shown["checkpoint-30"][6] == "incomplete"
        assert str(panel.border_title) == "Checkpoints · 1 complete · 1 incomplete · 1 unreadable"
        await pilot.press("down")  # the hint line spells out what the narrow state column cuts off
        await wait_for(pilot, lambda: "checkpoint-20: unreadable: trainer_state.json: Permission denied"
                       in str(panel.query_one("#checkpoints-hint").content))
        await pilot.press("space")  # it cannot be marked for evaluation
        assert rows(panel)["checkpoint-20"][0] == " "
    assert app.worker_errors == []


def test_evaluate_names_an_unreadable_checkpoint_chosen_in_eval(project: Project, monkeypatch) -> None:
    from kimi_tui.config import save_config, set_field
    from kimi_tui.engines import evaluated_models

    make_checkpoint(project.training_dir, 10)
    make_checkpoint(project.training_dir, 20)
    save_config(project.config_path, set_field(project.config, "eval.checkpoints", ["checkpoint-20"]))
    project = Project.load(project.root)
    _deny_reading(monkeypatch, str(project.training_dir / "checkpoint-20" / "trainer_state.json"))
    from kimi_tui.errors import KimiTuiError

    with pytest.raises(KimiTuiError) as caught:
        evaluated_models(project, None, None)
    assert str(caught.value) == ("kimi-tui.toml [eval] checkpoints: checkpoint-20 is unreadable: "
                                 "trainer_state.json: Permission denied (complete ones: checkpoint-10)")


async def test_marks_are_kept_across_a_restart_but_not_onto_a_new_training_run(project: Project) -> None:
    from kimi_tui.tui.ui_state import state_path

    make_checkpoint(project.training_dir, 10)
    make_checkpoint(project.training_dir, 20)
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: "checkpoint-20" in rows(panel))
        await pilot.press("down", "space")  # checkpoint-20
        await wait_for(pilot, lambda: state_path(project.root).exists()
                       and "checkpoint-20" in state_path(project.root).read_text(encoding="utf-8"))
    app = Harness(project)  # the TUI started again
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: rows(panel).get("checkpoint-20", [""])[0] == "✓")
        assert rows(panel)["checkpoint-10"][0] == " " and panel.marked == {"checkpoint-20"}
        assert "1 marked" in str(panel.border_title)
    project.training_dir.rename(project.root / "training.20261201-120000")  # what a re-train does
    make_checkpoint(project.training_dir, 10)
    make_checkpoint(project.training_dir, 20)
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: "checkpoint-20" in rows(panel))  # the scan that restores the marks
        assert panel._marks_restored and panel.marked == set() and rows(panel)["checkpoint-20"][0] == " "


async def test_after_a_retrain_the_panel_says_where_the_previous_checkpoints_went(project: Project) -> None:
    from test_tui_run_panel import screen_text

    kept = project.root / "training.20261201-120000"
    make_checkpoint(kept, 10)
    make_checkpoint(kept, 20)
    project.training_dir.mkdir()  # the new run has saved nothing yet
    app = Harness(project)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(CheckpointsPanel)
        await wait_for(pilot, lambda: "training.20261201-120000/" in screen_text(app))
        text = screen_text(app)
        assert "Earlier runs, moved aside: training.20261201-120000/ (2 checkpoints)" in text
        assert "No checkpoints yet" in text
        make_checkpoint(project.training_dir, 5)  # the new run saves: both stay in view
        await wait_for(pilot, lambda: "checkpoint-5" in rows(panel))
        assert "training.20261201-120000/ (2 checkpoints)" in screen_text(app)
