"""The whisper engine's multi-GPU path (torchrun training, DeepSpeed, transcription sharded per GPU), run on the
CPU with two gloo processes so CI exercises it; the same plans ran on two H200s (benchmarks/multi_gpu.py)."""

from __future__ import annotations

import json

import pytest

from kimi_tui.checkpoints import list_checkpoints
from conftest import copy_converted
from kimi_tui.engines import get_engine
from kimi_tui.pipeline import start
from kimi_tui.runs import wait_run


@pytest.mark.slow
def test_two_processes_train_as_planned_and_shard_the_transcription(converted_sample, tmp_path):
    project = copy_converted(converted_sample, tmp_path / "p", **{
        "train.num_gpus": 2, "train.epochs": 20, "train.batch_size": 4, "train.gradient_accumulation_steps": 1,
        "engine.device": "cpu", "eval.checkpoints": "last", "eval.include_base": False})
    for stage in ("train", "evaluate"):  # prepare, extract and convert: the session's converted sample
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


@pytest.mark.slow
def test_deepspeed_zero3_on_two_processes_trains_resumes_and_transcribes_like_its_export(converted_sample, tmp_path):
    """[deepspeed] is not only for the kimi-audio engine: the whisper engine trains with the same
    generated ZeRO config, so a user can try stage, offload and resume on a CPU before the GPUs."""
    project = copy_converted(converted_sample, tmp_path / "p", **{
        "train.num_gpus": 2, "train.epochs": 4, "train.batch_size": 2, "train.gradient_accumulation_steps": 1,
        "engine.device": "cpu", "deepspeed.enabled": True, "deepspeed.stage": 3,
        "eval.checkpoints": "last", "eval.include_base": False})

    def run(stage: str, resume: bool = False) -> str:
        run_dir = start(project, stage, resume=resume)
        info = wait_run(run_dir)
        log = (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
        assert info.state == "succeeded", f"{stage}:\n{log[-3000:]}"
        return log

    log = run("train")  # prepare, extract and convert: the session's converted sample
    assert "DeepSpeed ZeRO-3" in log
    ds = json.loads((project.training_dir / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3 and "scheduler" not in ds
    sched = get_engine("whisper").schedule(project)
    assert sched.total_steps == 12  # 9 clips / (2 x 2 processes) = 3 batches per epoch, x 4
    last = project.training_dir / f"checkpoint-{sched.total_steps}"
    assert list(last.glob("global_step*/*optim_states.pt"))  # DeepSpeed holds the optimizer state

    # The last checkpoint lost: --resume continues from the one before and ends at the same step.
    import shutil

    shutil.rmtree(last)
    previous = sched.checkpoint_steps[-2]
    log = run("train", resume=True)
    assert f"resuming from checkpoint-{previous}" in log
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["global_step"] == sched.total_steps

    run("export")
    run("evaluate")
    evaluation = sorted(project.evaluations_dir.iterdir())[-1]

    def hypotheses(model: str) -> dict:
        rows = (evaluation / model / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        return {json.loads(r)["id"]: json.loads(r)["hypothesis"] for r in rows}

    got = hypotheses(f"checkpoint-{sched.total_steps}")
    assert len(got) == 19 and got == hypotheses("export")
