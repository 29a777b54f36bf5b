"""The whisper engine's worker: its subcommands run as real subprocesses.

A tiny model (d_model 64, one layer) on the bundled sample clips keeps the fast
tests to seconds each; the acceptance run (recommended tiny defaults memorise
the 9 training clips) is marked slow.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
WORKER = "kimi_tui.workers.whisper_worker"


def write_jsonl(path: Path, csv_name: str, column: str, audio_dir: str, limit: int | None = None) -> list[dict]:
    rows = list(csv.DictReader(open(SAMPLE / csv_name, encoding="utf-8")))[:limit]
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            record = {
                "id": row["id"],
                "task_type": "understanding",
                "conversation": [
                    {"role": "user", "message_type": "text", "content": "请将语音内容转录为文字。"},
                    {"role": "user", "message_type": "audio", "content": str(SAMPLE / audio_dir / f"{row['id']}.wav")},
                    {"role": "assistant", "message_type": "text", "content": row[column]},
                ],
            }
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return [{"id": r["id"], "text": r[column]} for r in rows]


def run_worker(*args: str, events: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("KIMI_TUI_EVENTS", None)
    if events is not None:
        env["KIMI_TUI_EVENTS"] = str(events)
    proc = subprocess.run(
        [sys.executable, "-m", WORKER, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600
    )
    if check:
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> dict:
    """extract + convert once: 9 training clips, 3 test clips, a very small tiny model."""
    root = tmp_path_factory.mktemp("whisper")
    train_rows = write_jsonl(root / "train.jsonl", "split_lingyin_audio_test.csv", "text", "audio")
    test_rows = write_jsonl(root / "test.jsonl", "split_lingyin_audio_answer.csv", "answer", "test_audio", limit=3)
    events = root / "events.jsonl"
    run_worker(
        "extract", "--model", "tiny", "--train-jsonl", str(root / "train.jsonl"),
        "--test-jsonl", str(root / "test.jsonl"), "--output", str(root / "features"), events=events,
    )
    run_worker(
        "convert", "--model", "tiny", "--train-jsonl", str(root / "train.jsonl"), "--features", str(root / "features"),
        "--output", str(root / "base"), "--seed", "0", "--d-model", "64", "--layers", "1", "--heads", "2",
        events=events,
    )
    return {"root": root, "train_rows": train_rows, "test_rows": test_rows, "events": events}


@pytest.fixture(scope="module")
def trained(prepared) -> dict:
    """A short train run: 2 epochs of batches of 3 = 6 steps, a checkpoint every 2."""
    root = prepared["root"]
    events = root / "train_events.jsonl"
    proc = run_worker(
        "train", "--model", str(root / "base"), "--features", str(root / "features"), "--output", str(root / "train"),
        "--epochs", "2", "--learning-rate", "1e-3", "--batch-size", "3", "--gradient-accumulation-steps", "1",
        "--weight-decay", "0", "--warmup-ratio", "0.1", "--lr-scheduler", "linear", "--save-steps", "2",
        "--save-total-limit", "3", "--logging-steps", "1", "--seed", "0", "--device", "cpu",
        events=events,
    )
    return {**prepared, "train_out": root / "train", "train_events": events, "train_stdout": proc.stdout}


def test_char_tokenizer_round_trip(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from kimi_tui.workers.whisper_worker import build_char_tokenizer

    tokenizer = build_char_tokenizer(["今天天气很好", "我想学习中文"])
    tokenizer.save_pretrained(str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert len(loaded) == 4 + len(set("今天天气很好我想学习中文"))
    assert [loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id, loaded.unk_token_id] == [0, 1, 2, 3]
    ids = loaded("今天学中文", add_special_tokens=False)["input_ids"]
    assert len(ids) == 5 and loaded.unk_token_id not in ids
    assert ids == tokenizer("今天学中文", add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == "今天学中文"
    assert loaded.decode([loaded.bos_token_id, *ids, loaded.eos_token_id, 0], skip_special_tokens=True) == "今天学中文"
    assert loaded("今天下雨", add_special_tokens=False)["input_ids"][2:] == [loaded.unk_token_id] * 2


def test_extract_saves_features_and_feature_extractor(prepared) -> None:
    import torch

    features = prepared["root"] / "features"
    train = torch.load(features / "train.pt", weights_only=True)
    assert train["ids"] == [r["id"] for r in prepared["train_rows"]]
    assert train["texts"] == [r["text"] for r in prepared["train_rows"]]
    # longest training clip is 3.1 s: chunk 4 s + 1 s margin = 500 frames
    assert train["chunk_length"] == 5
    mel = train["features"]["lingyin_train_001"]
    assert mel.dtype == torch.float16 and tuple(mel.shape) == (80, 500)
    assert len(torch.load(features / "test.pt", weights_only=True)["ids"]) == 3
    config = json.loads((features / "feature_extractor" / "preprocessor_config.json").read_text())
    assert config["feature_size"] == 80 and config["chunk_length"] == 5
    progress = [e for e in read_events(prepared["events"]) if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == 12


def test_convert_builds_model_whose_vocab_matches_transcripts(prepared) -> None:
    from transformers import AutoTokenizer

    base = prepared["root"] / "base"
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    chars = {ch for row in prepared["train_rows"] for ch in row["text"]}
    vocab = tokenizer.get_vocab()
    assert set(vocab) == chars | {"<pad>", "<s>", "</s>", "<unk>"}
    config = json.loads((base / "config.json").read_text())
    assert config["vocab_size"] == len(vocab)
    assert config["max_source_positions"] == 250
    assert config["decoder_start_token_id"] == tokenizer.bos_token_id
    assert config["eos_token_id"] == tokenizer.eos_token_id and config["pad_token_id"] == tokenizer.pad_token_id
    assert config["suppress_tokens"] == [] and not config.get("begin_suppress_tokens")
    meta = json.loads((base / "kimi_tui_model.json").read_text())
    assert meta["kind"] == "tiny" and meta["vocab_size"] == len(vocab) and meta["parameters"] > 0
    assert (base / "model.safetensors").is_file() and (base / "preprocessor_config.json").is_file()


def test_train_leaves_checkpoints_and_final(trained) -> None:
    out = trained["train_out"]
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in checkpoints] == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    for folder in checkpoints:
        assert (folder / "trainer_state.json").is_file()
        assert (folder / "model.safetensors").is_file()
    final = out / "final"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "kimi_tui_model.json"):
        assert (final / name).is_file(), name
    events = read_events(trained["train_events"])
    metrics = [e for e in events if e["type"] == "metric" and "loss" in e]
    assert len(metrics) == 6 and all("learning_rate" in m and "grad_norm" in m for m in metrics)
    assert any(e["type"] == "progress" and e["step"] == 6 and e["total"] == 6 for e in events)
    artifacts = [(e["kind"], e.get("step")) for e in events if e["type"] == "artifact"]
    assert ("checkpoint", 2) in artifacts and ("model", 6) in artifacts
    assert "step 6/6 loss" in trained["train_stdout"]


def test_export_makes_self_contained_folder(trained) -> None:
    out = trained["root"] / "export"
    run_worker(
        "export", "--input", str(trained["train_out"] / "checkpoint-4"), "--output", str(out),
        "--dtype", "float16", "--base", str(trained["root"] / "base"),
    )
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "preprocessor_config.json", "kimi_tui_model.json"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "kimi_tui_model.json").read_text())
    assert meta["kind"] == "tiny" and meta["dtype"] == "float16"


def test_transcribe_writes_one_line_per_utterance_per_model(trained) -> None:
    root = trained["root"]
    events = root / "transcribe_events.jsonl"
    out = root / "predictions"
    run_worker(
        "transcribe", "--model", f"base={root / 'base'}", "--model", f"ckpt={trained['train_out'] / 'checkpoint-2'}",
        "--jsonl", f"train={root / 'train.jsonl'}", "--jsonl", f"test={root / 'test.jsonl'}",
        "--output", str(out), "--batch-size", "4", "--max-new-tokens", "8", "--device", "cpu",
        "--base", str(root / "base"), events=events,
    )
    expected = [("train", r["id"], r["text"]) for r in trained["train_rows"]]
    expected += [("test", r["id"], r["text"]) for r in trained["test_rows"]]
    for name in ("base", "ckpt"):
        lines = [json.loads(x) for x in (out / name / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [(x["split"], x["id"], x["reference"]) for x in lines] == expected
        for line in lines:
            assert line["model"] == name and Path(line["audio"]).is_file()
            assert isinstance(line["hypothesis"], str) and "<|" not in line["hypothesis"]
            assert len(line["hypothesis"]) <= 8 and line["seconds"] >= 0
    progress = [e for e in read_events(events) if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == 2 * 12


def test_bad_input_exits_non_zero_with_one_line_message(tmp_path) -> None:
    proc = run_worker(
        "extract", "--model", "tiny", "--train-jsonl", str(tmp_path / "missing.jsonl"),
        "--output", str(tmp_path / "out"), events=tmp_path / "events.jsonl", check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: extract: JSONL file not found: {tmp_path / 'missing.jsonl'}"]
    events = read_events(tmp_path / "events.jsonl")
    assert events[-1]["type"] == "error" and "JSONL file not found" in events[-1]["message"]


def test_resume_skips_a_half_written_checkpoint(tmp_path) -> None:
    from kimi_tui.workers.whisper_worker import last_complete_checkpoint

    def checkpoint(step: int, *files: str) -> None:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in files:
            (folder / name).write_text("x")

    checkpoint(10, "model.safetensors", "optimizer.pt", "trainer_state.json")
    checkpoint(20, "model.safetensors", "optimizer.pt", "trainer_state.json")
    checkpoint(30, "model.safetensors")  # killed while saving: no optimizer state, no trainer_state.json
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-20"
    assert last_complete_checkpoint(tmp_path / "nothing-here") is None
