"""The whisper engine's multi-GPU path (torchrun training, transcription sharded per GPU), run on the
CPU with two gloo processes so CI exercises it; the same plans ran on two H200s (benchmarks/multi_gpu.py)."""

from __future__ import annotations

import json

import pytest

from kimi_tui.checkpoints import list_checkpoints
from kimi_tui.config import save_config, set_field
from kimi_tui.engines import get_engine
from kimi_tui.pipeline import start
from kimi_tui.project import Project, init_project
from kimi_tui.runs import wait_run


@pytest.mark.slow
def test_two_processes_train_as_planned_and_shard_the_transcription(tmp_path):
    project = init_project(tmp_path / "p", sample=True)
    config = project.config
    for key, value in {"train.num_gpus": 2, "train.epochs": 20, "train.batch_size": 4,
                       "train.gradient_accumulation_steps": 1, "engine.device": "cpu",
                       "eval.checkpoints": "last", "eval.include_base": False}.items():
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    project = Project.load(project.root)
    for stage in ("prepare", "extract", "convert", "train", "evaluate"):
        run_dir = start(project, stage)
        info = wait_run(run_dir)
        log = (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
        assert info.state == "succeeded", f"{stage}:\n{log[-3000:]}"
        if stage == "train":
            argv = json.loads((run_dir / "plan.json").read_text())["argv"]
            assert argv[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "2"]
    sched = get_engine("whisper").schedule(project)
    assert sched.total_steps == 40  # 9 clips / (4 x 2 processes) = 2 batches per epoch, x 20
    assert [c.name for c in list_checkpoints(project.training_dir) if c.complete] == [
        f"checkpoint-{s}" for s in sched.checkpoint_steps]
    evaluation = sorted(project.evaluations_dir.iterdir())[-1]
    rows = [json.loads(line) for line in (evaluation / "checkpoint-40" / "predictions.jsonl").read_text().splitlines()]
    expected = [json.loads(line)["id"] for line in project.test_jsonl.read_text().splitlines()] + [
        json.loads(line)["id"] for line in project.train_jsonl.read_text().splitlines()]
    assert [r["id"] for r in rows] == expected  # every clip once, in input order, from two shards
    assert not list((evaluation / "checkpoint-40").glob("predictions.shard-*"))
    assert (evaluation / "metrics.json").exists()
