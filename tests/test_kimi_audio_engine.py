"""The kimi-audio engine: its plans, its stdlib-only worker, and every stage run against the checkout double."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import configure, copy_converted

from kimi_double import kimi_project, make_double
from kimi_tui.engines import get_engine
from kimi_tui.errors import KimiTuiError
from kimi_tui.lint import lint_project
from kimi_tui.pipeline import start
from kimi_tui.project import Project
from kimi_tui.runs import wait_run
from kimi_tui.workers import kimi_audio_worker as worker
from kimi_tui.workers.deepspeed_setup import deepspeed_config

WORKER_SOURCE = Path(worker.__file__)


def run_stage(project: Project, stage: str, resume: bool = False):
    run_dir = start(project, stage, resume=resume)
    info = wait_run(run_dir)
    log = (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
    assert info.state == "succeeded", f"{stage} {info.state}:\n{log[-4000:]}"
    return run_dir, log


@pytest.fixture
def project(tmp_path) -> Project:
    return kimi_project(tmp_path)


# ---------------------------------------------------------------------------
# The worker runs under a foreign interpreter


def test_worker_imports_nothing_but_the_standard_library_and_the_files_copied_with_it():
    from kimi_tui.engines.kimi_audio import WORKER_FILES

    package = WORKER_SOURCE.parents[1]
    copied = {"kimi_tui." + rel.removesuffix(".py").replace("/", ".") for rel in WORKER_FILES if rel.endswith(".py")}
    for rel in WORKER_FILES:
        tree = ast.parse((package / rel).read_text(encoding="utf-8"))
        top_level = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top_level |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module)
        foreign = {m for m in top_level if m.split(".")[0] not in sys.stdlib_module_names} - copied
        assert not foreign, f"{rel}, copied next to the kimi-audio worker, imports {foreign} at load time"


def test_the_projects_copy_of_the_worker_starts_with_no_site_packages_at_all(project):
    script = get_engine("kimi-audio").worker_script(project)
    assert script.startswith(str(project.root / ".kimi-tui" / "lib"))
    # -I -S: no PYTHONPATH, no site-packages: only the standard library and the copied files.
    out = subprocess.run([sys.executable, "-I", "-S", script, "extract", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "--base-model" in out.stdout


def test_token_counts_follow_glm4_voices_12_5_hz_rule():
    assert worker.expected_tokens(16000) == 13  # (16000 - 1) // 1280 + 1
    assert worker.expected_tokens(1280) == 1
    assert worker.expected_tokens(1281) == 2
    assert worker.expected_tokens(30 * 16000) == 375
    assert worker.expected_tokens(30 * 16000 + 1) == 376  # a second 30 s chunk of one sample


def test_hub_ids_are_linked_offline_and_a_users_own_folder_is_never_replaced(tmp_path):
    checkout = tmp_path / "co"
    (checkout / "openai" / "whisper-large-v3").mkdir(parents=True)
    (checkout / "openai" / "whisper-large-v3" / "mine.txt").write_text("user's")
    target = tmp_path / "glm"
    target.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    worker.link_hub_ids(checkout, [f"THUDM/glm-4-voice-tokenizer={other}"])
    worker.link_hub_ids(checkout, [f"THUDM/glm-4-voice-tokenizer={target}", f"openai/whisper-large-v3={target}"])
    assert os.path.realpath(checkout / "THUDM" / "glm-4-voice-tokenizer") == str(target.resolve())
    assert (checkout / "openai" / "whisper-large-v3" / "mine.txt").read_text() == "user's"
    with pytest.raises(worker.WorkerError, match="does not exist"):
        worker.link_hub_ids(checkout, [f"moonshotai/Kimi-Audio-7B={tmp_path / 'nowhere'}"])


# ---------------------------------------------------------------------------
# Plans


def plan(project: Project, stage: str, **kw):
    return get_engine("kimi-audio")._plan_train(project, **kw) if stage == "train" else get_engine("kimi-audio").plan(stage, project)


def fake_features(project: Project, n: int) -> None:
    project.features_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"conversation": [{"role": "user", "message_type": "audio", "content": "/a.wav", "audio_tokens": [1]}]})
    (project.features_dir / "train.jsonl").write_text((line + "\n") * n)
    project.base_model_dir.mkdir(parents=True, exist_ok=True)
    (project.base_model_dir / "config.json").write_text("{}")


def test_every_plan_runs_in_the_checkout_offline_under_the_configured_interpreter(project):
    fake_features(project, 9)
    project.train_jsonl.parent.mkdir(parents=True, exist_ok=True)
    project.train_jsonl.write_text("{}\n")
    checkout = project.path(project.config.kimi_audio.checkout).resolve()
    for stage in ("extract", "convert", "train"):
        p = plan(project, stage)
        assert p.cwd == str(checkout)
        assert p.env["HF_HUB_OFFLINE"] == "1" and p.env["PYTHONPATH"] == str(checkout)
        assert p.argv[0] == sys.executable
        links = [p.argv[i + 1] for i, a in enumerate(p.argv) if a == "--link"]
        assert any(link.startswith("openai/whisper-large-v3=") for link in links)
        assert any(link.startswith("THUDM/glm-4-voice-tokenizer=") for link in links)
        assert any(link.startswith("moonshotai/Kimi-Audio-7B=") for link in links)
    convert = plan(project, "convert").argv
    official = convert[convert.index("--") + 1:]
    assert official[1:4] == ["-m", "finetune_codes.model", "--model_name"]
    assert official[-2:] == ["--output_dir", str(project.base_model_dir)]


def test_the_train_plan_uses_the_schedule_kimi_tui_computed_and_refuses_what_cannot_work(project):
    fake_features(project, 9)
    argv = plan(project, "train").argv
    assert argv[argv.index("--save-steps") + 1] == "9"  # 27 steps: saves at 9, 18, 27
    assert argv[argv.index("--total-steps") + 1] == "27"
    assert "--lora-rank" in argv and "torch.distributed.run" not in argv

    batched = plan(configure(project, train__batch_size=3), "train").argv  # kimi-tui's batching (the default)
    assert batched[batched.index("--batch-size") + 1] == "3" and batched[batched.index("--total-steps") + 1] == "9"
    with pytest.raises(KimiTuiError, match="micro batch of 1"):
        plan(configure(project, train__batch_size=4, kimi_audio__batching="official"), "train")
    with pytest.raises(KimiTuiError, match="no checkpoint would be saved"):
        plan(configure(project, train__batch_size=1, kimi_audio__batching="kimi-tui", train__save_steps=1000), "train")
    with pytest.raises(KimiTuiError, match="30 s or less"):
        plan(configure(project, train__save_steps="auto", data__max_duration_s=60.0), "prepare")


def test_fp32_training_is_refused_by_the_lint_and_the_train_plan_and_never_advised(project):
    """The official Whisper encoder casts its input to bf16: fp32 training crashes in its first convolution."""
    from kimi_tui.gpu import GpuSnapshot

    fake_features(project, 9)
    fp32 = configure(project, train__bf16=False)
    [finding] = [f for f in lint_project(fp32) if f.field == "train.bf16"]
    assert finding.level == "error" and "c10::BFloat16" in finding.message and "bf16 = true" in finding.fix
    with pytest.raises(KimiTuiError, match=r"\[train\] bf16 = false: the official Whisper encoder.*bf16 = true"):
        plan(fp32, "train")
    for device in ("cpu", "auto"):
        bf16 = configure(project, train__bf16=True, engine__device=device)
        for gpus in (None, GpuSnapshot(False, "no NVIDIA GPU")):
            findings = lint_project(bf16, gpus=gpus)
            assert [f for f in findings if f.field == "train.bf16" or "bf16 = false" in f.fix] == [], findings
    assert "--bf16" in plan(bf16, "train").argv


@pytest.mark.parametrize("engine", ["kimi-audio", "whisper"])
def test_the_train_plan_names_the_cpu_when_the_device_is_the_cpu(project, engine):
    fake_features(project, 9)
    project.train_jsonl.parent.mkdir(parents=True, exist_ok=True)
    project.train_jsonl.write_text("{}\n" * 9)
    plan_of = lambda p: get_engine(engine).plan("train", p)  # noqa: E731
    one = configure(project, engine__name=engine, engine__device="cpu")
    assert " on the CPU" in plan_of(one).description and "GPU" not in plan_of(one).shell_script()
    two = configure(one, train__num_gpus=2, deepspeed__enabled=True, kimi_audio__method="full")
    assert " on 2 CPU processes" in plan_of(two).description and "GPU" not in plan_of(two).description
    assert " on 2 GPUs" in plan_of(configure(two, engine__device="cuda")).description
    assert " on 1 GPU or the CPU" in plan_of(configure(one, engine__device="auto")).description
    with pytest.raises(KimiTuiError, match=r"accumulation 1 on the CPU, 3 epochs"):
        plan_of(configure(one, train__save_steps=1000))
    [schedule] = [f for f in lint_project(configure(one, train__save_steps=1000)) if f.field == "train.save_steps"]
    assert "x 1 CPU process)" in schedule.message and "GPU" not in schedule.message


def test_multi_gpu_deepspeed_and_multi_node_plans_go_through_torchrun(project):
    fake_features(project, 400)
    p = configure(project, engine__device="cuda", train__num_gpus=4, deepspeed__enabled=True, deepspeed__stage=3,
                  deepspeed__offload_optimizer=True, kimi_audio__method="full")
    argv = plan(p, "train").argv
    assert argv[1:5] == ["-m", "torch.distributed.run", "--nproc_per_node", "4"]
    assert "--master_port" in argv
    assert argv[argv.index("--zero-stage") + 1] == "3" and "--offload-optimizer" in argv
    assert "--lora-rank" not in argv
    multi = configure(p, train__num_nodes=2, train__rdzv_endpoint="10.0.0.1:29400")
    argv = plan(multi, "train").argv
    assert argv[argv.index("--nnodes") + 1] == "2"
    assert argv[argv.index("--rdzv_endpoint") + 1] == "10.0.0.1:29400"
    assert plan(multi, "train").description.startswith("full fine-tuning, DeepSpeed ZeRO-3 + optimizer offload, micro-batch 1 on 4 GPUs x 2")
    with pytest.raises(KimiTuiError, match="rdzv_endpoint"):
        plan(configure(p, train__num_nodes=2), "train")


def test_the_deepspeed_config_has_no_scheduler_block():
    config = deepspeed_config(3, True, True)
    assert "scheduler" not in config  # WarmupLR would replace the Trainer's schedule
    assert config["zero_optimization"]["offload_param"]["device"] == "cpu"
    assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_a_misconfigured_project_is_named_field_by_field(project):
    broken = configure(project, kimi_audio__checkout=str(project.root / "nowhere"), train__batch_size=2,
                       kimi_audio__batching="official",
                       kimi_audio__python=str(project.root / "no-python"))
    findings = {f.field: f for f in lint_project(broken)}
    assert "does not exist" in findings["kimi_audio.checkout"].message
    assert findings["kimi_audio.python"].level == "error"
    assert findings["train.batch_size"].level == "error"
    with pytest.raises(KimiTuiError, match=r"\[kimi_audio\] checkout"):
        plan(broken, "convert")


# ---------------------------------------------------------------------------
# Every stage against the checkout double


def predictions(run_dir_log: str, project: Project) -> dict[str, dict[str, str]]:
    latest = sorted(p for p in project.evaluations_dir.iterdir() if p.is_dir())[-1]
    out = {}
    for folder in latest.iterdir():
        if (folder / "predictions.jsonl").exists():
            rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
            out[folder.name] = {(r["split"], r["id"]): r["hypothesis"] for r in rows}
    return out


@pytest.mark.slow
def test_lora_pipeline_runs_every_stage_on_the_checkout_double(project):
    for stage in ("prepare", "extract", "convert", "train", "export", "evaluate"):
        run_dir, log = run_stage(project, stage)
        script = (run_dir / "command.sh").read_text(encoding="utf-8")
        plan_argv = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))["argv"]
        assert shlex.split(script.split("exec ", 1)[1].replace("\\\n", " ")) == plan_argv
    tokens = [json.loads(line) for line in (project.features_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(tokens) == 9 and all(m["audio_tokens"] for s in tokens for m in s["conversation"] if m["message_type"] == "audio")
    checkout = project.path(project.config.kimi_audio.checkout)
    assert (checkout / "openai" / "whisper-large-v3").is_symlink()
    assert (project.training_dir / "final" / "adapter_config.json").is_file()
    assert not (project.training_dir / "final-merged").exists()  # derived, removed after the export
    for name in worker.TOKENIZER_FILES:
        assert (project.export_dir / name).is_file()
    assert (project.export_dir / "whisper-large-v3").is_dir()
    events = [json.loads(line) for run in project.runs_dir.glob("*-train") for line in (run / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "metric" and "loss" in e and "learning_rate" in e for e in events)
    got = predictions(log, project)
    assert set(got) == {"base", "checkpoint-9", "checkpoint-18", "checkpoint-27", "export"}
    assert all(len(v) == 19 for v in got.values())
    metrics = json.loads((sorted(project.evaluations_dir.iterdir())[-1] / "metrics.json").read_text(encoding="utf-8"))
    assert metrics


@pytest.mark.slow
def test_full_fine_tuning_checkpoints_transcribe_like_their_export(converted_kimi, tmp_path):
    project = copy_converted(converted_kimi, tmp_path / "project", **{
        "kimi_audio.method": "full", "train.epochs": 2, "eval.splits": ["train"], "eval.checkpoints": "last",
        "eval.include_base": False})
    for stage in ("train", "export", "evaluate"):
        run_dir, log = run_stage(project, stage)
    got = predictions(log, project)
    assert set(got) == {"checkpoint-18", "export"}
    # The checkpoint is loaded into the base model's shell; the export through the official CLI.
    assert got["checkpoint-18"] == got["export"]


@pytest.mark.slow
def test_full_fine_tuning_with_deepspeed_zero3_on_two_processes(converted_kimi, tmp_path):
    """Two torchrun ranks (gloo on a CPU) share the ZeRO-3 shards: the schedule is the one planned
    for two GPUs, and the checkpoint holds the whole gathered model, the one that is exported."""
    from safetensors.torch import load_file

    project = copy_converted(converted_kimi, tmp_path / "project", **{
        "kimi_audio.method": "full", "train.epochs": 2, "train.num_gpus": 2, "deepspeed.enabled": True,
        "deepspeed.stage": 3, "eval.splits": ["train"], "eval.checkpoints": "last", "eval.include_base": False})
    for stage in ("train", "export", "evaluate"):
        run_dir, log = run_stage(project, stage)
        if stage == "train":
            assert "terminate called" not in log
    training = project.training_dir
    ds = json.loads((training / "ds_config.json").read_text(encoding="utf-8"))
    assert ds["zero_optimization"]["stage"] == 3 and "scheduler" not in ds
    # 9 samples over 2 ranks at micro batch 1: 5 steps an epoch, 2 epochs.
    assert json.loads((training / "trainer_state.json").read_text(encoding="utf-8"))["global_step"] == 10
    last = training / "checkpoint-10"
    assert (last / "rng_state_0.pth").is_file() and (last / "rng_state_1.pth").is_file()
    checkpoint = load_file(str(last / "model.safetensors"))
    exported = load_file(str(project.export_dir / "model.safetensors"))
    assert checkpoint and all(t.numel() > 0 for t in checkpoint.values())  # gathered, not empty shards
    assert set(exported) <= set(checkpoint)
    assert all(checkpoint[k].equal(exported[k]) for k in exported)
    got = predictions(log, project)
    assert set(got) == {"checkpoint-10", "export"} and got["checkpoint-10"] == got["export"]


def test_extract_skips_a_bad_file_names_its_line_and_resumes_without_redoing_work(project, tmp_path):
    run_stage(project, "prepare")
    lines = project.train_jsonl.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[3])
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    for m in bad["conversation"]:
        if m["message_type"] == "audio":
            m["content"] = str(broken)
    lines[3] = json.dumps(bad, ensure_ascii=False)
    project.train_jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_dir, log = run_stage(project, "extract")
    assert "skipped train line 4" in log
    assert len((project.features_dir / "train.jsonl").read_text().splitlines()) == 8
    report = json.loads((project.features_dir / "extract" / "extract_report.json").read_text())
    assert report["train"]["skipped"][0]["line"] == 4
    # A crash mid-write leaves a cut line: it is dropped and only the unfinished samples are redone.
    shard = project.features_dir / "extract" / "train.shard-0-of-1.jsonl"
    kept = shard.read_text(encoding="utf-8").splitlines()[:5]
    shard.write_text("\n".join(kept) + "\n" + '{"index": 5, "sam', encoding="utf-8")
    run_dir, log = run_stage(project, "extract")
    # 10 test samples + 4 good train lines were kept; the 4 train lines after them and the bad file are redone.
    assert "19 samples, 14 already done, 5 to do" in log
    assert "skipped train line 4" in log
    assert len((project.features_dir / "train.jsonl").read_text().splitlines()) == 8


def test_extract_sharded_over_two_workers_gives_the_same_file_in_input_order(project):
    run_stage(project, "prepare")
    run_stage(project, "extract")
    one = (project.features_dir / "train.jsonl").read_text(encoding="utf-8")
    import shutil

    shutil.rmtree(project.features_dir)
    run_dir, log = run_stage(configure(project, train__num_gpus=2), "extract")
    assert "shard 1/2" in log
    assert (project.features_dir / "train.jsonl").read_text(encoding="utf-8") == one


def test_without_the_hub_links_the_official_code_would_download(project, tmp_path):
    """The double raises where the real code would start a download: the links are what keep it offline."""
    checkout, models = make_double(tmp_path / "again")
    env = dict(os.environ, PYTHONPATH=str(checkout), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "finetune_codes.model", "--model_name", str(models / "Kimi-Audio-7B"),
                          "--output_dir", str(tmp_path / "o")], cwd=checkout, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "would download openai/whisper-large-v3" in out.stderr
    run_stage(project, "convert")
    assert (project.base_model_dir / "config.json").is_file()


def test_an_interrupted_evaluation_resumes_with_the_predictions_it_already_wrote(project):
    project = configure(project, eval__checkpoints=[], eval__include_export=False, eval__splits=["train"])
    run_stage(project, "prepare")
    run_dir, log = run_stage(project, "evaluate")
    folder = sorted(project.evaluations_dir.iterdir())[-1]
    predictions_file = folder / "base" / "predictions.jsonl"
    complete = predictions_file.read_text(encoding="utf-8").splitlines()
    assert len(complete) == 9
    (folder / "metrics.json").unlink()  # as if the run had been stopped while transcribing
    predictions_file.write_text("\n".join(complete[:4]) + "\n" + complete[4][:20], encoding="utf-8")
    run_dir, log = run_stage(project, "evaluate", resume=True)
    assert "transcribe with base" in log and ": 5 clips" in log
    assert sorted(project.evaluations_dir.iterdir())[-1] == folder
    def by_id(lines):
        return {(r["split"], r["id"]): r["hypothesis"] for r in map(json.loads, lines)}

    resumed = predictions_file.read_text(encoding="utf-8").splitlines()
    assert resumed[:4] == complete[:4] and len(resumed) == 9  # kept as written; the cut line dropped
    assert by_id(resumed) == by_id(complete)
    assert (folder / "metrics.json").exists()
    with pytest.raises(KimiTuiError, match="no unfinished evaluation"):
        start(project, "evaluate", resume=True)
