"""A disk that fills up while a checkpoint is being saved: a clear error, earlier checkpoints intact,
the half-written one removed, and --resume finishes the run with the planned number of steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_resumed_to_the_end, copy_converted

from kimi_tui.checkpoints import list_checkpoints
from kimi_tui.pipeline import start
from kimi_tui.project import Project
from kimi_tui.runs import wait_run
from kimi_tui.workers.disk_full import handle_disk_full

FAULTS = Path(__file__).parent / "fault_injection"


def run(project: Project, stage: str, resume: bool = False):
    run_dir = start(project, stage, resume=resume)
    info = wait_run(run_dir)
    return info, (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")


@pytest.mark.slow
def test_disk_full_during_a_checkpoint_save_keeps_the_earlier_ones_and_resume_finishes(converted_sample, tmp_path, monkeypatch):
    """The simulated ENOSPC (an OSError, on any machine); tests/test_disk_full_real.py fills a real disk."""
    project = copy_converted(converted_sample, tmp_path / "p", **{
        "train.epochs": 3, "train.save_steps": 1, "train.logging_steps": 1})
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("KIMI_TUI_FAULT", "enospc-on-optimizer-save:2")  # the save of checkpoint-2
    info, log = run(project, "train")
    assert info.state == "failed"
    assert "is full (No space left on device" in log
    assert "The half-written checkpoint-2 was removed." in log
    assert "Complete and intact: checkpoint-1." in log and "kimi-tui run train --resume" in log
    assert "Traceback" not in log
    names = [(c.name, c.complete) for c in list_checkpoints(project.training_dir)]
    assert names == [("checkpoint-1", True)]

    monkeypatch.delenv("KIMI_TUI_FAULT")
    info, log = run(project, "train", resume=True)
    assert info.state == "succeeded", log[-3000:]
    assert_resumed_to_the_end(project, log)


def test_the_message_without_any_complete_checkpoint_says_to_start_again(tmp_path):
    half = tmp_path / "checkpoint-5"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0")
    message = handle_disk_full(tmp_path, OSError(28, "No space left on device"))
    assert not half.exists() and "No checkpoint was complete yet" in message
