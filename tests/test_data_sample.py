"""The bundled Lingyin sample must always import cleanly: it is the demo path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kimi_tui.data import load_split

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def test_bundled_train_split_loads_without_findings():
    m = load_split("train", csv_path=SAMPLE / "split_lingyin_audio_test.csv", audio_dir=SAMPLE / "audio")
    assert m.n_rows == 9
    assert [u.id for u in m.utterances] == [f"lingyin_train_{i:03d}" for i in range(1, 10)]
    assert m.errors == [] and m.warnings == [] and m.findings == []
    first = m.utterances[0]
    assert first.text == "今天天气很好"
    assert first.line == 2
    assert Path(first.audio).is_absolute() and Path(first.audio).name == "lingyin_train_001.wav"
    assert first.sample_rate == 16000 and first.channels == 1
    assert first.duration_s == pytest.approx(first.frames / 16000)


def test_bundled_test_split_loads_answer_column():
    m = load_split("test", csv_path=SAMPLE / "split_lingyin_audio_answer.csv", audio_dir=SAMPLE / "test_audio")
    assert len(m.utterances) == 10
    assert m.errors == []
    assert m.utterances[-1].id == "lingyin_test_010"
    assert m.utterances[-1].text == "他要去散步"


def test_manifest_to_dict_is_json_serialisable():
    m = load_split("test", csv_path=SAMPLE / "split_lingyin_audio_answer.csv", audio_dir=SAMPLE / "audio")
    d = m.to_dict()
    text = json.dumps(d, ensure_ascii=False)
    assert json.loads(text)["counts"]["error"] == 10
    assert d["n_utterances"] == 0 and d["n_rows"] == 10
    assert d["findings"][1]["code"] == "missing_audio" and d["findings"][1]["line"] == 2
    # pointing a split at the wrong folder gets one summary warning on top of the per-row errors
    assert any(f["code"] == "no_audio_matched" for f in d["findings"])
