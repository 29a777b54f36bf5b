"""The rules both workers and the core share (kimi_tui/workers/runtime.py) agree wherever they are read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kimi_tui.checkpoints import inspect_checkpoint, list_checkpoints
from kimi_tui.data.kimi_jsonl import inspect_sample as core_inspect_sample
from kimi_tui.evaluate.textfile import read_id_text
from kimi_tui.lint import _complete_checkpoints
from kimi_tui.workers import kimi_audio_worker, runtime
from kimi_tui.workers.whisper_worker import last_complete_checkpoint, read_kimi_jsonl


def test_the_runtime_imports_only_the_standard_library():
    code = ("import sys; before = set(sys.modules); import kimi_tui.workers.runtime; "
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert loaded - set(sys.stdlib_module_names) <= {"kimi_tui"}, loaded


def test_one_rule_for_id_audio_and_reference_in_every_reader(tmp_path):
    """An assistant audio message after the transcript (a speech-out sample) is not the reference:
    the scorer took the last assistant message of any type, the transcriber the last text one."""
    clip = tmp_path / "clip-7.wav"
    clip.write_bytes(b"RIFF")
    sample = {"conversation": [
        {"role": "user", "message_type": "text", "content": "请转写"},
        {"role": "user", "message_type": "audio", "content": str(clip)},
        {"role": "assistant", "message_type": "text", "content": "你好"},
        {"role": "assistant", "message_type": "audio", "content": str(tmp_path / "reply.wav")},
    ]}
    jsonl = tmp_path / "test.jsonl"
    jsonl.write_text(json.dumps(sample, ensure_ascii=False) + "\n", encoding="utf-8")

    shape = core_inspect_sample(sample)
    assert shape is not None and (shape.key, shape.transcript) == ("clip-7", "你好")
    assert read_id_text(jsonl)[0] == {"clip-7": "你好"}
    assert read_kimi_jsonl(jsonl) == [{"id": "clip-7", "audio": str(clip), "text": "你好"}]
    assert kimi_audio_worker.sample_id(sample) == "clip-7"
    assert core_inspect_sample is runtime.inspect_sample


def test_an_own_id_wins_over_the_audio_file_name(tmp_path):
    sample = {"id": "u1", "conversation": [{"role": "user", "message_type": "audio", "content": "/x/a.wav"},
                                           {"role": "assistant", "message_type": "text", "content": "一"}]}
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps(sample, ensure_ascii=False) + "\n", encoding="utf-8")
    assert runtime.inspect_sample(sample).key == kimi_audio_worker.sample_id(sample) == "u1"
    assert read_id_text(jsonl)[0] == {"u1": "一"}


def _checkpoint(root: Path, step: int, *files: str) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}" if name.endswith(".json") else "x")
    return folder


def test_one_definition_of_a_complete_checkpoint(tmp_path):
    training = tmp_path / "training"
    _checkpoint(training, 10, "model.safetensors", "trainer_state.json", "optimizer.pt")
    _checkpoint(training, 20, "model.safetensors", "trainer_state.json")  # complete, not resumable
    _checkpoint(training, 30, "trainer_state.json", "global_step30/mp_rank_00_model_states.pt",
                "global_step30/bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt")  # DeepSpeed's layout
    _checkpoint(training, 40, "model.safetensors")  # cut short before trainer_state.json
    _checkpoint(training, 50, "trainer_state.json", "optimizer.pt")  # no weights

    stat_only = {f.name for f in runtime.complete_checkpoints(training).values()}
    reading = {c.name for c in list_checkpoints(training, include_incomplete=False)}
    assert stat_only == reading == _complete_checkpoints(training) == {"checkpoint-10", "checkpoint-20", "checkpoint-30"}
    assert sorted(runtime.complete_checkpoints(training, resumable=True)) == [10, 30]
    assert last_complete_checkpoint(training).name == "checkpoint-30"
    assert inspect_checkpoint(training / "checkpoint-40")[1] == "incomplete: no trainer_state.json"
    assert runtime.complete_checkpoints(tmp_path / "nothing-here") == {}


class Events:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)


def _raise(exc: BaseException):
    def body():
        raise exc
    return body


@pytest.mark.parametrize(("exc", "code", "event"), [
    (runtime.WorkerError("no such file"), 2, "train: no such file"),
    (KeyboardInterrupt(), 130, "train: interrupted"),
    (RuntimeError("boom"), 1, "train crashed: RuntimeError: boom"),
])
def test_run_command_turns_what_a_command_raises_into_its_exit_status(exc, code, event, capsys):
    events = Events()
    status = runtime.run_command(_raise(exc), events, failed=lambda m: (f"error: train: {m}", f"train: {m}"),
                                 crashed=lambda e: ("error: crashed", f"train crashed: {type(e).__name__}: {e}"),
                                 stopped=("", "train: interrupted"))
    assert (status, events.errors) == (code, [event])
    assert runtime.run_command(lambda: None, events, failed=lambda m: (m, m)) == 0


def test_without_a_crash_formatter_an_unexpected_error_keeps_pythons_own_traceback():
    with pytest.raises(RuntimeError):
        runtime.run_command(_raise(RuntimeError("boom")), Events(), failed=lambda m: (m, m))
