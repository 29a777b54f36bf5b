"""A third engine added from outside the package (tests/toy_engine.py, registered by KIMI_TUI_ENGINES)
runs through the pipeline, the CLI and the Config panel with no change to kimi_tui/ outside engines/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_tui.checkpoints import list_checkpoints
from kimi_tui.config import parse_config
from kimi_tui.engines import ENGINES_ENV, engine_names, get_engine
from kimi_tui.errors import ConfigError, KimiTuiError
from kimi_tui.evaluate.state import evaluation_state
from kimi_tui.pipeline import plan_stage, start
from kimi_tui.project import Project
from kimi_tui.runs import list_runs, wait_run

TESTS = Path(__file__).resolve().parent
TOY = "toy=toy_engine:ToyEngine"
CLIPS = {"train": [("a1", "今天天气很好"), ("a2", "我们去公园"), ("a3", "请把窗户打开")],
         "test": [("a1", "今天天气很好"), ("b1", "没听过这句")]}


@pytest.fixture
def toy_env(monkeypatch):
    """The toy engine registered for this process and every process it starts."""
    monkeypatch.setenv(ENGINES_ENV, TOY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


@pytest.fixture
def project(tmp_path: Path, toy_env) -> Project:
    root = tmp_path / "toy-project"
    (root / "toy").mkdir(parents=True)
    for split, rows in CLIPS.items():
        (root / "toy" / f"{split}.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n" for i, t in rows), encoding="utf-8")
    (root / "kimi-tui.toml").write_text(
        '[engine]\nname = "toy"\n[data]\ntrain_jsonl = "toy/train.jsonl"\ntest_jsonl = "toy/test.jsonl"\n'
        "[train]\nepochs = 2\nbatch_size = 1\ngradient_accumulation_steps = 1\nlearning_rate = 1e-5\n"
        '[eval]\nsplits = ["test", "train"]\n', encoding="utf-8")
    return Project.load(root)


def kimi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", *args], capture_output=True, text=True, timeout=120)


def test_the_registry_names_engines_without_importing_them_and_suggests_a_near_name(toy_env):
    code = ("import sys, kimi_tui.engines as e; names = e.engine_names(); "
            "print(names, [m for m in ('torch', 'kimi_tui.engines.whisper', 'toy_engine') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['whisper', 'kimi-audio', 'toy'] []"
    assert type(get_engine("toy")).__name__ == "ToyEngine" and "toy" in engine_names()
    with pytest.raises(KimiTuiError, match="unknown engine 'tyo'; did you mean 'toy'\\?"):
        get_engine("tyo")


def test_the_config_accepts_a_registered_engine_and_locates_an_unknown_one(toy_env, monkeypatch):
    assert parse_config('[engine]\nname = "toy"\n').engine.name == "toy"
    monkeypatch.delenv(ENGINES_ENV)
    with pytest.raises(ConfigError) as err:
        parse_config('[project]\nname = "p"\n[engine]\nname = "toy"\n')
    assert str(err.value) == ("kimi-tui.toml:4: [engine] name = \"toy\": unknown engine 'toy'; "
                              "registered engines are 'whisper', 'kimi-audio'")
    monkeypatch.setenv(ENGINES_ENV, "toy")
    with pytest.raises(ConfigError, match=f"{ENGINES_ENV}: 'toy' is not name=module:Class"):
        parse_config('[engine]\nname = "whisper"\n')


def test_a_stage_and_run_all_go_through_the_pipeline_and_the_readers(project: Project):
    prepare = wait_run(start(project, "prepare"), poll_s=0.05)
    assert prepare.state == "succeeded", (prepare.path / "stdout.log").read_text(errors="replace")
    assert project.train_jsonl.read_text(encoding="utf-8").count("\n") == 3
    with pytest.raises(KimiTuiError, match="--resume applies to no stage on the toy engine, not to train"):
        plan_stage(project, "train", resume=True)

    everything = wait_run(start(project, "all"), poll_s=0.05)
    log = (everything.path / "stdout.log").read_text(errors="replace")
    assert everything.state == "succeeded", log
    stages = sorted(r.stage for r in list_runs(project.runs_dir))
    assert stages == sorted(["prepare", "all", "prepare", "extract", "convert", "train", "export", "evaluate"])
    checkpoints = list_checkpoints(project.training_dir)
    assert [c.name for c in checkpoints] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert all(c.complete for c in checkpoints)  # kimi_tui.checkpoints' one definition
    (folder,) = sorted(project.evaluations_dir.iterdir())
    state = evaluation_state(folder)
    assert state.complete and [m.name for m in state.models] == [
        "base", "checkpoint-2", "checkpoint-4", "checkpoint-6", "export"]
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    models = metrics["models"]  # scored by kimi-tui: the memory recalls the training clips, nothing else
    assert models["base"]["train"]["cer"] == 1.0 and models["checkpoint-6"]["train"]["cer"] == 0.0
    assert models["export"]["test"]["n_empty_hyp"] == 1


def test_status_and_doctor_take_the_toy_engine(project: Project):
    assert wait_run(start(project, "prepare"), poll_s=0.05).state == "succeeded"
    status = kimi("status", "--project", str(project.root))
    assert status.returncode == 0 and "prepare" in status.stdout, status.stdout + status.stderr
    doctor = kimi("doctor", "--project", str(project.root))
    assert doctor.stdout.startswith(f"doctor: checking the toy engine of {project.root}"), doctor.stdout + doctor.stderr
    assert doctor.returncode == 0 and "no errors" in doctor.stdout, doctor.stdout
    picked = kimi("doctor", "--engine", "toy")
    assert picked.returncode == 0 and "checks a project's settings only" in picked.stdout, picked.stdout + picked.stderr


async def test_the_config_panel_offers_the_toy_engine_and_plans_with_it(project: Project):
    from textual.app import App, ComposeResult
    from textual.widgets import Select, Static

    from tui_helpers import wait_for
    from kimi_tui.tui.app import stylesheets
    from kimi_tui.tui.config_panel import ConfigPanel

    wait_run(start(project, "prepare"), poll_s=0.05)

    class Harness(App):
        CSS_PATH = stylesheets()

        def compose(self) -> ComposeResult:
            yield ConfigPanel(project)

    app = Harness()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(app.query(ConfigPanel)))
        panel = app.query_one(ConfigPanel)
        field = panel.query_one("#cfg-engine-name", Select)
        assert field.value == "toy"
        field.value = "whisper"
        await wait_for(pilot, lambda: panel.working.engine.name == "whisper")
        field.value = "toy"  # a Select refuses a value that is not among its options
        await wait_for(pilot, lambda: panel.working.engine.name == "toy" and panel.stage)
        panel.stage = "extract"
        panel.schedule_preview(now=True)
        command = panel.query_one("#config-command-text", Static)
        await wait_for(pilot, lambda: "toy_engine_worker.py" in str(command.content) and "extract" in str(command.content))


async def test_an_engines_own_stages_are_what_run_all_the_cli_and_the_run_panel_offer(project: Project, monkeypatch):
    from tui_helpers import wait_for_panel

    from kimi_tui.tui.app import KimiTuiApp
    from kimi_tui.tui.run_panel import RunPanel
    from kimi_tui.tui.widgets.stage_list import StageList

    monkeypatch.setenv(ENGINES_ENV, f"{TOY},toy-no-export=toy_engine:NoExportToyEngine")
    toml = project.config_path.read_text(encoding="utf-8").replace('name = "toy"', 'name = "toy-no-export"')
    project.config_path.write_text(toml, encoding="utf-8")
    project = Project.load(project.root)
    stages = ("prepare", "extract", "convert", "train", "evaluate")

    everything = wait_run(start(project, "all"), poll_s=0.05)
    assert everything.state == "succeeded", (everything.path / "stdout.log").read_text(errors="replace")
    assert sorted(r.stage for r in list_runs(project.runs_dir)) == sorted(["all", *stages])

    refused = kimi("run", "export", "--project", str(project.root))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "The toy-no-export engine's stages are prepare, extract, convert, train, evaluate" in refused.stderr
    piped = subprocess.run([sys.executable, "-m", "kimi_tui.pipeline", "--project", str(project.root),
                            "--stages", "train,export"], capture_output=True, text=True, timeout=60)
    assert piped.returncode == 2 and "unknown stage(s) export" in piped.stderr, piped.stderr
    assert "prepare, extract, convert, train, evaluate" in piped.stderr

    app = KimiTuiApp(project.root)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await wait_for_panel(pilot, RunPanel)
        assert panel.query_one(StageList).choices == (*stages, "all")
        offered = [name for name, _, _ in panel.palette_commands() if name.startswith("Run: start ")]
        assert offered == ["Run: start all", *(f"Run: start {s}" for s in stages)]
