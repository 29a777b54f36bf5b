"""Kimi-format JSONL: what we write is exactly what the finetune code reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio_files import wav
from kimi_tui.data import load_split, read_kimi_jsonl, write_kimi_jsonl
from kimi_tui.errors import DataError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def sample(audio, text, *, extra_audio=None, sid=None) -> dict:
    conv = [
        {"role": "user", "message_type": "text", "content": "转写"},
        {"role": "user", "message_type": "audio", "content": audio},
    ]
    if extra_audio:
        conv.append({"role": "user", "message_type": "audio", "content": extra_audio})
    conv.append({"role": "assistant", "message_type": "text", "content": text})
    out = {"task_type": "understanding", "conversation": conv}
    if sid is not None:
        out["id"] = sid
    return out


def test_write_kimi_jsonl_shape(tmp_path):
    m = load_split("train", csv_path=SAMPLE / "split_lingyin_audio_test.csv", audio_dir=SAMPLE / "audio")
    out = tmp_path / "out" / "train.jsonl"
    n = write_kimi_jsonl(m.utterances, out, instruction="请把这段话写下来")
    assert n == 9
    raw = out.read_text(encoding="utf-8")
    lines = raw.splitlines()
    assert len(lines) == 9 and raw.endswith("\n")
    assert "今天天气很好" in lines[0]  # not \\u-escaped
    first = json.loads(lines[0])
    u = m.utterances[0]
    assert first == {
        "task_type": "understanding",
        "conversation": [
            {"role": "user", "message_type": "text", "content": "请把这段话写下来"},
            {"role": "user", "message_type": "audio", "content": u.audio},
            {"role": "assistant", "message_type": "text", "content": "今天天气很好"},
        ],
        "id": "lingyin_train_001",
    }
    assert Path(first["conversation"][1]["content"]).is_absolute()
    assert read_kimi_jsonl(out) == [json.loads(line) for line in lines]
    # round trip: the written file imports again with the same utterances
    again = load_split("train", jsonl_path=out)
    assert [(x.id, x.text, x.audio) for x in again.utterances] == [(x.id, x.text, x.audio) for x in m.utterances]
    assert again.findings == []


def test_jsonl_import_good_broken_two_audios_relative(tmp_path):
    d = tmp_path / "data"
    a = wav(d / "wavs" / "a.wav")
    b = wav(d / "wavs" / "b.wav")
    c = wav(tmp_path / "elsewhere" / "c.wav")
    lines = [
        json.dumps(sample("wavs/a.wav", "你好"), ensure_ascii=False),           # 1 relative, id from stem
        '{"task_type": "understanding", "conversation": [',                     # 2 broken JSON
        json.dumps(sample(str(b), "两个", extra_audio=str(c), sid="two")),      # 3 two audios
        "",                                                                      # 4 blank: ignored
        json.dumps(sample(str(c), "再见", sid="c-id"), ensure_ascii=False),      # 5 absolute, explicit id
        json.dumps({"task_type": "understanding", "conversation": [             # 6 no assistant text
            {"role": "user", "message_type": "audio", "content": str(a)}]}),
        json.dumps({"task_type": "understanding"}),                              # 7 no conversation
        json.dumps(sample("wavs/missing.wav", "缺")),                            # 8 missing audio
    ]
    p = d / "train.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    m = load_split("train", jsonl_path=p)
    assert [(u.id, u.text, u.audio, u.line) for u in m.utterances] == [
        ("a", "你好", str(a), 1),
        ("c-id", "再见", str(c), 5),
    ]
    assert [(f.line, f.code) for f in m.errors] == [
        (2, "bad_json"), (3, "multiple_audio"), (6, "bad_sample"), (7, "bad_sample"), (8, "missing_audio"),
    ]
    msgs = {f.line: f.message for f in m.errors}
    assert msgs[2].startswith("train.jsonl line 2: ")
    assert "(id two)" in msgs[3] and "2 audio messages" in msgs[3]
    assert "assistant text" in msgs[6]
    assert '"conversation"' in msgs[7]
    assert f"audio file wavs/missing.wav (a relative path) is not found in the JSONL's folder {d}" in msgs[8]
    (missing,) = [f for f in m.errors if f.line == 8]
    assert missing.audio == str(d / "wavs" / "missing.wav")
    (base,) = [f for f in m.findings if f.code == "audio_base"]  # where the relative path was read from
    assert (base.level, base.line) == ("note", None) and f"read from the JSONL's folder {d}" in base.message
    assert m.n_rows == 7


def test_jsonl_audio_path_with_a_nul_is_a_finding_on_its_line(tmp_path):
    # "\u0000" is valid JSON; os.path calls raise ValueError on it (a hypothesis run found "~\x00").
    a = wav(tmp_path / "a.wav")
    p = tmp_path / "train.jsonl"
    p.write_text("\n".join(json.dumps(sample(path, "你好")) for path in (str(a), "~\x00", "wavs/a\x00.wav")) + "\n",
                 encoding="utf-8")
    m = load_split("train", jsonl_path=p)
    assert [u.line for u in m.utterances] == [1]
    assert [(f.line, f.code) for f in m.errors] == [(2, "bad_sample"), (3, "bad_sample")]
    assert all("contains a NUL character" in f.message for f in m.errors)


def test_jsonl_duplicate_ids_reported(tmp_path):
    a = wav(tmp_path / "x" / "a.wav")
    b = wav(tmp_path / "y" / "a.wav")
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(sample(str(a), "一")) + "\n" + json.dumps(sample(str(b), "二")) + "\n")
    m = load_split("t", jsonl_path=p)
    assert [u.audio for u in m.utterances] == [str(a)]
    assert [(f.line, f.code) for f in m.errors] == [(2, "duplicate_id")]


def test_read_kimi_jsonl_names_broken_line(tmp_path):
    p = tmp_path / "k.jsonl"
    p.write_text('{"a": 1}\n\n{"b": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 3"):
        read_kimi_jsonl(p)
    with pytest.raises(DataError, match="does not exist"):
        read_kimi_jsonl(tmp_path / "none.jsonl")


def test_jsonl_that_is_really_a_csv(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text("id,text\na,b\n")
    with pytest.raises(DataError, match="CSV"):
        load_split("t", jsonl_path=p)


def test_leakage_follows_links_and_ignores_same_sized_other_audio(tmp_path):
    from kimi_tui.data import check_leakage

    a = wav(tmp_path / "train" / "a.wav", seconds=0.5)
    other = tmp_path / "test" / "other.wav"
    other.parent.mkdir()
    import numpy as np
    import soundfile as sf
    sf.write(other, np.full(8000, 7, dtype=np.int16), 16000, subtype="PCM_16")  # a's size, not a's samples
    (tmp_path / "test" / "link.wav").symlink_to(a)
    (tmp_path / "train.jsonl").write_text(json.dumps(sample(str(a), "一", sid="x")) + "\n")
    (tmp_path / "test.jsonl").write_text(
        json.dumps(sample(str(tmp_path / "test" / "link.wav"), "一", sid="l")) + "\n"
        + json.dumps(sample(str(other), "二", sid="o")) + "\n")
    train = load_split("train", jsonl_path=tmp_path / "train.jsonl")
    test = load_split("test", jsonl_path=tmp_path / "test.jsonl")
    check_leakage(train, test)
    assert [(f.code, f.utt_id) for f in test.findings] == [("train_test_audio", "l")]
    assert [u.id for u in test.utterances] == ["o"] and list(test.audio_info) == [str(other)]
    assert [u.id for u in train.utterances] == ["x"] and train.findings == []
