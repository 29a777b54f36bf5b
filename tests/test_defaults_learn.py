"""A newcomer's own data on the default engine learns, and a run that will not learn says so first.

Issue 13, item 2: `kimi-tui init P --train-csv X --train-audio Y` used to write the seed's
Kimi-Audio table (lr 3e-6, 10 epochs, batch 1 x 4) on the tiny model built from scratch: the loss
went 13.47 -> 13.42, the CER stayed 879 %, the pipeline said "all stages succeeded", and only the
Config panel's lint said the learning rate "looks far too low". The user's data here is the
sample's nine WAVs under other names, listed in a GBK CSV with a Chinese header.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.config import save_config, set_field
from kimi_tui.lint import lint_project, will_not_learn
from kimi_tui.project import TINY_SCHEDULE, Project, bundled_path, init_project

SAMPLE = bundled_path("sample_data")


def own_data(where: Path, n: int = 9) -> tuple[Path, Path]:
    """A GBK CSV (音频ID,转录文本; CRLF) and a folder of n of the sample's clips, renamed."""
    rows = [line.split(",", 1) for line in
            (SAMPLE / "split_lingyin_audio_test.csv").read_text(encoding="utf-8").splitlines()[1:] if line]
    audio = where / "我的录音"
    audio.mkdir(parents=True)
    lines = ["音频ID,转录文本"]
    for i, (clip, text) in enumerate(rows[:n], 1):
        shutil.copy2(SAMPLE / "audio" / f"{clip}.wav", audio / f"rec{i:03d}.wav")
        lines.append(f"rec{i:03d},{text}")
    csv = where / "转录.csv"
    csv.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    return csv, audio


def test_init_from_own_data_writes_the_tiny_schedule_and_passes_its_own_lint(tmp_path):
    csv, audio = own_data(tmp_path)
    project = init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio))
    t = project.config.train
    assert (t.learning_rate, t.epochs, t.batch_size, t.gradient_accumulation_steps) == (3e-3, 200, 9, 1)
    assert "learning_rate = 0.003" in project.config_path.read_text(encoding="utf-8")  # written, not implied
    findings = lint_project(project)
    assert [str(f) for f in findings if f.level != "note"] == []
    assert will_not_learn(project, "all") == []


def test_fewer_clips_than_the_measured_batch_make_the_batch_that_many(tmp_path):
    csv, audio = own_data(tmp_path, n=4)
    project = init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio))
    assert project.config.train.batch_size == 4
    assert project.config.train.learning_rate == TINY_SCHEDULE["learning_rate"]
    assert [str(f) for f in lint_project(project) if f.level != "note"] == []


def _seed_table(project: Project) -> Project:
    """The old defaults: the seed's small-data table for Kimi-Audio, on the tiny model."""
    config = project.config
    for key, value in (("train.learning_rate", 3e-6), ("train.epochs", 10), ("train.batch_size", 1),
                       ("train.gradient_accumulation_steps", 4)):
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    return Project.load(project.root)


def test_run_all_refuses_a_config_that_will_not_learn_without_a_terminal_or_yes(tmp_path):
    csv, audio = own_data(tmp_path, n=3)
    project = _seed_table(init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio)))
    for stage in ("all", "train"):
        done = subprocess.run([sys.executable, "-m", "kimi_tui", "run", stage, "--project", str(project.root)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr  # a user error: the message says what to fix
        assert "learning_rate = 3e-06 looks far too low" in done.stderr
        assert "Fix: Set learning_rate = 3e-3" in done.stderr and "--yes" in done.stderr
        assert not project.runs_dir.exists() or not [p for p in project.runs_dir.iterdir() if p.is_dir()]
    assert will_not_learn(project, "prepare") == []  # a stage that does not train is never asked about


def test_will_not_learn_names_no_checkpoint_and_no_training_sample(tmp_path):
    csv, audio = own_data(tmp_path, n=3)
    project = init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio))
    config = set_field(set_field(project.config, "train.save_steps", 1000), "train.epochs", 2)
    save_config(project.config_path, config)
    fields = [f.field for f in will_not_learn(Project.load(project.root))]
    assert fields == ["train.save_steps"]


async def test_the_tuis_start_all_asks_first_with_the_findings(tmp_path):
    from tui_helpers import wait_for_panel

    from kimi_tui.tui.app import KimiTuiApp
    from kimi_tui.tui.confirm_modal import ConfirmModal
    from kimi_tui.tui.run_panel import RunPanel

    csv, audio = own_data(tmp_path, n=3)
    project = _seed_table(init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio)))
    app = KimiTuiApp(project.root)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.screen.action_show("run")
        panel = await wait_for_panel(pilot, RunPanel)
        panel.focus()
        await pilot.press("a")
        deadline = time.monotonic() + 30
        while not isinstance(app.screen, ConfirmModal) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert isinstance(app.screen, ConfirmModal)
        assert "looks far too low" in app.screen.question and "Start it anyway?" in app.screen.question
        await pilot.press("n")
        while isinstance(app.screen, ConfirmModal) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert not isinstance(app.screen, ConfirmModal)
        assert panel._starting is None
    assert not project.runs_dir.exists() or not [p for p in project.runs_dir.iterdir() if p.is_dir()]


def test_a_flat_loss_is_a_warning_and_a_falling_one_is_not():
    from kimi_tui.workers.whisper_worker import flat_loss_note

    note = flat_loss_note([13.47, 13.45, 13.42])
    assert note is not None and "fell by only 0.4%" in note and "train.learning_rate" in note
    assert "did not fall" in flat_loss_note([2.0, 2.1])
    assert flat_loss_note([13.47, 6.0, 0.05]) is None
    assert flat_loss_note([13.47]) is None  # one log says nothing about a trend


def _evaluation(project: Project, hyps: dict[str, dict[str, str]]) -> None:
    from kimi_tui.evaluate.state import FORMAT

    refs = {"u1": "今天天气很好", "u2": "请把窗户打开"}
    folder = project.evaluations_dir / "20261201-120000"
    folder.mkdir(parents=True)
    (folder / "evaluation.json").write_text(json.dumps({
        "format": FORMAT, "models": list(hyps), "splits": ["train"], "clips": {"train": len(refs)},
        "model_paths": {m: str(project.training_dir / m) for m in hyps}, "model_present": {m: True for m in hyps},
        "n_train_utterances": 2, "finished": time.time(), "transcriber_exit": 0}))
    (folder / "references.jsonl").write_text("".join(
        json.dumps({"split": "train", "id": i, "reference": r}, ensure_ascii=False) + "\n" for i, r in refs.items()),
        encoding="utf-8")
    for model, table in hyps.items():
        (folder / model).mkdir()
        (folder / model / "predictions.jsonl").write_text("".join(
            json.dumps({"split": "train", "id": i, "hypothesis": h}, ensure_ascii=False) + "\n"
            for i, h in table.items()), encoding="utf-8")
        (folder / model / "status.json").write_text(json.dumps({"state": "complete"}))


def _report_text(project: Project) -> str:
    from kimi_tui.cli import main as cli_main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["report", "--project", str(project.root)]) == 0
    return out.getvalue()


def test_the_report_says_when_no_checkpoint_beats_base(tmp_path):
    project = init_project(tmp_path / "p", sample=True)
    _evaluation(project, {"base": {"u1": "今天", "u2": "请把"}, "checkpoint-10": {"u1": "今天", "u2": "请"},
                          "export": {"u1": "今天", "u2": "请把"}})
    text = _report_text(project)
    assert "train: no checkpoint is better than base (CER 66.7%; the best trained model, export, 66.7%)" in text


def test_the_report_says_nothing_of_the_kind_when_one_model_learned(tmp_path):
    project = init_project(tmp_path / "p", sample=True)
    _evaluation(project, {"base": {"u1": "今天", "u2": "请把"}, "checkpoint-10": {"u1": "今天天气很好", "u2": "请"}})
    assert "no checkpoint is better than base" not in _report_text(project)


@pytest.mark.slow
def test_own_data_run_all_leaves_the_training_clip_cer_well_below_base(tmp_path):
    """The whole pipeline on the user's own nine clips, with the defaults init wrote; only [eval] is
    narrowed to what shows it (base and the last checkpoint, on the training clips)."""
    from kimi_tui.evaluate.report import build_report, load_evaluation
    from kimi_tui.evaluate.state import evaluation_states
    from kimi_tui.pipeline import start
    from kimi_tui.runs import wait_run

    csv, audio = own_data(tmp_path)
    project = init_project(tmp_path / "mine", train_csv=str(csv), train_audio=str(audio))
    assert will_not_learn(project) == [] and not [f for f in lint_project(project) if f.level == "error"]
    config = project.config
    for key, value in (("eval.splits", ["train"]), ("eval.checkpoints", "last"), ("eval.include_export", False)):
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    project = Project.load(project.root)
    info = wait_run(start(project, "all"), poll_s=0.2)
    log = (info.path / "stdout.log").read_text(errors="replace")
    assert info.state == "succeeded", log[-3000:]
    assert "learned little or nothing" not in log
    states = [e for e in evaluation_states(project.evaluations_dir, project.runs_dir) if e.complete]
    report = build_report(load_evaluation(states[-1].path, state=states[-1]), resamples=100)
    cer = {model: per["train"]["cer"] for model, per in report["models"].items()}
    trained = [m for m in cer if m != "base"]
    assert cer["base"] > 0.9 and trained, cer
    assert cer[trained[-1]] < 0.5 * cer["base"] and cer[trained[-1]] < 0.3, cer
    assert not any("no checkpoint is better than base" in n for n in report["notes"])
