"""Kimi-Audio preflight: the seed report's five failures, each found before a GPU hour is spent.

The checkout is a test double built from the documented layout only (KIMI_AUDIO.md),
and the interpreters are this one (transformers 5 installed) and a fake ``python``
(a shell script answering the probe with canned JSON, as an env with transformers 4.46 would).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from conftest import read_then_release

from kimi_tui.engines import kimi_audio_preflight as kp
from kimi_tui.engines.kimi_audio_preflight import TOKENIZER_FILES, preflight, probe_interpreter

HEALTHY = {
    "python": "3.10.14", "transformers": "4.46.3", "eval_strategy": True, "evaluation_strategy": True,
    "flash_attn": "2.7.4.post1", "deepspeed": "0.16.9", "peft": "0.13.2", "torch": "2.6.0", "cuda": True,
    "cuda_devices": [{"name": "NVIDIA H100 80GB HBM3", "memory_total": 85_520_000_000}],
}


def fake_python(tmp_path: Path, answer: dict | None = None, body: str | None = None) -> str:
    script = tmp_path / "fake-env" / "bin" / "python"
    script.parent.mkdir(parents=True, exist_ok=True)
    text = body if body is not None else f"echo 'some warning on stdout'\necho '{json.dumps(answer or HEALTHY)}'\n"
    script.write_text("#!/bin/bash\n" + text, encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def make_checkout(root: Path, *, submodule: bool = True, old_flag: bool = False) -> Path:
    (root / "kimia_infer" / "api").mkdir(parents=True)
    (root / "finetune_codes").mkdir()
    glm4 = root / "kimia_infer" / "models" / "tokenizer" / "glm4"
    glm4.mkdir(parents=True)
    if submodule:
        (glm4 / "speech_tokenizer").mkdir()
    script = "torchrun finetune.py \\\n  --evaluation_strategy \"no\" \\\n" if old_flag else "torchrun finetune.py\n"
    (root / "finetune_codes" / "finetune_ds.sh").write_text(script, encoding="utf-8")
    return root


def make_base_model(root: Path, files=TOKENIZER_FILES) -> Path:
    root.mkdir(parents=True)
    for name in files:
        (root / name).write_text("x", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def real_probe() -> dict:
    return probe_interpreter(sys.executable)


def by(findings, level=None, field=None):
    return [f for f in findings if (level is None or f.level == level) and (field is None or f.field == field)]


HEALTHY_ARGS = dict(n_samples=9, epochs=10, grad_accum=4, save_steps="auto", num_gpus=1, method="lora",
                    gpu_memory_gb=80, host_ram=128, read_machine=False)


# --- seed failure 1: --evaluation_strategy rejected by a newer transformers ------------------------

def test_installed_transformers_5_is_outside_the_range_and_eval_strategy_is_the_accepted_name(tmp_path, real_probe):
    checkout = make_checkout(tmp_path / "Kimi-Audio", old_flag=True)
    findings = preflight(checkout=checkout, python=sys.executable, probe=real_probe, **HEALTHY_ARGS)
    (version,) = by(findings, "error", "kimi_audio.transformers")
    assert "5." in version.message and ">= 4.46, < 5" in version.message and "transformers>=4.46,<5" in version.fix
    (flag,) = by(findings, "error", "kimi_audio.eval_strategy")
    assert "--eval_strategy" in flag.message and "finetune_ds.sh" in flag.message and "--eval_strategy" in flag.fix


def test_the_real_probe_runs_in_one_subprocess_and_reads_trainingarguments(real_probe):
    assert "error" not in real_probe
    assert real_probe["transformers"].startswith("5.")
    assert real_probe["eval_strategy"] is True and real_probe["evaluation_strategy"] is False


def test_a_4_46_environment_answering_through_a_fake_interpreter_is_accepted(tmp_path):
    python = fake_python(tmp_path)
    assert probe_interpreter(python)["transformers"] == "4.46.3"
    findings = preflight(checkout=make_checkout(tmp_path / "ka", old_flag=True), python=python, **HEALTHY_ARGS)
    assert not by(findings, field="kimi_audio.transformers") and not by(findings, field="kimi_audio.eval_strategy")


def test_old_transformers_is_refused_for_compute_loss_func(tmp_path):
    python = fake_python(tmp_path, {**HEALTHY, "transformers": "4.40.0", "eval_strategy": False})
    (f,) = by(preflight(python=python, **HEALTHY_ARGS), "error", "kimi_audio.transformers")
    assert "compute_loss_func" in f.message


# --- seed failure 2: save_steps 1000 on a 30-step run ----------------------------------------------

def test_save_steps_beyond_the_run_saves_nothing(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "save_steps": 1000})
    (f,) = by(findings, "error", "train.save_steps")
    assert "30 optimizer steps" in f.message and "auto" in f.fix and "15" in f.fix


# --- seed failure 3: 8 GPUs on 9 samples hung in NCCL ---------------------------------------------

def test_eight_gpus_on_nine_samples_is_flagged(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "num_gpus": 8, "grad_accum": 1})
    (f,) = by(findings, field="train.num_gpus")
    assert f.level == "warning" and "NCCL" in f.message and "--gpus 1" in f.fix


def test_more_gpus_than_samples_is_an_error_and_micro_batch_must_be_one(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "n_samples": 4, "num_gpus": 8,
                                                           "batch_size": 2})
    assert by(findings, "error", "train.num_gpus") and by(findings, "error", "train.batch_size")


def test_fp32_training_is_an_error_naming_the_official_whisper_and_the_fix(tmp_path):
    findings = preflight(python=fake_python(tmp_path), bf16=False, **HEALTHY_ARGS)
    (f,) = by(findings, "error", "train.bf16")
    assert "WhisperEncoder" in f.message and "c10::BFloat16" in f.message and "bf16 = true" in f.fix
    assert not by(preflight(python=fake_python(tmp_path), **HEALTHY_ARGS), field="train.bf16")


# --- seed failures 4 and 5: ZeRO-3 out of memory on one GPU; offload fits but crawls ---------------

def test_zero3_on_one_95_gb_gpu_runs_out_of_memory_and_names_what_fits(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "method": "full", "zero_stage": 3,
                                                           "gpu_memory_gb": 95})
    (f,) = by(findings, "error", "deepspeed.stage")
    assert "out of memory" in f.message and "LoRA" in f.fix and "ZeRO-3, no offload (" not in f.fix


def test_offload_fits_with_enough_host_ram_but_is_called_slow(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "method": "full", "gpu_memory_gb": 95,
                                                           "offload_optimizer": True, "offload_param": True,
                                                           "host_ram": 512})
    assert not by(findings, "error", "deepspeed.stage") and not by(findings, "error", "deepspeed.offload_optimizer")
    (slow,) = by(findings, "warning", "deepspeed.offload_optimizer")
    assert "3.27 s" in slow.message and "0.19-0.21 s" in slow.message


def test_offload_without_enough_host_ram_is_an_error(tmp_path):
    findings = preflight(python=fake_python(tmp_path), **{**HEALTHY_ARGS, "method": "full", "offload_optimizer": True})
    (f,) = by(findings, "error", "deepspeed.offload_optimizer")
    assert "128 GB" in f.message and "LoRA" in f.fix


# --- disk, checkout, base model, interpreter -------------------------------------------------------

def test_checkpoints_that_overflow_the_disk_are_an_error(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(kp.shutil, "disk_usage", lambda path: Usage(10**13, 0, 500 * 10**9))
    findings = preflight(python=fake_python(tmp_path), output_dir=tmp_path / "out" / "ckpts",
                         **{**HEALTHY_ARGS, "method": "full", "num_gpus": 8, "n_samples": 9000, "grad_accum": 1,
                            "gpu_memory_gb": 80, "save_steps": 100, "host_ram": 1000})
    (f,) = by(findings, "error", "train.save_total_limit")
    assert "125 GB optimizer state" in f.message and "save_total_limit = 3" in f.fix


def test_missing_submodule_gives_the_exact_git_fix(tmp_path):
    checkout = make_checkout(tmp_path / "ka", submodule=False)
    (f,) = by(preflight(checkout=checkout, python=fake_python(tmp_path), **HEALTHY_ARGS), "error",
              "kimi_audio.checkout")
    assert "glm4" in f.message and "speech_tokenizer" in f.message
    assert f.fix == f"git -C {checkout} submodule update --init --recursive"


def test_a_folder_that_is_not_a_checkout_is_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (f,) = by(preflight(checkout=tmp_path / "other", python=fake_python(tmp_path), **HEALTHY_ARGS), "error")
    assert "kimia_infer/" in f.message and "finetune_codes/" in f.message


def test_base_model_without_tokenizer_files_is_an_error(tmp_path):
    base = make_base_model(tmp_path / "base", files=("tokenizer_config.json",))
    (f,) = by(preflight(base_model=base, python=fake_python(tmp_path), **HEALTHY_ARGS), "error",
              "kimi_audio.base_model")
    assert "tiktoken.model" in f.message and "Kimi-Audio-7B-Instruct" in f.message


def test_no_flash_attn_and_no_cuda_are_errors(tmp_path):
    python = fake_python(tmp_path, {**HEALTHY, "flash_attn": None, "cuda": False, "cuda_devices": []})
    findings = preflight(python=python, **HEALTHY_ARGS)
    assert by(findings, "error", "kimi_audio.flash_attn") and by(findings, "error", "kimi_audio.cuda")


def test_missing_interpreter_is_a_finding_not_a_crash(tmp_path):
    findings = preflight(python=str(tmp_path / "nope" / "python"), **HEALTHY_ARGS)
    (f,) = by(findings, "error", "kimi_audio.python")
    assert "no interpreter" in f.message


def test_a_hanging_interpreter_times_out(tmp_path):
    python = fake_python(tmp_path, body="sleep 5\n")
    answer = probe_interpreter(python, timeout=0.5)
    assert answer["kind"] == "timeout"
    assert probe_interpreter(fake_python(tmp_path, body="echo not json\nexit 3\n"))["kind"] == "failed"


# --- a healthy setup: LoRA on one 80 GB GPU --------------------------------------------------------

def test_lora_on_one_80_gb_gpu_with_a_complete_checkout_has_no_error(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(kp.shutil, "disk_usage", lambda path: Usage(10**13, 0, 2 * 10**12))
    findings = preflight(checkout=make_checkout(tmp_path / "ka"), base_model=make_base_model(tmp_path / "base"),
                         python=fake_python(tmp_path), output_dir=tmp_path / "out", **HEALTHY_ARGS)
    assert by(findings, "error") == [], findings
    assert not by(findings, "warning"), findings


# --- the CLI ---------------------------------------------------------------------------------------

def doctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kimi_tui", "doctor", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_exit_codes_and_json(tmp_path):
    python = fake_python(tmp_path)
    common = ["--python", python, "--checkout", str(make_checkout(tmp_path / "ka")),
              "--base-model", str(make_base_model(tmp_path / "base")), "--samples", "9", "--epochs", "10",
              "--grad-accum", "4", "--gpu-memory-gb", "80", "--host-ram-gb", "128"]
    ok = doctor(*common, "--method", "lora", "--save-steps", "auto")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no errors" in ok.stdout and "Traceback" not in ok.stderr

    seed = doctor(*common, "--gpus", "8", "--save-steps", "1000", "--json")
    assert seed.returncode == 1, seed.stdout + seed.stderr
    found = json.loads(seed.stdout)
    assert all(set(f) == {"level", "field", "message", "fix"} for f in found)
    fields = {(f["level"], f["field"]) for f in found}
    assert ("error", "train.save_steps") in fields and ("warning", "train.num_gpus") in fields
    assert ("error", "deepspeed.stage") not in fields  # ZeRO-3 on 8 x 80 GB fits (~35 GB per GPU)

    text = doctor(*common, "--save-steps", "1000")
    assert text.returncode == 1 and text.stdout.startswith("doctor: checking the official Kimi-Audio fine-tuning")
    assert "error   train.save_steps: " in text.stdout and "fix:" in text.stdout
    assert "error   deepspeed.stage: " in text.stdout  # ZeRO-3 on one 80 GB GPU: out of memory
    assert text.stdout.splitlines()[-1].startswith("2 errors")

    bad = doctor(*common, "--save-steps", "often")
    assert bad.returncode == 2 and "--save-steps" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_reads_the_project(tmp_path):
    project = tmp_path / "p"
    init = subprocess.run([sys.executable, "-m", "kimi_tui", "init", str(project), "--sample"],
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    # The sample is a whisper project: --engine kimi-audio asks how the official code would take it.
    out = doctor("--project", str(project), "--engine", "kimi-audio", "--python", fake_python(tmp_path),
                 "--gpu-memory-gb", "80", "--host-ram-gb", "128", "--method", "lora", "--json")
    assert out.returncode in (0, 1), out.stderr
    assert isinstance(json.loads(out.stdout), list)


def test_the_seeds_setup_names_all_five_failures_before_the_run_and_proposes_lora(tmp_path):
    """9 samples, 8 x 80 GB GPUs, save_steps 1000, ZeRO-3 without offload, 128 GB of host RAM, and an
    environment whose transformers (4.51+) rejects the script's --evaluation_strategy."""
    newer = {**HEALTHY, "transformers": "4.51.3", "evaluation_strategy": False}
    checkout = make_checkout(tmp_path / "Kimi-Audio", old_flag=True)
    findings = preflight(checkout=checkout, python=fake_python(tmp_path, newer), n_samples=9, epochs=10,
                         grad_accum=4, save_steps=1000, num_gpus=8, method="full", zero_stage=3,
                         gpu_memory_gb=80, gpus_here=8, host_ram=128, read_machine=False)
    text = "\n".join(f"{f.level} {f.field}: {f.message} | {f.fix}" for f in findings)
    assert by(findings, "error", "kimi_audio.eval_strategy"), text  # 1: the renamed Trainer argument
    assert by(findings, "error", "train.save_steps"), text  # 2: no checkpoint saved
    assert by(findings, "warning", "train.num_gpus"), text  # 3: eight GPUs on nine samples
    (fallback,) = [f for f in by(findings, "warning", "deepspeed.stage")]
    assert "out of memory" in fallback.message  # 4: ZeRO-3 on the one GPU the data calls for
    assert "offload" in fallback.message and "17x slower" in fallback.message  # 5: the slow offload fix
    assert "LoRA" in fallback.fix  # a setup that fits one 80 GB GPU and 128 GB of host RAM


# --- memory sized from the configured base model, not always 7 B -----------------------------------

TINY_LM = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, kimia_mimo_layers=1,
               num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
TINY_WHISPER = dict(encoder_layers=1, d_model=8, encoder_ffn_dim=16, num_mel_bins=4, max_source_positions=10)


def tiny_base_model(root: Path, whisper: bool = True) -> Path:
    base = make_base_model(root)
    (base / "config.json").write_text(json.dumps(TINY_LM), encoding="utf-8")
    if whisper:
        (base / "whisper-large-v3").mkdir()
        (base / "whisper-large-v3" / "config.json").write_text(json.dumps(TINY_WHISPER), encoding="utf-8")
    return base


def test_doctor_sizes_memory_from_the_projects_base_model_config(tmp_path):
    from kimi_tui.config import save_config, set_field
    from kimi_tui.project import Project, init_project

    project = init_project(tmp_path / "p", sample=True)
    config = project.config
    for key, value in (("engine.name", "kimi-audio"), ("train.bf16", True), ("kimi_audio.method", "full"),
                       ("deepspeed.enabled", True), ("deepspeed.stage", 3), ("train.save_steps", "auto"),
                       ("kimi_audio.base_model", str(tiny_base_model(tmp_path / "base")))):
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    common = ["--project", str(project.root), "--python", fake_python(tmp_path), "--gpu-memory-gb", "24",
              "--host-ram-gb", "32", "--json"]
    found = json.loads(doctor(*common).stdout)
    summary = next(f for f in found if f["field"] == "deepspeed.stage" and f["level"] == "note")
    assert "~2 GB per GPU, ~0 GB host RAM" in summary["message"], summary  # 1.5 GB is the CUDA runtime
    assert not [f for f in found if f["level"] == "error" and f["field"].startswith("deepspeed.")], found
    assert not [f for f in found if f["field"] == "kimi_audio.base_model"], found

    (tmp_path / "base" / "config.json").unlink()  # unreadable: the published 7 B, said so
    found = json.loads(doctor(*common).stdout)
    [note] = [f for f in found if f["field"] == "kimi_audio.base_model" and f["level"] == "note"]
    assert "does not exist" in note["message"] and "published Kimi-Audio-7B (10.40 B parameters)" in note["message"]
    assert [f for f in found if f["level"] == "error" and f["field"] == "deepspeed.stage"]  # 7 B: ~190 GB per GPU


def test_the_disk_check_and_the_fallback_use_the_base_models_size(tmp_path, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(kp.shutil, "disk_usage", lambda path: Usage(10**13, 0, 10**9))  # 1 GB free
    args = {**HEALTHY_ARGS, "method": "full", "zero_stage": 3, "output_dir": tmp_path / "out"}
    tiny = preflight(python=fake_python(tmp_path), base_model=tiny_base_model(tmp_path / "base"), **args)
    assert not by(tiny, "error", "train.save_total_limit") and not by(tiny, field="kimi_audio.base_model"), tiny
    no_whisper = preflight(python=fake_python(tmp_path), base_model=tiny_base_model(tmp_path / "lm", whisper=False),
                           **args)
    [note] = by(no_whisper, "note", "kimi_audio.base_model")
    assert "Whisper-large-v3" in note.message  # no whisper-large-v3/config.json: the encoder is sized at full size
    assert by(no_whisper, "error", "train.save_total_limit")  # 0.64 B of Whisper: ~9 GB a checkpoint
    assert by(preflight(python=fake_python(tmp_path), **args), "error", "train.save_total_limit")


# --- ZeRO-3 over CPU processes with a DeepSpeed that loses parameter all-gathers -------------------

def test_zero3_on_cpu_ranks_with_deepspeed_0_16_9_is_refused_naming_the_race_and_the_fix(tmp_path):
    old_cpu = fake_python(tmp_path, {**HEALTHY, "deepspeed": "0.16.9", "cuda": False, "cuda_devices": []})
    args = {**HEALTHY_ARGS, "method": "full", "zero_stage": 3, "num_gpus": 2, "gpu_memory_gb": None}
    (f,) = by(preflight(python=old_cpu, **args), "error", "deepspeed.stage")
    assert "deepspeed 0.16.9" in f.message and "2 CPU processes" in f.message and "DeepSpeed#8539" in f.message
    assert "'deepspeed>=0.19.8'" in f.fix and "deepspeed.stage = 2" in f.fix
    assert not by(preflight(python=old_cpu, **{**args, "zero_stage": 2}), "error", "deepspeed.stage")
    assert not by(preflight(python=old_cpu, **{**args, "num_gpus": 1}), "error", "deepspeed.stage")
    fixed = fake_python(tmp_path / "new", {**HEALTHY, "deepspeed": "0.19.8", "cuda": False, "cuda_devices": []})
    assert not by(preflight(python=fixed, **args), "error", "deepspeed.stage")
    on_gpus = fake_python(tmp_path / "gpu", {**HEALTHY, "deepspeed": "0.16.9"})  # NCCL orders its gathers
    assert not [f for f in by(preflight(python=on_gpus, **args), "error", "deepspeed.stage") if "gloo" in f.message]
    forced = [f for f in by(preflight(python=on_gpus, device="cpu", **args), "error", "deepspeed.stage")
              if "gloo" in f.message]
    assert forced  # engine.device = "cpu" on a GPU machine trains over gloo too


def test_cli_prints_the_settings_findings_while_the_interpreter_is_still_probed(tmp_path):
    """The fake interpreter answers only once this test has read doctor's first findings."""
    release = tmp_path / "release"
    python = fake_python(tmp_path, body=f"while [ ! -e '{release}' ]; do sleep 0.02; done\n"
                                       f"echo '{json.dumps(HEALTHY)}'\n")
    proc = subprocess.Popen([sys.executable, "-m", "kimi_tui", "doctor", "--python", python, "--samples", "9",
                             "--epochs", "10", "--grad-accum", "4", "--save-steps", "1000", "--gpu-memory-gb", "80",
                             "--host-ram-gb", "128", "--method", "lora"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before, running, rest, err = read_then_release(proc, "  ... importing transformers", release)
    assert running and before[0].startswith("doctor: checking the official Kimi-Audio fine-tuning"), before
    assert any(x.startswith("error   train.save_steps: ") for x in before), before
    assert proc.returncode == 1, "".join(before) + rest + err
    assert "deepspeed.stage" in rest and "kimi_audio.transformers" not in rest  # 4.46.3: in range
