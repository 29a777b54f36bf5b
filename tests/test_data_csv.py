"""CSV ingest as users hit it: spreadsheet encodings, odd headers, loose ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from audio_files import wav
from kimi_tui.data import load_split
from kimi_tui.errors import DataError




def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    for name in ("a001", "a002", "a003"):
        wav(d / f"{name}.wav")
    return d


def codes(m) -> list[str]:
    return [f.code for f in m.findings]


@pytest.mark.parametrize("header", ["音频ID,转录文本", "id,text"])
def test_gbk_csv_with_one_missing_audio(tmp_path, audio, header):
    csv_path = write(
        tmp_path / "train.csv",
        f"{header}\na001,今天天气很好\nzz404,这条没有音频\na002,请把窗户打开\n",
        encoding="gbk",
    )
    assert not csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    m = load_split("train", csv_path=csv_path, audio_dir=audio)
    assert [u.id for u in m.utterances] == ["a001", "a002"]
    assert [u.text for u in m.utterances] == ["今天天气很好", "请把窗户打开"]
    assert len(m.errors) == 1
    err = m.errors[0]
    assert err.code == "missing_audio"
    assert err.line == 3 and err.utt_id == "zz404"
    assert "train.csv" in err.message and "line 3" in err.message and "zz404" in err.message
    assert str(audio) in err.message
    assert err.source == str(csv_path)
    assert err.fix
    assert m.n_rows == 3


def test_utf8_bom_header_is_clean(tmp_path, audio):
    csv_path = write(tmp_path / "t.csv", "id,text\na001,你好\n", encoding="utf-8-sig")
    assert csv_path.read_bytes().startswith(b"\xef\xbb\xbf")
    m = load_split("train", csv_path=csv_path, audio_dir=audio)
    assert [(u.id, u.text) for u in m.utterances] == [("a001", "你好")]
    # the override must match the clean name: the BOM is not part of the column
    m2 = load_split("train", csv_path=csv_path, audio_dir=audio, id_column="id", text_column="text")
    assert len(m2.utterances) == 1


def test_forced_encoding_and_undecodable_file(tmp_path, audio):
    p = write(tmp_path / "t.csv", "id,text\na001,你好\n", encoding="gbk")
    assert load_split("t", csv_path=p, audio_dir=audio, encoding="gbk").utterances[0].text == "你好"
    with pytest.raises(DataError, match="utf-8"):
        load_split("t", csv_path=p, audio_dir=audio, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,text\na001,\xff\xfe\xff\n")
    with pytest.raises(DataError, match="encoding"):
        load_split("t", csv_path=bad, audio_dir=audio)


@pytest.mark.parametrize("sep", ["\t", ";"])
def test_tab_and_semicolon_delimiters(tmp_path, audio, sep):
    p = write(tmp_path / "t.csv", f"id{sep}text\na001{sep}你好, 世界\na002{sep}再见\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [(u.id, u.text) for u in m.utterances] == [("a001", "你好, 世界"), ("a002", "再见")]
    assert m.findings == []


def test_quotes_and_commas_inside_transcripts(tmp_path, audio):
    p = write(tmp_path / "t.csv", 'id,text\na001,"他说:""你好,世界"""\na002,"a, b, c"\n')
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [u.text for u in m.utterances] == ['他说:"你好,世界"', "a, b, c"]
    assert m.findings == []


def test_unquoted_comma_in_two_column_file_is_kept_with_warning(tmp_path, audio):
    p = write(tmp_path / "t.csv", "id,text\na001,你好,世界\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert m.utterances[0].text == "你好,世界"
    assert codes(m) == ["unquoted_delimiter"]
    assert m.warnings[0].line == 2


def test_ids_with_leading_zeros_stay_strings(tmp_path):
    d = tmp_path / "audio"
    wav(d / "0001.wav")
    wav(d / "0002.wav")
    p = write(tmp_path / "t.csv", "id,text\n0001,一\n0002,二\n")
    m = load_split("t", csv_path=p, audio_dir=d)
    assert [u.id for u in m.utterances] == ["0001", "0002"]
    assert m.findings == []


def test_ids_with_and_without_extension_and_nested_folders(tmp_path):
    d = tmp_path / "audio"
    wav(d / "top.wav")
    wav(d / "spk1" / "deep.wav")
    wav(d / "spk2" / "sess" / "deeper.flac")
    wav(d / "spk3" / "byrel.wav")
    p = write(
        tmp_path / "t.csv",
        "id,text\ntop.wav,一\ndeep,二\nspk2/sess/deeper.flac,三\nspk3/byrel,四\nspk1\\deep.wav,五\n",
    )
    m = load_split("t", csv_path=p, audio_dir=d)
    got = {u.id: Path(u.audio).relative_to(d).as_posix() for u in m.utterances}
    assert got == {
        "top.wav": "top.wav",
        "deep": "spk1/deep.wav",
        "spk2/sess/deeper.flac": "spk2/sess/deeper.flac",
        "spk3/byrel": "spk3/byrel.wav",
        "spk1\\deep.wav": "spk1/deep.wav",
    }
    assert m.errors == []
    # two rows using the same file is suspicious but not fatal
    assert codes(m) == ["duplicate_audio"]


def test_absolute_paths_in_id_column(tmp_path):
    elsewhere = wav(tmp_path / "elsewhere" / "x.wav")
    d = tmp_path / "audio"
    d.mkdir()
    p = write(tmp_path / "t.csv", f"path,text\n{elsewhere},一\n")
    m = load_split("t", csv_path=p, audio_dir=d)
    assert [u.audio for u in m.utterances] == [str(elsewhere)]


def test_ambiguous_stem_in_two_folders(tmp_path):
    d = tmp_path / "audio"
    a = wav(d / "day1" / "clip.wav")
    b = wav(d / "day2" / "clip.wav")
    p = write(tmp_path / "t.csv", "id,text\nclip,一\nday2/clip,二\n")
    m = load_split("t", csv_path=p, audio_dir=d)
    assert [u.id for u in m.utterances] == ["day2/clip"]
    (err,) = m.errors
    assert err.code == "ambiguous_audio" and err.line == 2
    assert str(a) in err.message and str(b) in err.message


def test_duplicate_ids_and_empty_transcripts(tmp_path, audio):
    p = write(tmp_path / "t.csv", "id,text\na001,一\na002,   \na001,再来\na003,\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [u.id for u in m.utterances] == ["a001"]
    by_line = {(f.line, f.code) for f in m.errors}
    assert by_line == {(3, "empty_transcript"), (4, "duplicate_id"), (5, "empty_transcript")}
    dup = next(f for f in m.errors if f.code == "duplicate_id")
    assert "line 2" in dup.message.split(":", 1)[1]  # names the first occurrence
    assert [f.line for f in m.findings] == sorted(f.line for f in m.findings)


def test_column_override_and_suggestion(tmp_path, audio):
    p = write(tmp_path / "t.csv", "clip_name,speaker,transcript_final\na001,s1,你好\n")
    m = load_split("t", csv_path=p, audio_dir=audio, id_column="clip_name", text_column="transcript_final")
    assert [(u.id, u.text) for u in m.utterances] == [("a001", "你好")]
    with pytest.raises(DataError) as exc:
        load_split("t", csv_path=p, audio_dir=audio, id_column="clip_nmae", text_column="transcript_final")
    msg = str(exc.value)
    assert "clip_nmae" in msg and "'clip_name'" in msg and "'speaker'" in msg
    assert "Did you mean 'clip_name'" in msg


def test_header_matching_nothing_lists_columns(tmp_path, audio):
    p = write(tmp_path / "t.csv", "foo,bar,baz\nx,y,z\n")
    with pytest.raises(DataError) as exc:
        load_split("t", csv_path=p, audio_dir=audio)
    msg = str(exc.value)
    assert "'foo', 'bar', 'baz'" in msg
    assert "data.id_column" in msg and "data.text_column" in msg and "kimi-tui.toml" in msg


def test_two_unknown_columns_matching_audio_are_used_with_note(tmp_path, audio):
    p = write(tmp_path / "t.csv", "clip,words\na001,一\na002,二\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [u.id for u in m.utterances] == ["a001", "a002"]
    assert codes(m) == ["column_guess"] and m.notes[0].level == "note"


def test_headerless_csv(tmp_path, audio):
    p = write(tmp_path / "t.csv", "a001,一\na002,二\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [(u.id, u.text, u.line) for u in m.utterances] == [("a001", "一", 1), ("a002", "二", 2)]
    assert codes(m) == ["no_header"]


def test_separate_path_column_is_used_for_audio(tmp_path):
    d = tmp_path / "audio"
    wav(d / "rec_17.wav")
    p = write(tmp_path / "t.csv", "id,audio_path,text\nutt1,rec_17.wav,你好\n")
    m = load_split("t", csv_path=p, audio_dir=d)
    assert [(u.id, Path(u.audio).name) for u in m.utterances] == [("utt1", "rec_17.wav")]


def test_whole_file_problems_raise(tmp_path, audio):
    with pytest.raises(DataError, match="does not exist"):
        load_split("t", csv_path=tmp_path / "nope.csv", audio_dir=audio)
    empty = write(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty"):
        load_split("t", csv_path=empty, audio_dir=audio)
    xlsx = tmp_path / "t.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    with pytest.raises(DataError, match="Excel"):
        load_split("t", csv_path=xlsx, audio_dir=audio)
    header_only = write(tmp_path / "h.csv", "id,text\n")
    with pytest.raises(DataError, match="no data rows"):
        load_split("t", csv_path=header_only, audio_dir=audio)
    ok = write(tmp_path / "ok.csv", "id,text\na001,一\n")
    with pytest.raises(DataError, match="audio folder"):
        load_split("t", csv_path=ok, audio_dir=tmp_path / "missing_dir")


def test_symlink_loop_in_audio_folder(tmp_path, audio):
    (audio / "loop").symlink_to(audio, target_is_directory=True)
    p = write(tmp_path / "t.csv", "id,text\na001,一\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [u.id for u in m.utterances] == ["a001"]
    assert m.errors == []


def test_headerless_csv_whose_first_audio_is_missing(tmp_path, audio):
    p = write(tmp_path / "t.csv", "a009,九\na001,一\na002,二\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [u.id for u in m.utterances] == ["a001", "a002"]
    assert [(f.line, f.code) for f in m.findings] == [(1, "missing_audio"), (1, "no_header")]


def test_excel_sep_line_and_trailing_empty_cells(tmp_path, audio):
    p = write(tmp_path / "t.csv", "sep=;\r\nid;text;;\r\na001;一;;\r\n;;;\r\na002;二;;\r\n", encoding="gbk")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [(u.id, u.text, u.line) for u in m.utterances] == [("a001", "一", 3), ("a002", "二", 5)]
    assert m.findings == []


def test_absolute_path_from_another_machine_falls_back_to_file_name(tmp_path, audio):
    p = write(tmp_path / "t.csv", "path,text\n/home/someone/data/a001.wav,一\nC:\\data\\a002.wav,二\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [Path(u.audio).name for u in m.utterances] == ["a001.wav", "a002.wav"]
    assert [(f.level, f.code) for f in m.findings] == [("note", "audio_path_guessed")] * 2


def test_extension_mismatch_uses_converted_file_with_note(tmp_path, audio):
    p = write(tmp_path / "t.csv", "id,text\na001.mp3,一\n")
    m = load_split("t", csv_path=p, audio_dir=audio)
    assert [Path(u.audio).name for u in m.utterances] == ["a001.wav"]
    assert [f.code for f in m.notes] == ["audio_path_guessed"]
