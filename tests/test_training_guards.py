"""Training that goes non-finite or diverges stops, names the step and the last good checkpoint, and fails."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from safetensors.torch import save_file  # noqa: E402
from transformers import TrainerControl, TrainerState  # noqa: E402

from kimi_tui.workers import training_guards as tg  # noqa: E402


class Refused(Exception):
    """Stands for a worker's own error class."""


def guard_and_state(tmp_path: Path, resume_from: Path | None = None):
    lines: list[str] = []
    guard = tg.training_guard(tmp_path, resume_from=resume_from, say=lines.append)
    state = TrainerState()
    return guard, state, TrainerControl(), SimpleNamespace(output_dir=str(tmp_path)), lines


def log(guard, state, control, args, step: int, **values) -> TrainerControl:
    state.global_step = step
    guard.on_log(args, state, control, logs=values)
    return control


def save_checkpoint(guard, state, control, args, step: int, weights: dict) -> Path:
    folder = Path(args.output_dir) / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
    state.global_step = step
    guard.on_save(args, state, control)
    return folder


def test_a_nan_loss_stops_training_and_names_the_step_and_the_last_good_checkpoint(tmp_path):
    guard, state, control, args, lines = guard_and_state(tmp_path)
    for step in (1, 2, 3):
        log(guard, state, control, args, step, loss=2.0 / step, grad_norm=1.5, learning_rate=1e-3)
    save_checkpoint(guard, state, control, args, 3, {"w": torch.ones(4)})
    assert not control.should_training_stop
    guard.verdict.raise_if_tripped(Refused)  # nothing to say yet
    control.should_save = True  # the Trainer was about to save this step
    log(guard, state, control, args, 4, loss=float("nan"), grad_norm=float("nan"))
    assert control.should_training_stop and not control.should_save
    with pytest.raises(Refused) as caught:
        guard.verdict.raise_if_tripped(Refused)
    message = str(caught.value)
    assert message.startswith("training went non-finite at step 4 (loss nan)")
    assert f"the last good checkpoint is {tmp_path / 'checkpoint-3'}" in message and "lower [train] learning_rate" in message
    assert lines == [f"stopping: {message}"]
    log(guard, state, control, args, 5, loss=1.0)  # the first problem is the one reported
    assert guard.verdict.step == 4


@pytest.mark.parametrize("values, why", [
    (dict(loss=3.0, grad_norm=float("inf")), "grad_norm inf"),
    (dict(loss=float("-inf")), "loss -inf"),
    (dict(loss=3.0, grad_norm=2e8), "grad_norm 2e+08, above 1e+08"),
    (dict(loss=3.0, grad_norm=2e5), "grad_norm 2e+05, 1e+05x the median 2 of the last 6 logged steps"),
    (dict(loss=3.0, grad_norm=torch.tensor(float("nan"))), "grad_norm nan"),
])
def test_an_exploding_or_non_finite_value_trips_it(tmp_path, values, why):
    guard, state, control, args, _ = guard_and_state(tmp_path)
    for step, norm in enumerate((1.0, 2.0, 3.0, 2.0, 1.0, 5.0), 1):
        log(guard, state, control, args, step, loss=3.0, grad_norm=norm)
    assert not control.should_training_stop
    log(guard, state, control, args, 7, **values)
    assert control.should_training_stop
    assert guard.verdict.problem == why
    assert "no good checkpoint is left" in guard.verdict.message


def test_a_healthy_run_with_a_rising_grad_norm_is_left_alone(tmp_path):
    guard, state, control, args, _ = guard_and_state(tmp_path)
    for step in range(1, 60):
        log(guard, state, control, args, step, loss=5.0 / step, grad_norm=0.5 * 1.1 ** step, epoch=step / 10)
    log(guard, state, control, args, 60, train_runtime=12.0, train_loss=1.0)  # the summary has no loss key
    assert not control.should_training_stop and guard.verdict.problem is None


def test_weights_are_checked_in_every_format_a_checkpoint_has(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    save_file({"a": torch.randn(3, 3), "step": torch.tensor([7])}, str(good / "model.safetensors"))
    assert tg.check_weights(good) is None
    nan = tmp_path / "nan"
    nan.mkdir()
    poisoned = torch.randn(5)
    poisoned[2] = float("nan")
    save_file({"a": torch.randn(2), "b": poisoned}, str(nan / "adapter_model.safetensors"))
    assert tg.check_weights(nan) == "adapter_model.safetensors: b holds 1 non-finite value(s) (nan)"
    big = tmp_path / "big"
    big.mkdir()
    torch.save({"w": torch.full((2,), 3e17, dtype=torch.bfloat16)}, str(big / "pytorch_model.bin"))
    assert tg.check_weights(big) == "pytorch_model.bin: w holds a weight of 2.99e+17 (above 1e+06)"  # bf16 rounds
    zero = tmp_path / "zero" / "global_step4"  # ZeRO without consolidated weights: its model states
    zero.mkdir(parents=True)
    torch.save({"module": {"w": torch.tensor([1.0, float("inf")])}}, str(zero / "mp_rank_00_model_states.pt"))
    assert tg.check_weights(tmp_path / "zero").startswith("global_step4/mp_rank_00_model_states.pt:w holds 1 non-finite")
    (tmp_path / "empty").mkdir()
    assert tg.check_weights(tmp_path / "empty") is None


def test_a_checkpoint_saved_with_a_nan_weight_is_flagged_and_set_aside(tmp_path):
    guard, state, control, args, _ = guard_and_state(tmp_path, resume_from=tmp_path / "checkpoint-2")
    (tmp_path / "checkpoint-2").mkdir()  # where this run resumed from
    log(guard, state, control, args, 4, loss=1.0, grad_norm=1.0)
    bad = torch.ones(3)
    bad[1] = float("nan")
    save_checkpoint(guard, state, control, args, 4, {"lm_head.weight": bad})
    assert control.should_training_stop
    assert not (tmp_path / "checkpoint-4").exists() and (tmp_path / "checkpoint-4.nonfinite").is_dir()
    with pytest.raises(Refused, match=r"training went non-finite at step 4 \(weights saved in checkpoint-4: "
                                      r"model.safetensors: lm_head.weight holds 1 non-finite value\(s\) \(nan\); "
                                      r"the checkpoint is set aside as checkpoint-4.nonfinite\); the last good "
                                      r"checkpoint is .*checkpoint-2: "):
        guard.verdict.raise_if_tripped(Refused)


def test_a_final_model_with_exploded_weights_fails_and_is_set_aside(tmp_path):
    guard, state, control, args, _ = guard_and_state(tmp_path)
    save_checkpoint(guard, state, control, args, 5, {"w": torch.ones(2)})
    final = tmp_path / "final.partial"
    final.mkdir()
    save_file({"w": torch.tensor([1.0, 2e17])}, str(final / "model.safetensors"))
    with pytest.raises(Refused, match=r"training diverged at step 10 \(weights of the final model: .*2e\+17.*"
                                      r"final.partial.nonfinite\); the last good checkpoint is .*checkpoint-5"):
        tg.guard_final_model(guard, final, Refused, step=10)
    assert not final.exists()
    fine = tmp_path / "fine"
    fine.mkdir()
    save_file({"w": torch.ones(2)}, str(fine / "model.safetensors"))
    guard2, *_ = guard_and_state(tmp_path / "other")
    tg.guard_final_model(guard2, fine, Refused, step=3)  # no error


# ---------------------------------------------------------------------------- a real divergence, end to end


@pytest.mark.slow
def test_a_learning_rate_that_blows_up_the_whisper_run_ends_it_failed_naming_the_step(converted_sample, tmp_path):
    from conftest import copy_converted
    from kimi_tui.pipeline import start
    from kimi_tui.runs import wait_run

    project = copy_converted(converted_sample, tmp_path / "p", **dict((
        ("train.learning_rate", 1e3), ("train.epochs", 4), ("train.batch_size", 3),
        ("train.gradient_accumulation_steps", 1), ("train.warmup_ratio", 0.0), ("train.save_steps", 1),
        ("train.logging_steps", 1), ("engine.device", "cpu"))))
    run = start(project, "train")  # prepare, extract and convert: the session's converted sample
    info = wait_run(run)
    log_text = (run / "stdout.log").read_text(encoding="utf-8")
    assert info.state == "failed", log_text[-3000:]
    errors = [json.loads(line) for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
              if json.loads(line).get("type") == "error"]
    [error] = errors
    # Adam at lr 1e3: the first step throws the weights far out; the second step's gradients explode.
    assert re.search(r"training (went non-finite|diverged) at step 2 \((grad_norm|loss) ", error["message"]), error
    assert f"the last good checkpoint is {project.training_dir / 'checkpoint-1'}" in error["message"]
    assert not (project.training_dir / "final").exists()
    steps = [json.loads(line).get("step") for line in (run / "events.jsonl").read_text(encoding="utf-8").splitlines()
             if json.loads(line).get("type") == "metric"]
    assert max(steps) == 2  # stopped there, not run to the end on exploded weights
    assert math.isfinite(float(json.loads((project.training_dir / "checkpoint-1" / "trainer_state.json")
                                          .read_text(encoding="utf-8"))["log_history"][0]["loss"]))


@pytest.mark.slow
def test_two_zero3_ranks_stop_together_on_a_checkpoint_only_rank_0_reads(converted_sample, tmp_path):
    """The verdict on a saved checkpoint is read on rank 0 and broadcast: both ranks stop at that step and
    fail (none waits for the other in a collective), the poisoned checkpoint is set aside."""
    from conftest import copy_converted
    from kimi_tui.pipeline import start
    from kimi_tui.runs import wait_run

    # Warm-up makes step 1's rate 0 (checkpoint-1 is the base model); step 2's 1.7e29 throws every weight out.
    project = copy_converted(converted_sample, tmp_path / "p", **dict((
        ("train.learning_rate", 1e30), ("train.epochs", 4), ("train.batch_size", 2),
        ("train.gradient_accumulation_steps", 1), ("train.warmup_ratio", 0.5), ("train.save_steps", 1),
        ("train.logging_steps", 1), ("engine.device", "cpu"), ("train.num_gpus", 2),
        ("deepspeed.enabled", True), ("deepspeed.stage", 3))))
    run = start(project, "train")  # prepare, extract and convert: the session's converted sample
    info = wait_run(run)
    log_text = (run / "stdout.log").read_text(encoding="utf-8")
    assert info.state == "failed", log_text[-3000:]
    assert log_text.count("training diverged at step 2 (weights saved in checkpoint-2") >= 2, log_text[-3000:]  # both ranks
    assert (project.training_dir / "checkpoint-2.nonfinite").is_dir() and (project.training_dir / "checkpoint-1").is_dir()
    assert f"the last good checkpoint is {project.training_dir / 'checkpoint-1'}" in log_text
    assert not (project.training_dir / "checkpoint-3").exists()
