"""The sample project through every stage, as a new user runs it from a terminal.

One real run (tiny Whisper on the CPU, the sample's own schedule) serves all the
assertions: the artifacts each stage must leave, the memorisation the metrics
must show, the run list of `status --json`, and that hanging up the terminal
following `run all` does not stop the pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kimi_tui.runs import find_run, read_run, wait_run

pytestmark = pytest.mark.slow


def kimi(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("demo") / "demo 'project' 语音"  # a space, a quote, Chinese: on purpose
    assert kimi("init", str(project), "--sample").returncode == 0
    # The user's terminal: `run all --wait` in its own session, as a login shell would be.
    follower = subprocess.Popen(
        [sys.executable, "-m", "kimi_tui", "run", "all", "--project", str(project), "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = list((project / "runs").glob("*-extract"))
        if runs and read_run(runs[0]).state == "running":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the extract stage never started")
    os.killpg(follower.pid, signal.SIGHUP)  # the SSH connection drops
    follower.wait(timeout=10)
    assert follower.returncode == -signal.SIGHUP
    info = wait_run(find_run(project / "runs", "all"))
    assert info.state == "succeeded", (info.path / "stdout.log").read_text()[-3000:]
    return project


def test_every_stage_leaves_its_artifacts(sample_run: Path) -> None:
    p = sample_run
    assert len((p / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 9
    assert len((p / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()) == 10
    sample = json.loads((p / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    audio = [m for m in sample["conversation"] if m["message_type"] == "audio"][0]["content"]
    assert Path(audio).is_absolute() and Path(audio).exists()
    checkpoints = sorted((p / "training").glob("checkpoint-*"))
    assert len(checkpoints) >= 2
    assert all((c / "trainer_state.json").exists() for c in checkpoints)
    assert (p / "training" / "final" / "config.json").exists()
    assert (p / "exports" / "final" / "config.json").exists()
    (evaluation,) = list((p / "evaluations").glob("*/metrics.json"))
    models = json.loads(evaluation.read_text(encoding="utf-8"))["models"]
    assert set(models) == {"base", "export", *(c.name for c in checkpoints)}
    for name in models:
        lines = (evaluation.parent / name / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        splits = [json.loads(line)["split"] for line in lines]
        assert splits.count("test") == 10 and splits.count("train") == 9


def test_metrics_show_memorisation_and_say_nine_clips_are_too_few(sample_run: Path) -> None:
    (evaluation,) = list((sample_run / "evaluations").glob("*/metrics.json"))
    metrics = json.loads(evaluation.read_text(encoding="utf-8"))
    base, export = metrics["models"]["base"], metrics["models"]["export"]
    assert base["train"]["cer"] >= 0.8
    assert export["train"]["cer"] < 0.2
    assert export["train"]["n_utts"] == 9 and export["test"]["n_utts"] == 10
    assert any("9 training utterances" in note for note in metrics["notes"])
    report = kimi("report", "--project", str(sample_run))
    assert report.returncode == 0 and "too few" in report.stdout
    for model in ("base", "checkpoint-67", "checkpoint-134", "checkpoint-200", "export"):
        assert f"| {model} |" in report.stdout
    assert "| checkpoint-134 -> checkpoint-200 |" in report.stdout and "| base -> export |" in report.stdout


def test_status_json_lists_every_run_with_state_and_exit_code(sample_run: Path) -> None:
    out = kimi("status", "--project", str(sample_run), "--json")
    assert out.returncode == 0
    runs = json.loads(out.stdout)["runs"]
    stages = [r["stage"] for r in runs]
    assert sorted(stages) == sorted(["all", "prepare", "extract", "convert", "train", "export", "evaluate"])
    assert all(r["state"] == "succeeded" and r["exit_code"] == 0 for r in runs)
