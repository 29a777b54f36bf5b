"""`kimi-tui doctor` checks the engine the project trains with, and says what it finds as it goes.

On the bundled whisper sample it used to print four Kimi-Audio errors (transformers < 5, flash-attn,
...) and exit 1: a newcomer's first command told them their working setup was broken. These run
the real CLI (kimi_tui.cli.main, or a subprocess for the streaming); the environment probe is the
real one once (the sample's acceptance) and a canned answer elsewhere, to keep the file fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import configure, read_then_release

from kimi_tui.cli import main
from kimi_tui.engines import kimi_audio_preflight as kp
from kimi_tui.engines import whisper_preflight as wp
from kimi_tui.project import Project, init_project

#: What kimi-tui's environment answers when it has everything the whisper engine needs, on a CPU.
HEALTHY = {"python": "3.12.3", "torch": "2.6.0", "torch_error": None, "cuda": False, "cuda_devices": [],
           "bf16": None, "transformers": "4.46.3", "transformers_error": None, "accelerate": "1.0.1",
           "tokenizers": "0.20.1", "soundfile": "0.12.1", "torchaudio": "2.6.0"}
#: Advice that belongs to the official Kimi-Audio code only.
KIMI_AUDIO_ADVICE = ("kimi_audio.", "transformers>=4.46,<5", "flash-attn", "flash_attn", "--checkout", "Kimi-Audio")


@pytest.fixture
def sample(tmp_path) -> Project:
    return init_project(tmp_path / "sample", sample=True)


@pytest.fixture
def canned(monkeypatch):
    """The whisper probe answers at once (HEALTHY, or what the test sets in the dict)."""
    answer = dict(HEALTHY)
    monkeypatch.setattr(wp, "probe_environment", lambda python=None, timeout=None: answer)
    return answer


def doctor(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["doctor", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_sample_whisper_project_passes_with_the_real_environment_and_no_kimi_audio_advice(sample, capsys):
    code, out, err = doctor(capsys, "--project", str(sample.root))
    assert code == 0, out + err
    first = out.splitlines()[0]
    assert first.startswith("doctor: checking the whisper engine of ") and 'engine.model = "tiny"' in first
    assert not [word for word in KIMI_AUDIO_ADVICE if word in out], out
    assert "engine.name: " in out and "torch " in out and "transformers " in out  # the probe's answer is said
    assert "no errors: the setup looks runnable." in out and "Traceback" not in err


def test_save_steps_beyond_the_run_is_the_whisper_projects_error(sample, canned, capsys):
    project = configure(sample, train__save_steps=1000)
    code, out, _ = doctor(capsys, "--project", str(project.root))
    assert code == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith("error   train.save_steps:")]
    assert "save_steps = 1000" in line and "200 optimizer steps" in line
    assert "1 error, " in out and "no errors" not in out
    # doctor's own flag stands for the setting, as for the kimi-audio engine
    code, out, _ = doctor(capsys, "--project", str(sample.root), "--save-steps", "1000")
    assert code == 1 and "error   train.save_steps:" in out
    assert doctor(capsys, "--project", str(project.root), "--save-steps", "auto")[0] == 0


def test_json_is_one_document_errors_first(sample, canned, capsys):
    code, out, _ = doctor(capsys, "--project", str(sample.root), "--save-steps", "1000", "--json")
    assert code == 1
    found = json.loads(out)
    assert all(set(f) == {"level", "field", "message", "fix"} for f in found)
    assert found[0]["level"] == "error" and found[0]["field"] == "train.save_steps"
    assert [f["level"] for f in found] == sorted((f["level"] for f in found), key=["error", "warning", "note"].index)
    assert not [f for f in found if f["field"].startswith("kimi_audio.")]


def test_without_project_the_first_line_names_the_engine_and_engine_picks(canned, monkeypatch, capsys):
    monkeypatch.setattr(kp, "probe_interpreter", lambda python=None, timeout=None, code=None: {
        "python": "3.10.14", "transformers": "4.46.3", "eval_strategy": True, "evaluation_strategy": True,
        "flash_attn": "2.7.4.post1", "deepspeed": "0.16.9", "peft": "0.13.2", "torch": "2.6.0", "cuda": False,
        "cuda_devices": []})
    _, out, _ = doctor(capsys, "--gpu-memory-gb", "80", "--host-ram-gb", "128")
    assert out.splitlines()[0].startswith("doctor: checking the official Kimi-Audio fine-tuning")
    code, out, _ = doctor(capsys, "--engine", "whisper")
    assert code == 0, out
    assert out.splitlines()[0].startswith("doctor: checking the whisper engine")
    assert not [word for word in KIMI_AUDIO_ADVICE if word in out], out


def test_a_local_model_folder_without_its_feature_extractor_and_tokenizer_is_an_error(sample, canned, capsys):
    folder = sample.root / "whisper-small"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper", "d_model": 768}), encoding="utf-8")
    project = configure(sample, engine__model="whisper-small", train__learning_rate=1e-5)
    code, out, _ = doctor(capsys, "--project", str(project.root))
    assert code == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith("error   engine.model:")]
    assert "preprocessor_config.json" in line and "tokenizer" in line and "model.safetensors" in line
    for name in ("preprocessor_config.json", "tokenizer_config.json", "tokenizer.json", "model.safetensors"):
        (folder / name).write_text("{}", encoding="utf-8")
    code, out, _ = doctor(capsys, "--project", str(project.root))
    assert "error   engine.model" not in out, out


def test_device_cuda_without_a_cuda_torch_is_an_error_and_missing_torch_too(sample, canned, capsys):
    project = configure(sample, engine__device="cuda")
    code, out, _ = doctor(capsys, "--project", str(project.root))
    assert code == 1 and "error   engine.device:" in out and "no usable CUDA device" in out, out
    canned.update(torch=None, torch_error="ModuleNotFoundError: No module named 'torch'")
    code, out, _ = doctor(capsys, "--project", str(sample.root))
    assert code == 1 and "error   engine.name: torch is not usable in" in out, out


def test_findings_stream_while_the_environment_probe_is_still_running(sample, tmp_path):
    """The probe waits for a file this test creates only once it has read doctor's first findings."""
    release = tmp_path / "release-the-probe"
    code = f"""
import sys, time
from pathlib import Path
from kimi_tui.engines import whisper_preflight as wp
def waiting_probe(python=None, timeout=None):
    deadline = time.monotonic() + 60
    while not Path({str(release)!r}).exists():
        if time.monotonic() > deadline:
            return {{"error": "the test never released the probe", "kind": "failed"}}
        time.sleep(0.02)
    return {HEALTHY!r}
wp.probe_environment = waiting_probe
from kimi_tui.cli import main
sys.exit(main(["doctor", "--project", {str(sample.root)!r}]))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "0"})
    before, running, rest, err = read_then_release(proc, "  ... importing torch", release)
    assert running, "".join(before) + rest + err  # the findings came while the probe still waited
    assert before[0].startswith("doctor: checking the whisper engine")
    assert any(x.startswith("note    train.save_steps: 200 optimizer steps") for x in before), before
    assert proc.returncode == 0, "".join(before) + rest + err
    assert "engine.name: " in rest and "never released" not in rest
    assert rest.rstrip().endswith("no errors: the setup looks runnable.")
