"""Audio checks: each bad clip is one finding naming the row and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_files import wav
from kimi_tui.data import probe_audio
from kimi_tui.data import load_split
from kimi_tui.errors import DataError




@pytest.fixture
def manifest(tmp_path: Path):
    d = tmp_path / "audio"
    wav(d / "ok.wav")
    wav(d / "low.wav", sr=8000)
    wav(d / "hi_stereo.wav", sr=48000, channels=2)
    wav(d / "empty.wav", seconds=0)
    (d / "fake.wav").write_text("this is not audio\n")
    (d / "talk.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 64)
    wav(d / "long.wav", seconds=31)
    rows = ["ok", "low", "hi_stereo", "empty", "fake", "talk", "long"]
    csv_path = tmp_path / "clips.csv"
    csv_path.write_text("id,text\n" + "".join(f"{r},文本{r}\n" for r in rows), encoding="utf-8")
    return load_split("t", csv_path=csv_path, audio_dir=d, max_duration_s=30.0), d


def test_audio_findings(manifest):
    m, d = manifest
    assert [u.id for u in m.utterances] == ["ok", "low", "hi_stereo"]
    got = [(f.line, f.level, f.code) for f in m.findings]
    assert got == [
        (3, "note", "resampled"),
        (4, "note", "stereo"),
        (4, "note", "resampled"),
        (5, "error", "empty_audio"),
        (6, "error", "unreadable_audio"),
        (7, "error", "unreadable_audio"),
        (8, "error", "too_long"),
    ]
    for f in m.findings:
        assert f.message.startswith(f"clips.csv line {f.line} (id {f.utt_id}): ")
        assert f.audio and f.audio in f.message and Path(f.audio).is_absolute()
    by_code = {f.code: f for f in m.findings}
    assert "8000 Hz" in by_code["resampled"].message
    assert "split" in by_code["too_long"].fix.lower() and "31.0 s" in by_code["too_long"].message
    m4a = next(f for f in m.errors if f.utt_id == "talk")
    assert "ffmpeg" in m4a.fix and "16000" in m4a.fix
    lo = next(u for u in m.utterances if u.id == "low")
    assert (lo.sample_rate, lo.channels) == (8000, 1)
    st = next(u for u in m.utterances if u.id == "hi_stereo")
    assert (st.sample_rate, st.channels, st.frames) == (48000, 2, 12000)


def test_max_duration_is_configurable(tmp_path):
    d = tmp_path / "a"
    wav(d / "x.wav", seconds=2)
    p = tmp_path / "t.csv"
    p.write_text("id,text\nx,一\n", encoding="utf-8")
    assert load_split("t", csv_path=p, audio_dir=d, max_duration_s=1.0).errors[0].code == "too_long"
    assert load_split("t", csv_path=p, audio_dir=d, max_duration_s=3.0).errors == []


def test_probe_audio_reads_header(tmp_path):
    info = probe_audio(wav(tmp_path / "s.wav", seconds=0.5, sr=48000, channels=2))
    assert (info.sample_rate, info.channels, info.frames) == (48000, 2, 24000)
    assert info.duration_s == pytest.approx(0.5)
    assert info.format == "WAV" and info.subtype == "PCM_16"
    (tmp_path / "t.wav").write_text("nope")
    with pytest.raises(DataError, match="t.wav"):
        probe_audio(tmp_path / "t.wav")
    with pytest.raises(DataError):
        probe_audio(tmp_path / "missing.wav")
