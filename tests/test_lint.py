"""Preflight findings: the seed report's failures are caught before a run starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kimi_tui.config import ProjectConfig, set_field
from kimi_tui.gpu import GpuReading, GpuSnapshot
from kimi_tui.engines import get_engine
from kimi_tui.lint import Lint, count_training_samples, lint_project
from kimi_tui.presets import PRESETS, apply_preset, preset_changes
from kimi_tui.project import TINY_SCHEDULE, Project, init_project
from kimi_tui.errors import ConfigError


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Project:
    return init_project(tmp_path_factory.mktemp("lint") / "p", sample=True)


def with_settings(project: Project, **settings: str) -> Project:
    config = project.config
    for dotted, value in settings.items():
        config = set_field(config, dotted.replace("__", "."), value)
    return Project(root=project.root, config=config)


def by_field(findings: list[Lint], field: str) -> list[Lint]:
    return [f for f in findings if f.field == field]


def seed_case(project: Project, **extra: str) -> Project:
    """The seed report's run: 9 samples, batch 1, accumulation 4, 10 epochs, save_steps 1000."""
    settings = dict(train__batch_size="1", train__gradient_accumulation_steps="4", train__epochs="10",
                    train__save_steps="1000", train__learning_rate="3e-3")
    return with_settings(project, **{**settings, **extra})


def test_the_sample_project_is_clean(sample: Project) -> None:
    assert [f for f in lint_project(sample) if f.level != "note"] == []


def test_samples_are_counted_from_the_csv_before_prepare_and_from_data_jsonl_after(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p", sample=True)
    assert count_training_samples(project)[0] == 9  # CSV rows, header not counted
    project.data_dir.mkdir()
    project.train_jsonl.write_text("{}\n" * 12, encoding="utf-8")
    n, where = count_training_samples(project)
    assert (n, where) == (12, "data/train.jsonl")


def test_seed_save_steps_1000_on_a_30_step_run_is_an_error_naming_30_steps(sample: Project) -> None:
    findings = lint_project(seed_case(sample))
    [error] = by_field(findings, "train.save_steps")
    assert error.level == "error"
    assert "30 optimizer steps" in error.message
    assert "1000" in error.message
    assert '"auto"' in error.fix and "at most 15" in error.fix
    assert findings[0] is error  # errors come first


def test_one_checkpoint_before_the_end_is_a_warning(sample: Project) -> None:
    [finding] = by_field(lint_project(seed_case(sample, train__save_steps="20")), "train.save_steps")
    assert finding.level == "warning"
    assert "checkpoint-20" in finding.message
    assert "10" in finding.fix  # ceil(30 / 3)


def test_auto_and_small_save_steps_are_fine(sample: Project) -> None:
    for value in ("auto", "5"):
        assert by_field(lint_project(seed_case(sample, train__save_steps=value)), "train.save_steps") == []


def test_eight_gpus_on_nine_samples_warns_to_train_on_one_gpu(sample: Project) -> None:
    [finding] = by_field(lint_project(seed_case(sample, train__num_gpus="8", train__save_steps="auto")),
                         "train.num_gpus")
    assert finding.level == "warning"
    assert "NCCL" in finding.message
    assert "one GPU" in finding.fix.lower() or "one gpu" in finding.fix.lower()


def test_few_samples_per_gpu_warns_even_when_every_gpu_gets_data(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p", sample=True)
    project.data_dir.mkdir()
    project.train_jsonl.write_text("{}\n" * 400, encoding="utf-8")
    findings = lint_project(with_settings(project, train__num_gpus="8", train__batch_size="1"))
    [finding] = by_field(findings, "train.num_gpus")
    assert "50 samples per GPU" in finding.message
    assert by_field(lint_project(with_settings(project, train__num_gpus="2", train__batch_size="1")),
                    "train.num_gpus") == []


def test_machine_with_fewer_gpus_is_an_error_and_no_gpu_warns_about_cuda(sample: Project) -> None:
    two = GpuSnapshot(True, "", [GpuReading(i, "H100", 0, 80 << 30, 0) for i in range(2)])
    findings = by_field(lint_project(with_settings(sample, train__num_gpus="4"), gpus=two), "train.num_gpus")
    [finding] = [f for f in findings if f.level == "error"]
    assert "this machine has 2" in finding.message and "num_gpus = 2" in finding.fix
    none = GpuSnapshot(False, "no NVIDIA GPU")
    [finding] = by_field(lint_project(with_settings(sample, engine__device="cuda"), gpus=none), "engine.device")
    assert finding.level == "warning"


def test_eval_ratio_holding_out_less_than_one_sample_warns(sample: Project) -> None:
    [finding] = [f for f in by_field(lint_project(with_settings(sample, train__eval_ratio="0.05")), "train.eval_ratio")
                 if f.level == "warning"]
    assert "0.45" in finding.message
    assert "eval_ratio = 0" in finding.fix


def test_bf16_on_cpu_warns(sample: Project) -> None:
    [finding] = by_field(lint_project(with_settings(sample, train__bf16="true", engine__device="cpu")), "train.bf16")
    assert finding.level == "warning"


def test_model_folder_missing_or_not_whisper_is_an_error(sample: Project, tmp_path: Path) -> None:
    [missing] = by_field(lint_project(with_settings(sample, engine__model=str(tmp_path / "nope"),
                                                    train__learning_rate="1e-5")), "engine.model")
    assert missing.level == "error" and "does not exist" in missing.message
    folder = tmp_path / "model"
    folder.mkdir()
    [no_config] = by_field(lint_project(with_settings(sample, engine__model=str(folder))), "engine.model")
    assert "config.json" in no_config.message
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}), encoding="utf-8")
    [other] = by_field(lint_project(with_settings(sample, engine__model=str(folder))), "engine.model")
    assert "qwen2" in other.message
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}), encoding="utf-8")
    assert by_field(lint_project(with_settings(sample, engine__model=str(folder))), "engine.model") == []


def test_missing_data_paths_are_errors_naming_the_field(sample: Project) -> None:
    findings = lint_project(with_settings(sample, data__test_csv="sample/nope.csv", data__train_audio="sample/none"))
    assert {f.field for f in findings if f.level == "error"} >= {"data.test_csv", "data.train_audio"}
    [finding] = by_field(findings, "data.test_csv")
    assert "nope.csv" in finding.message and "does not exist" in finding.message


def test_large_warmup_warns(sample: Project) -> None:
    [finding] = by_field(lint_project(with_settings(sample, train__warmup_ratio="0.6")), "train.warmup_ratio")
    assert finding.level == "warning"


def test_learning_rate_far_outside_the_engine_range_warns(sample: Project, tmp_path: Path) -> None:
    [low] = by_field(lint_project(with_settings(sample, train__learning_rate="3e-6")), "train.learning_rate")
    assert low.level == "warning" and "too low" in low.message and "3e-3" in low.fix
    folder = tmp_path / "whisper"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}), encoding="utf-8")
    [high] = by_field(lint_project(with_settings(sample, engine__model=str(folder), train__learning_rate="3e-3")),
                      "train.learning_rate")
    assert "too high" in high.message and "1e-5" in high.fix
    assert by_field(lint_project(with_settings(sample, engine__model=str(folder), train__learning_rate="1e-5")),
                    "train.learning_rate") == []


def test_deepspeed_with_the_whisper_engine_is_applied_not_ignored(tmp_path: Path) -> None:
    project = with_settings(init_project(tmp_path / "p", sample=True), deepspeed__enabled="true",
                            deepspeed__stage="2", deepspeed__offload_optimizer="true")
    assert by_field(lint_project(project), "deepspeed.enabled") == []
    from kimi_tui.events import EventWriter
    from kimi_tui.workers.prepare import prepare

    prepare(project, EventWriter(tmp_path / "events.jsonl"))
    project.base_model_dir.mkdir(parents=True)
    (project.base_model_dir / "config.json").write_text("{}")  # as if converted
    argv = get_engine("whisper").plan("train", project).argv
    # DeepSpeed wants torchrun's rank variables even on one GPU.
    assert argv[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "1"]
    assert argv[argv.index("--zero-stage") + 1] == "2" and "--offload-optimizer" in argv


def test_eval_checkpoints_that_the_schedule_never_saves_warn(sample: Project) -> None:
    findings = lint_project(seed_case(sample, train__save_steps="5", eval__checkpoints="checkpoint-7"))
    [finding] = by_field(findings, "eval.checkpoints")
    assert "checkpoint-7" in finding.message and "checkpoint-30" in finding.message


def test_eval_checkpoints_are_checked_against_the_saves_of_every_machine(sample: Project) -> None:
    """Two machines share the 9 samples: 2 steps an epoch, 20 in all, so checkpoint-30 (one machine's
    last save) will never exist; the train plan counts GPUs x machines, and so must the lint."""
    two = seed_case(sample, train__save_steps="5", train__num_nodes="2", train__rdzv_endpoint="10.0.0.1:29500")
    [finding] = by_field(lint_project(with_settings(two, eval__checkpoints="checkpoint-30")), "eval.checkpoints")
    assert "checkpoint-30" in finding.message and "checkpoint-20." in finding.message
    assert by_field(lint_project(with_settings(two, eval__checkpoints="checkpoint-20")), "eval.checkpoints") == []


def test_every_finding_names_a_real_setting_and_a_fix(sample: Project) -> None:
    fields = {f"{t}.{k}" for t, s in ProjectConfig.model_fields.items() for k in s.annotation.model_fields}
    bad = seed_case(sample, train__num_gpus="8", train__warmup_ratio="0.7", train__bf16="true",
                    engine__device="cpu", deepspeed__enabled="true", data__test_csv="nope.csv",
                    train__logging_steps="1000")
    findings = lint_project(bad, gpus=GpuSnapshot(False, "none"))
    assert len(findings) >= 6
    for finding in findings:
        assert finding.field in fields
        assert finding.level in ("error", "warning", "note")
        assert finding.message and finding.fix


# ---------------------------------------------------------------------------- presets


def test_presets_apply_through_set_field_and_leave_other_settings_alone() -> None:
    base = set_field(ProjectConfig(), "data.train_csv", "mine.csv")
    seed = apply_preset(base, "seed-small-data")
    t = seed.train
    assert (t.eval_ratio, t.epochs, t.gradient_accumulation_steps, t.learning_rate, t.weight_decay,
            t.warmup_ratio, t.save_steps, t.batch_size) == (0.0, 10, 4, 3e-6, 0.01, 0.1, 5, 1)
    assert seed.data.train_csv == "mine.csv"
    tiny = apply_preset(base, "tiny-cpu-sample")
    assert tiny.engine.model == "tiny"
    assert {k: getattr(tiny.train, k) for k in TINY_SCHEDULE} == TINY_SCHEDULE
    whisper = apply_preset(base, "whisper-small-finetune")
    assert (whisper.train.learning_rate, whisper.train.epochs, whisper.train.batch_size,
            whisper.train.warmup_ratio, whisper.train.save_steps) == (1e-5, 3, 8, 0.1, "auto")


def test_preset_changes_lists_only_what_differs_and_unknown_names_are_errors() -> None:
    config = apply_preset(ProjectConfig(), "seed-small-data")
    assert preset_changes(config, "seed-small-data") == []
    assert ("train.epochs", 10, 3) in preset_changes(config, "whisper-small-finetune")
    with pytest.raises(ConfigError, match="seed-small-data"):
        apply_preset(config, "seed-smal-data")
    assert set(PRESETS) == {"tiny-cpu-sample", "seed-small-data", "whisper-small-finetune",
                            "kimi-audio-lora-1gpu", "kimi-audio-zero3-8gpu"}


@pytest.mark.parametrize("name", list(PRESETS))
def test_no_preset_leaves_the_kimi_audio_engine_training_in_fp32(name: str) -> None:
    """kimi-audio trains in bf16 only (the official Whisper encoder casts to it): a preset that turns bf16
    off also moves to the whisper engine, whose tiny model it is."""
    kimi = set_field(set_field(ProjectConfig(), "engine.name", "kimi-audio"), "train.bf16", True)
    config = apply_preset(kimi, name)
    assert config.engine.name != "kimi-audio" or config.train.bf16, name


@pytest.mark.parametrize("preset, gpus", [("kimi-audio-lora-1gpu", 1), ("kimi-audio-zero3-8gpu", 8)])
def test_the_kimi_audio_presets_fit_their_80_gb_gpus_with_128_gb_of_host_ram(preset: str, gpus: int) -> None:
    from kimi_tui.engines.kimi_audio_preflight import preflight

    config = apply_preset(ProjectConfig(), preset)
    t, ds, ka = config.train, config.deepspeed, config.kimi_audio
    findings = preflight(
        n_samples=800 * gpus, epochs=t.epochs, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps,
        save_steps=t.save_steps, num_gpus=t.num_gpus, method=ka.method, zero_stage=ds.stage if ds.enabled else 0,
        offload_optimizer=ds.offload_optimizer, offload_param=ds.offload_param, gpu_memory_gb=80, gpus_here=gpus,
        host_ram=128, probe={"transformers": "4.49.0", "torch": "2.6.0", "cuda": True, "flash_attn": "2.7.4",
                             "deepspeed": "0.16.9", "peft": "0.15.2"}, read_machine=False, batching=ka.batching,
        max_audio_tokens=ka.max_audio_tokens,
    )
    assert [f for f in findings if f.level == "error"] == [], findings


def test_the_seed_preset_on_the_seed_data_saves_checkpoints(sample: Project) -> None:
    project = Project(root=sample.root, config=apply_preset(sample.config, "seed-small-data"))
    assert by_field(lint_project(project), "train.save_steps") == []


def test_eval_checkpoints_missing_from_training_warn(tmp_path: Path) -> None:
    project = init_project(tmp_path / "p", sample=True)
    for step in (10, 20):
        folder = project.training_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"\0")
    (project.training_dir / "checkpoint-30").mkdir()  # incomplete
    findings = lint_project(with_settings(project, eval__checkpoints="checkpoint-10, checkpoint-30"))
    [finding] = by_field(findings, "eval.checkpoints")
    assert "checkpoint-30 is not among" in finding.message and "checkpoint-10, checkpoint-20" in finding.message
    assert by_field(lint_project(with_settings(project, eval__checkpoints="checkpoint-20")), "eval.checkpoints") == []


def test_deepspeed_enabled_without_deepspeed_installed_is_an_error_with_the_install_command(
        sample: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import kimi_tui.lint as lint

    monkeypatch.setattr(lint, "deepspeed_installed", lambda: False)
    [finding] = by_field(lint_project(with_settings(sample, deepspeed__enabled="true")), "deepspeed.enabled")
    assert finding.level == "error" and "not installed" in finding.message
    assert "kimi-tui[deepspeed]" in finding.fix


def test_whisper_zero3_on_cpu_processes_with_an_affected_deepspeed_is_an_error(sample: Project, monkeypatch) -> None:
    import kimi_tui.lint as lint

    project = with_settings(sample, deepspeed__enabled="true", deepspeed__stage="3", train__num_gpus="2",
                            engine__device="cpu")
    monkeypatch.setattr(lint, "deepspeed_installed", lambda: True)
    monkeypatch.setattr(lint, "_installed_version", lambda name: "0.16.9")
    [finding] = [f for f in by_field(lint_project(project), "deepspeed.stage") if f.level == "error"]
    assert "2 CPU processes with deepspeed 0.16.9" in finding.message and "deepspeed>=0.19.8" in finding.fix
    assert by_field(lint_project(with_settings(project, deepspeed__stage="2")), "deepspeed.stage") == []
    assert by_field(lint_project(with_settings(project, engine__device="cuda")), "deepspeed.stage") == []
    monkeypatch.setattr(lint, "_installed_version", lambda name: "0.19.8")
    assert by_field(lint_project(project), "deepspeed.stage") == []
