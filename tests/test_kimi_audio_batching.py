"""kimi-tui's batched training for the kimi-audio engine against the official micro-batch-1 loop.

The batched path builds the input embeddings itself and pads several samples into one
forward; it is only worth anything if it computes exactly what the official code does. The
proof runs the worker's ``check-batching`` command (the one a user can run on their own
model) on the checkout double: the loss and gradients of one padded batch against the sum
of the official single-sample forwards, and each sample's loss with and without padding.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import torch

from conftest import configure, copy_converted
from kimi_tui.engines import get_engine
from kimi_tui.lint import lint_project
from kimi_tui.pipeline import start
from kimi_tui.project import Project
from kimi_tui.runs import wait_run
from kimi_tui.workers import kimi_audio_batching as batching

from test_kimi_audio_engine import run_stage


@pytest.fixture(scope="module")
def converted(converted_kimi, tmp_path_factory) -> Project:
    """A kimi-audio project on the double, prepared, extracted and converted: this module's copy."""
    return copy_converted(converted_kimi, tmp_path_factory.mktemp("batching") / "project")


def check_batching(project: Project, *extra: str, bf16: bool = False) -> dict:
    """The worker's check-batching command with the train plan's own arguments; in fp32 unless ``bf16``
    (the double has no bf16-only Whisper, so fp32 shows the equality up to float rounding)."""
    plan = get_engine("kimi-audio").plan("train", project)
    argv = [a for a in plan.argv if bf16 or a != "--bf16"]
    argv[argv.index("train")] = "check-batching"
    report = project.root / "check.json"
    out = subprocess.run(argv + ["--report", str(report), *extra], cwd=plan.cwd, env={**os.environ, **plan.env},
                         capture_output=True, text=True, timeout=600)
    assert report.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(report.read_text(encoding="utf-8"))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_padded_batch_gives_the_loss_and_gradients_of_the_official_single_sample_forwards(converted, method):
    """... and padding never changes a sample's loss (each sample alone against the same in the batch)."""
    project = configure(converted, kimi_audio__method=method, train__batch_size=4)
    report = check_batching(project, "--samples", "4")
    assert report["samples"] == 4 and len(set(report["lengths"])) > 1  # really padded: lengths differ
    assert report["passed"], report
    # fp32 on the CPU: equal up to float rounding
    assert report["max_loss_difference"] < 1e-5
    assert abs(report["loss_sum_batched"] - report["loss_sum_official"]) < 1e-4
    assert report["gradient_relative_error"] < 1e-5 and report["gradient_norm"] > 0
    # Whisper is frozen with LoRA: one pass per clip however often the clip is used
    assert report["whisper_cached"] is (method == "lora")
    if method == "lora":
        assert report["whisper_passes"] == 4
    assert report["max_padding_difference"] < 1e-6
    for alone, batched in zip(report["alone_in_batch_losses"], report["batched_losses"]):
        assert alone == pytest.approx(batched, abs=1e-6)


def test_in_bf16_the_batched_path_agrees_within_bf16_rounding(converted):
    report = check_batching(configure(converted, kimi_audio__method="lora", train__batch_size=4), "--samples", "4",
                            "--tolerance", "3e-2", bf16=True)
    assert report["passed"], report
    assert report["gradient_relative_error"] < 3e-2 and report["max_loss_difference"] < 3e-2


def test_the_check_fails_loudly_when_the_batched_path_is_wrong(converted):
    """The proof can fail: with the sqrt(2) scaling of the audio positions left out, it must."""
    project = configure(converted, kimi_audio__method="lora", train__batch_size=2)
    plan = get_engine("kimi-audio").plan("train", project)  # refreshes the project's copy of the worker files
    argv = [a for a in plan.argv if a != "--bf16"]
    argv[argv.index("train")] = "check-batching"
    script = get_engine("kimi-audio").worker_lib(project) / "kimi_tui" / "workers" / "kimi_audio_batching.py"
    text = script.read_text(encoding="utf-8")
    broken = text.replace("mixed = (audio_emb + whisper_emb) * scale", "mixed = (audio_emb + whisper_emb)")
    assert broken != text
    script.write_text(broken, encoding="utf-8")
    out = subprocess.run(argv, cwd=plan.cwd, env={**os.environ, **plan.env}, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode != 0
    assert "differs from the official one" in out.stderr
    script.write_text(text, encoding="utf-8")


def test_collate_pads_right_and_lists_the_rows_that_carry_a_loss():
    def item(n, text_at, audio):
        mask = torch.zeros(1, n, dtype=torch.bool)
        mask[0, 1:1 + audio] = True
        text_mask = torch.zeros(1, n, dtype=torch.bool)
        text_mask[0, text_at] = True
        return {"input_ids": torch.arange(1, n + 1)[None], "text_input_ids": torch.full((1, n), 7),
                "is_continuous_mask": mask, "whisper_input_feature": [torch.zeros(16000).numpy()],
                "labels": (torch.arange(n)[None], torch.arange(100, 100 + n)[None], torch.zeros(1, n, dtype=torch.bool),
                           text_mask), "audio_key": f"clip{n}.wav"}

    batch = batching.collate([item(6, [4, 5], 3), item(3, [2], 1)])
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5, 6], [1, 2, 3, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch["text_input_ids"][1].tolist() == [7, 7, 7, 0, 0, 0]  # padding is 0 in both streams
    assert batch["kimi_tui_text_positions"].tolist() == [[0, 4], [0, 5], [1, 2]]
    assert batch["labels"][0].tolist() == [104, 105, 102]  # the text labels at those rows
    assert batch["labels"][1].tolist() == [2.0, 1.0]  # each sample's loss-mask count, as the official loss divides
    assert batch["kimi_tui_feature_counts"] == [3, 1]
    assert [k for k, _ in batch["kimi_tui_waveforms"]] == ["clip6.wav", "clip3.wav"]


def test_two_audios_in_one_sample_are_refused_with_the_reason():
    one = {"input_ids": torch.ones(1, 4, dtype=torch.long), "text_input_ids": torch.ones(1, 4, dtype=torch.long),
           "is_continuous_mask": torch.zeros(1, 4, dtype=torch.bool), "whisper_input_feature": [[0.0], [0.0]],
           "labels": tuple(torch.zeros(1, 4) for _ in range(4))}
    with pytest.raises(batching.BatchingError, match="#130"):
        batching.collate([one])


@pytest.mark.slow
def test_batched_lora_trains_as_planned_with_whisper_run_once_per_clip(converted):
    project = configure(converted, kimi_audio__method="lora", train__batch_size=3, train__epochs=4,
                        train__save_steps="auto")
    assert not [f for f in lint_project(project) if f.level == "error" and f.field == "train.batch_size"]
    run_dir, log = run_stage(project, "train")
    assert "3 sample(s) per forward" in log
    assert "Whisper ran 9 time(s) for 9 clip(s) over the whole run" in log  # 4 epochs, one pass per clip
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    steps = [e["step"] for e in events if e["type"] == "progress"]
    assert max(steps) == 12  # 9 clips / batch 3 = 3 steps an epoch, 4 epochs
    assert (project.training_dir / "final" / "adapter_config.json").is_file()


def test_official_batching_with_a_batch_above_one_is_an_error_naming_the_fix(converted):
    project = configure(converted, kimi_audio__batching="official", train__batch_size=2)
    errors = [f for f in lint_project(project) if f.level == "error" and f.field == "train.batch_size"]
    assert errors and 'batching = "kimi-tui"' in errors[0].fix
    configure(converted, kimi_audio__batching="kimi-tui", train__batch_size=1)


@pytest.mark.slow
def test_a_diverging_kimi_audio_run_fails_naming_the_step_and_never_succeeds(converted):
    project = configure(converted, kimi_audio__method="full", train__batch_size=3, train__learning_rate=1e6,
                        train__epochs=4, train__save_steps="auto")
    run_dir = start(project, "train")
    info = wait_run(run_dir)
    log = (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
    assert info.state == "failed", log[-3000:]
    assert "training diverged at step" in log or "went non-finite at step" in log, log[-3000:]
    assert not (project.training_dir / "final").exists()
    configure(converted, kimi_audio__method="lora", train__learning_rate=1e-2)


def test_convert_and_export_in_bf16_write_bf16_weights_without_an_fp32_copy(converted):
    """Last in the module: it converts the shared project's model again, in bf16."""
    from safetensors import safe_open

    project = configure(converted, kimi_audio__convert_bf16=True, kimi_audio__export_bf16=True,
                        kimi_audio__method="lora", train__batch_size=3, train__learning_rate=1e-2, train__epochs=2)
    run_dir, log = run_stage(project, "convert")
    assert "torch default dtype bfloat16" in log

    def dtypes(folder):
        found = set()
        for path in folder.rglob("*.safetensors"):
            with safe_open(str(path), "pt") as fh:
                found |= {str(fh.get_slice(k).get_dtype()) for k in fh.keys()}
        return found

    assert dtypes(project.base_model_dir) == {"BF16"}
    run_stage(project, "train")
    run_dir, log = run_stage(project, "export")
    assert "torch default dtype bfloat16" in log and "merging the LoRA adapters" in log and "(bfloat16)" in log
    assert dtypes(project.export_dir) == {"BF16"}
