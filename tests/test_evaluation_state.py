"""A failed or unfinished evaluation is never shown as results (issue 11).

First the completeness logic (kimi_tui.evaluate.state) on folders built by hand, the way the
evaluate stage writes them; then real evaluations of the sample on the tiny Whisper engine: a
checkpoint deleted while an earlier model is being transcribed must come out as that model
*failed, with the reason*, in `kimi-tui report`, `kimi-tui status` and the Evaluation panel, and
never as a CER 100 % row; a stopped evaluation comes out partial.

One project is prepared and trained once for the module (three checkpoints) and copied per test.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import copy_converted
from textual.widgets import DataTable

from kimi_tui.cli import main as cli_main
from kimi_tui.evaluate.report import build_report, load_evaluation, render_csv, render_markdown
from kimi_tui.evaluate.state import FORMAT, evaluation_state, evaluation_states
from kimi_tui.pipeline import start
from kimi_tui.project import Project
from kimi_tui.runs import read_run, stop_run, wait_run
from kimi_tui.tui.evaluation_panel import EvaluationPanel
from test_tui_evaluation_panel import Harness, rows, settle

REFS = {"t1": "今天天气很好", "t2": "我们去公园", "t3": "请把窗户打开"}


def build(folder: Path, predictions: dict[str, list[str]], statuses: dict[str, dict] | None = None,
          finished: bool = True, exit_code: int = 0, present: dict[str, bool] | None = None) -> Path:
    """An evaluation folder as the evaluate stage writes it: plan, references, per-model files."""
    folder.mkdir(parents=True)
    models = list(predictions)
    meta = {"format": FORMAT, "models": models, "splits": ["test"], "clips": {"test": len(REFS)},
            "model_paths": {m: str(folder.parent / "training" / m) for m in models},
            "model_present": present or {m: True for m in models}, "n_train_utterances": 9}
    if finished:
        meta.update(finished=time.time(), transcriber_exit=exit_code)
    (folder / "evaluation.json").write_text(json.dumps(meta))
    (folder / "references.jsonl").write_text("".join(
        json.dumps({"split": "test", "id": i, "reference": r}, ensure_ascii=False) + "\n" for i, r in REFS.items()))
    for model, ids in predictions.items():
        (folder / model).mkdir()
        lines = [json.dumps({"split": "test", "id": i, "hypothesis": REFS[i]}, ensure_ascii=False) + "\n" for i in ids]
        (folder / model / "predictions.jsonl").write_text("".join(lines) + ('{"split": "te' if model == "cut" else ""))
        status = (statuses or {}).get(model)
        if status is not None:
            (folder / model / "status.json").write_text(json.dumps(status))
    return folder


ALL = list(REFS)


def test_complete_when_every_model_has_every_clip(tmp_path: Path) -> None:
    folder = build(tmp_path / "e", {"checkpoint-2": ALL, "checkpoint-4": ALL},
                   {"checkpoint-2": {"state": "complete"}, "checkpoint-4": {"state": "complete"}})
    st = evaluation_state(folder)
    assert st.state == "complete" and st.missing() == ""
    assert [(m.name, m.state, m.clips, m.of) for m in st.models] == [("checkpoint-2", "complete", 3, 3),
                                                                     ("checkpoint-4", "complete", 3, 3)]


def test_a_failed_model_is_failed_with_its_reason_and_a_vanished_folder_says_deleted(tmp_path: Path) -> None:
    folder = build(tmp_path / "e", {"checkpoint-2": ALL, "checkpoint-4": []},
                   {"checkpoint-2": {"state": "complete"},
                    "checkpoint-4": {"state": "failed", "error": "x does not exist"}}, exit_code=2)
    st = evaluation_state(folder)
    assert st.state == "failed"
    m = st.model("checkpoint-4")
    assert m.state == "failed" and m.clips == 0
    assert "checkpoint-4 was deleted during the evaluation" in m.error  # present at the start, gone now
    assert "failed: checkpoint-4 (checkpoint-4 was deleted during the evaluation" in st.missing()
    report = build_report(load_evaluation(folder, state=st), resamples=10)
    assert list(report["models"]) == ["checkpoint-2"]  # never scored: no CER 100 % row
    assert report["state"] == "failed"
    markdown = render_markdown(report)
    assert "| checkpoint-4 | failed | - |" in markdown
    assert not [row for row in markdown.splitlines() if row.startswith("| checkpoint-4 ") and "%" in row]
    assert "failed: checkpoint-4 (checkpoint-4 was deleted during the evaluation" in markdown
    table = list(csv.DictReader(io.StringIO(render_csv(report))))
    failed = [r for r in table if r["model"] == "checkpoint-4"]
    assert failed and failed[0]["state"] == "failed" and failed[0]["cer"] == "" and "deleted" in failed[0]["error"]
    with pytest.raises(Exception, match="checkpoint-4 .*cannot be compared.*failed"):
        build_report(load_evaluation(folder, state=st), pairs=[("checkpoint-2", "checkpoint-4")])


def test_a_model_cut_short_is_partial_and_scored_over_its_clips_only(tmp_path: Path) -> None:
    folder = build(tmp_path / "e", {"checkpoint-2": ALL, "cut": ["t1"], "checkpoint-6": []},
                   {"checkpoint-2": {"state": "complete"}, "cut": {"state": "running"}}, finished=False)
    st = evaluation_state(folder)  # no run, not finished: it was stopped or killed
    assert st.state == "partial"
    assert [(m.name, m.state, m.clips) for m in st.models] == [
        ("checkpoint-2", "complete", 3), ("cut", "partial", 1), ("checkpoint-6", "pending", 0)]
    assert "partial: cut has 1 of 3 clips; checkpoint-6 not transcribed (0 of 3 clips)" in st.missing()
    report = build_report(load_evaluation(folder, state=st), resamples=10)
    assert report["models"]["cut"]["test"]["n_utts"] == 1 and report["models"]["cut"]["test"]["cer"] == 0
    assert report["models"]["cut"]["test"]["n_missing_hyp"] == 0  # the clips it lacks are not deletions
    assert "checkpoint-6" not in report["models"]
    markdown = render_markdown(report)
    assert "| cut | partial (1 of 3 clips) | 0.0% |" in markdown
    assert "partial: cut has 1 of 3 clips; its numbers are over those 1 clips only" in markdown
    assert "| checkpoint-6 | not transcribed | - |" in markdown
    assert "no hypothesis; they are scored as all deletions" not in markdown


def test_an_active_run_makes_it_running_and_a_failed_run_failed(tmp_path: Path) -> None:
    class Run:  # what kimi_tui.runs.read_run returns, reduced to what the state reads
        def __init__(self, state: str, exit_code=None) -> None:
            self.run_id, self.state, self.exit_code = f"x-{state}-evaluate", state, exit_code
            self.active = state in ("queued", "running")

    folder = build(tmp_path / "e", {"checkpoint-2": ["t1"], "checkpoint-4": []},
                   {"checkpoint-2": {"state": "running"}}, finished=False)
    st = evaluation_state(folder, run=Run("running"))
    assert st.state == "running" and st.model("checkpoint-2").state == "running"
    assert st.model("checkpoint-4").state == "pending"
    st = evaluation_state(folder, run=Run("stopped", 130))
    assert st.state == "partial" and "was stopped" in st.missing()
    st = evaluation_state(folder, run=Run("failed", 1))
    assert st.state == "failed" and st.model("checkpoint-2").state == "failed"
    assert "exit code 1" in st.model("checkpoint-2").error


def test_a_finished_folder_of_the_older_format_stays_complete(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    build(folder, {"base": ["t1", "t2"]})
    meta = json.loads((folder / "evaluation.json").read_text())
    (folder / "evaluation.json").write_text(json.dumps({"models": meta["models"], "splits": ["test"]}))
    assert evaluation_state(folder).state == "partial"  # no metrics.json: it never got to the end
    (folder / "metrics.json").write_text("{}")
    st = evaluation_state(folder)
    assert st.state == "complete"
    report = build_report(load_evaluation(folder, state=st), resamples=10)
    assert report["models"]["base"]["test"]["n_missing_hyp"] == 1  # a clip it had no transcript for


# ---------------------------------------------------------------------------------------------
# real evaluations of the sample


def kimi(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter start per call): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def wait_for(condition, what: str, timeout: float = 60.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> int:
    try:
        return path.read_text(encoding="utf-8").count("\n")
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def trained(converted_sample, tmp_path_factory) -> Path:
    """The sample on the tiny engine, trained for 6 steps with a checkpoint every 2: three checkpoints,
    all three evaluated on the test split one clip at a time (a few seconds each)."""
    project = copy_converted(converted_sample, tmp_path_factory.mktemp("evalstate") / "template", **{
        "train.epochs": 6, "train.save_steps": 2, "train.logging_steps": 1,
        "eval.checkpoints": "all", "eval.include_base": False, "eval.splits": ["test"],
        "eval.batch_size": 1, "eval.max_new_tokens": 24, "eval.bootstrap_resamples": 100})
    info = wait_run(start(project, "train"))
    assert info.state == "succeeded", (info.path / "stdout.log").read_text()[-2000:]
    assert sorted(p.name for p in project.training_dir.glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-4", "checkpoint-6"]
    return project.root


def panel_shows(root: Path) -> dict:
    """What the Evaluation panel shows once loaded, at 80x24: metrics rows by model, title, A/B pair, notices."""
    import asyncio

    async def run() -> dict:
        app = Harness(root)
        async with app.run_test(size=(80, 24)) as pilot:
            p = app.query_one(EvaluationPanel)
            await settle(pilot, p)
            return {"table": {r[0][2:].split(" ")[0]: r for r in rows(p.query_one("#ev-metrics", DataTable))},
                    "title": str(p.border_title), "pair": (p.model_a, p.model_b),
                    "notices": [str(n.message) for n in app._notifications]}

    return asyncio.run(run())


def copy_project(template: Path, where: Path) -> Project:
    shutil.copytree(template, where, ignore=shutil.ignore_patterns("runs", "evaluations"))
    return Project.load(where)


def test_a_checkpoint_deleted_mid_evaluation_is_failed_with_the_reason_everywhere(trained, tmp_path) -> None:
    project = copy_project(trained, tmp_path / "p")
    run_dir = start(project, "evaluate")
    folder = wait_for(lambda: next(iter(project.evaluations_dir.glob("*/evaluation.json")), None),
                      "the evaluation's plan").parent
    wait_for(lambda: lines(folder / "checkpoint-2" / "predictions.jsonl") >= 1, "checkpoint-2's first prediction")
    shutil.rmtree(project.training_dir / "checkpoint-6")  # a later model, not loaded yet
    info = wait_run(run_dir)
    log = (run_dir / "stdout.log").read_text(errors="replace")
    assert info.state == "failed", log[-3000:]  # the run says something went wrong...
    st = evaluation_state(folder, project.runs_dir)
    assert st.state == "failed", st.to_dict()
    assert [(m.name, m.state) for m in st.models] == [
        ("checkpoint-2", "complete"), ("checkpoint-4", "complete"), ("checkpoint-6", "failed")]
    assert "checkpoint-6 was deleted during the evaluation" in st.model("checkpoint-6").error
    assert (folder / "metrics.json").exists()  # ...and the two complete models are scored all the same

    out = kimi("report", "--project", str(project.root), "--evaluation", folder.name)
    assert out.returncode == 0, out.stderr
    assert "| checkpoint-6 | failed | - |" in out.stdout
    assert "failed: checkpoint-6 (checkpoint-6 was deleted during the evaluation" in out.stdout
    assert not [row for row in out.stdout.splitlines() if row.startswith("| checkpoint-6 ") and "%" in row]
    out = kimi("report", "--project", str(project.root), "--format", "json")
    report = json.loads(out.stdout)
    assert sorted(report["models"]) == ["checkpoint-2", "checkpoint-4"]
    assert report["model_states"]["checkpoint-6"]["state"] == "failed"
    # The latest evaluation is the failed one and there is no complete one: it is reported, marked.
    assert report["state"] == "failed" and "checkpoint-6" in out.stderr
    out = kimi("report", "--project", str(project.root), "--format", "csv")
    row = next(r for r in csv.DictReader(io.StringIO(out.stdout)) if r["model"] == "checkpoint-6")
    assert row["state"] == "failed" and row["cer"] == ""

    out = kimi("status", "--project", str(project.root))
    listed = out.stdout.split("evaluations:")[1]
    assert f"{folder.name}  failed  2/3 models complete: failed: checkpoint-6 (checkpoint-6 was deleted" in listed
    status = json.loads(kimi("status", "--project", str(project.root), "--json").stdout)
    assert status["evaluations"][0]["state"] == "failed"

    shown = panel_shows(project.root)
    table = shown["table"]
    assert table["checkpoint-6"][1:7] == ["failed", "-", "-", "-", "-", "-"]  # no number at all
    assert table["checkpoint-4"][1].endswith("%")
    assert "failed: checkpoint-6" in shown["title"]
    assert "checkpoint-6" not in shown["pair"]


def test_a_stopped_evaluation_is_partial_and_the_report_skips_it_for_the_last_complete(trained, tmp_path) -> None:
    project = copy_project(trained, tmp_path / "p")
    project.evaluations_dir.mkdir()
    done = project.evaluations_dir / "20000101-000000"  # an earlier, complete evaluation
    build(done, {"checkpoint-2": ALL}, {"checkpoint-2": {"state": "complete"}})
    run_dir = start(project, "evaluate")
    folder = wait_for(lambda: next((p.parent for p in project.evaluations_dir.glob("*/evaluation.json")
                                    if p.parent != done), None), "the evaluation's plan")
    wait_for(lambda: lines(folder / "checkpoint-2" / "predictions.jsonl") >= 2, "two predictions")
    info = stop_run(run_dir)
    assert info.state == "stopped"
    st = evaluation_state(folder, project.runs_dir)
    assert st.state == "partial", st.to_dict()
    first = st.model("checkpoint-2")
    assert first.state == "partial" and 2 <= first.clips < first.of == 10
    assert st.model("checkpoint-6").state == "pending"
    assert f"the evaluate run {read_run(run_dir).run_id} was stopped" in st.missing()
    assert not (folder / "metrics.json").exists()

    out = kimi("report", "--project", str(project.root))
    assert out.returncode == 0, out.stderr
    assert f"skipped the newer evaluation {folder.name} (partial" in out.stderr
    assert out.stdout.startswith("# Evaluation\n") and done.name in out.stdout.splitlines()[2]  # the complete one
    assert f"Newer evaluation {folder.name} not shown: partial" in out.stdout
    out = kimi("report", "--project", str(project.root), "--evaluation", folder.name)
    assert f"| checkpoint-2 | partial ({first.clips} of 10 clips) |" in out.stdout
    assert "| checkpoint-6 | not transcribed | - |" in out.stdout
    assert [e.state for e in evaluation_states(project.evaluations_dir, project.runs_dir)] == ["complete", "partial"]
    listed = kimi("status", "--project", str(project.root)).stdout.split("evaluations:")[1]
    assert f"{folder.name}  partial  0/3 models complete: partial: checkpoint-2 has" in listed


def test_after_a_re_train_old_numbers_say_which_folder_they_belong_to(trained, tmp_path) -> None:
    """Issue 13: a re-train moves training/ aside and its next checkpoint-2 is another model; the
    evaluation of the old one must not pass as the new one's, in the report, status or the panel."""
    from kimi_tui.config import load_config, save_config, set_field
    from kimi_tui.pipeline import keep_previous_outputs

    project = copy_project(trained, tmp_path / "p")
    config = set_field(load_config(project.config_path), "eval.checkpoints", ["checkpoint-2"])
    save_config(project.config_path, config)
    project = Project.load(project.root)
    info = wait_run(start(project, "evaluate"))
    assert info.state == "succeeded", (info.path / "stdout.log").read_text(errors="replace")[-2000:]
    (folder,) = project.evaluations_dir.iterdir()
    assert evaluation_state(folder, project.runs_dir).notes() == []  # nothing moved yet: no note

    kept = keep_previous_outputs(project, "train")  # what a new train stage does first
    assert kept is not None and not project.training_dir.exists()
    shutil.copytree(kept / "checkpoint-2", project.training_dir / "checkpoint-2")  # the new run's checkpoint-2
    st = evaluation_state(folder, project.runs_dir)
    assert st.state == "complete"
    note = (f"checkpoint-2 here is what is now {kept.name}/checkpoint-2 (a later run moved it there; "
            "training/checkpoint-2 is now another model)")
    assert st.notes() == [note]

    out = kimi("report", "--project", str(project.root))
    assert out.returncode == 0, out.stderr
    assert f"moved: checkpoint-2 in this evaluation is what is now {kept.name}/checkpoint-2" in out.stdout
    report = json.loads(kimi("report", "--project", str(project.root), "--format", "json").stdout)
    assert report["model_states"]["checkpoint-2"]["moved"].startswith(f"what is now {kept.name}/checkpoint-2")
    status = json.loads(kimi("status", "--project", str(project.root), "--json").stdout)
    assert status["evaluations"][0]["notes"] == [note]
    assert f"    note: {note}" in kimi("status", "--project", str(project.root)).stdout.splitlines()

    shutil.rmtree(kept)  # the old training deleted as well: the numbers are of a model no longer on disk
    assert "a model no longer on disk" not in evaluation_state(folder, project.runs_dir).notes()[0]  # replaced
    shutil.rmtree(project.training_dir)
    assert evaluation_state(folder, project.runs_dir).notes() == [
        f"checkpoint-2 here is a model no longer on disk ({project.training_dir / 'checkpoint-2'} is gone)"]

    shown = panel_shows(project.root)
    assert "moved" in shown["table"]["checkpoint-2"][0] and shown["table"]["checkpoint-2"][1].endswith("%")
    assert any("checkpoint-2 here is a model no longer on disk" in n for n in shown["notices"])
