"""Hostile and broken input, built at test time: what users really point kimi-tui at.

Every case writes its files into a fresh folder (nothing binary is committed) and
says what the outcome must be: either an import with the expected rows and
findings, or a KimiTuiError. Either way the user must be told *where*: the file
name and the line, or the setting (field) that is wrong. tests/test_hostile_input.py
runs each case through the Python API and through the real CLI.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio_files import wav


@dataclass
class Built:
    """What a case left on disk: the transcript (or config) file and the audio folder."""

    kind: str  # "csv" | "jsonl" | "config"
    source: Path  # the CSV / JSONL file, or the kimi-tui.toml (which may not exist)
    audio: Path | None = None


@dataclass(frozen=True)
class Expect:
    """One finding that must be reported: level, code, line and words its message must contain."""

    level: str
    code: str
    line: int | None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Built]
    fatal: bool = False
    #: fatal: words the error must contain (besides the file name, which is always checked)
    mention: tuple[str, ...] = ()
    #: fatal, CLI only: words the CLI output must contain (default: ``mention``)
    cli_mention: tuple[str, ...] | None = None
    #: not fatal: the ids imported, in order, and (optionally) their transcripts
    ids: tuple[str, ...] | None = None
    texts: tuple[str, ...] | None = None
    #: not fatal: every error and warning (notes only where listed) that must be reported
    findings: tuple[Expect, ...] = ()

    def __str__(self) -> str:  # pytest ids
        return self.name


# --------------------------------------------------------------------------- helpers


def audio_folder(root: Path, names: tuple[str, ...] = ("a001", "a002", "a003"), folder: str = "audio") -> Path:
    d = root / folder
    d.mkdir(parents=True, exist_ok=True)
    for name in names:
        wav(d / f"{name}.wav")
    return d


def csv_text(rows: list[list[str]], eol: str = "\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=eol).writerows(rows)
    return buf.getvalue()


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def csv_case(rows: list[list[str]], *, name: str = "train.csv", encoding: str = "utf-8", eol: str = "\n",
             names: tuple[str, ...] = ("a001", "a002", "a003")) -> Callable[[Path], Built]:
    def build(root: Path) -> Built:
        audio = audio_folder(root, names)
        return Built("csv", write(root / name, csv_text(rows, eol), encoding), audio)
    return build


def raw_csv_case(data: bytes, *, name: str = "train.csv") -> Callable[[Path], Built]:
    def build(root: Path) -> Built:
        return Built("csv", write(root / name, data), audio_folder(root))
    return build


def kimi_line(audio: object, text: object = "你好", *, sid: str | None = None,
              conversation: object = None) -> str:
    conv = conversation if conversation is not None else [
        {"role": "user", "message_type": "text", "content": "请将语音内容转录为文字。"},
        {"role": "user", "message_type": "audio", "content": audio},
        {"role": "assistant", "message_type": "text", "content": text},
    ]
    obj: dict = {"task_type": "understanding", "conversation": conv}
    if sid is not None:
        obj["id"] = sid
    return json.dumps(obj, ensure_ascii=False)


def jsonl_case(*lines: str, name: str = "train.jsonl") -> Callable[[Path], Built]:
    """Lines are written as given; audio paths are relative to the JSONL's folder (audio/a00N.wav)."""
    def build(root: Path) -> Built:
        audio = audio_folder(root)
        return Built("jsonl", write(root / name, "\n".join(lines) + "\n"), audio)
    return build


GOOD = [["id", "text"], ["a001", "今天天气很好"], ["a002", "请把窗户打开"], ["a003", "我们去公园"]]


def wav_case(build_bad: Callable[[Path], None], bad_id: str) -> Callable[[Path], Built]:
    """a001, the bad clip (written by ``build_bad`` into the audio folder), a002."""
    def build(root: Path) -> Built:
        audio = audio_folder(root, ("a001", "a002"))
        build_bad(audio)
        rows = [["id", "text"], ["a001", "第一句"], [bad_id, "坏的那一句"], ["a002", "第二句"]]
        return Built("csv", write(root / "train.csv", csv_text(rows)), audio)
    return build


def config_case(text: str | bytes | None) -> Callable[[Path], Built]:
    """A project folder whose kimi-tui.toml holds ``text`` (None: no config at all)."""
    def build(root: Path) -> Built:
        project = root / "project"
        project.mkdir(parents=True)
        config = project / "kimi-tui.toml"
        if text is not None:
            write(config, text)
        return Built("config", config)
    return build


# --------------------------------------------------------------------------- builders with more to them


def _gbk(root: Path) -> Built:
    audio = audio_folder(root)
    data = csv_text([["音频ID", "转录文本"], ["a001", "今天天气很好"], ["a002", "请把窗户打开"]], "\r\n").encode("gbk")
    assert not data.startswith(b"\xef\xbb\xbf")
    return Built("csv", write(root / "标注.csv", data), audio)


def _mixed_eol(root: Path) -> Built:
    audio = audio_folder(root)
    data = b"id,text\r\na001,one\na002,two\rzz404,three\r\na003,four"
    return Built("csv", write(root / "train.csv", data), audio)


def _huge_line(root: Path) -> Built:
    audio = audio_folder(root)
    huge = "字" * (5 * 1024 * 1024 // 3)  # 5 MB of UTF-8
    text = f"id,text\na001,第一句\na002,{huge}\na003,第三句\n"
    return Built("csv", write(root / "train.csv", text), audio)


def _random_bytes(root: Path) -> Built:
    data = np.random.default_rng(1234).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    return Built("csv", write(root / "train.csv", b"\xff\xfe\xfd" + data), audio_folder(root))


def _png(root: Path) -> Built:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00" + bytes(64)
    return Built("csv", write(root / "train.csv", png), audio_folder(root))


def _utf16(root: Path) -> Built:
    audio = audio_folder(root)
    text = "id\ttext\r\na001\t你好\r\na002\t再见\r\n"
    return Built("csv", write(root / "unicode.csv", text.encode("utf-16")), audio)


def _truncated(audio: Path) -> None:
    full = wav(audio / "cut.wav", seconds=1.0).read_bytes()
    (audio / "cut.wav").write_bytes(full[:44 + 800])  # header says 1 s, 400 frames are left


def _header_only_wav(audio: Path) -> None:
    full = wav(audio / "hollow.wav", seconds=1.0).read_bytes()
    (audio / "hollow.wav").write_bytes(full[:44])


def _spaces(root: Path) -> Built:
    audio = root / "my audio files"
    wav(audio / "clip one.wav")
    wav(audio / "clip two.wav")
    rows = [["id", "text"], ["clip one", "第一句"], ["clip two.wav", "第二句"]]
    return Built("csv", write(root / "my transcripts.csv", csv_text(rows)), audio)


def _quotes(root: Path) -> Built:
    audio = root / "it's \"quoted\""
    wav(audio / "don't.wav")
    wav(audio / 'say "hi".wav')
    rows = [["id", "text"], ["don't", "第一句"], ['say "hi"', "第二句"]]
    return Built("csv", write(root / "it's \"data\".csv", csv_text(rows)), audio)


def _chinese(root: Path) -> Built:
    audio = root / "音频 文件夹"
    wav(audio / "你好.wav")
    wav(audio / "子目录" / "再见.wav")
    rows = [["音频", "文本"], ["你好", "你好"], ["子目录/再见.wav", "再见"]]
    return Built("csv", write(root / "标注 数据.csv", csv_text(rows)), audio)


def _dotdot(root: Path) -> Built:
    audio = audio_folder(root, ("a001", "a002"), folder="data/audio")
    wav(root / "data" / "secret" / "a009.wav")  # exists next to the audio folder, not in it
    rows = [["id", "path", "text"], ["a001", "a001.wav", "第一句"], ["a009", "../secret/a009.wav", "外面的"],
            ["a002", "a002.wav", "第二句"]]
    return Built("csv", write(root / "lists" / "train.csv", csv_text(rows)), audio)


def _symlink_loop(root: Path) -> Built:
    audio = audio_folder(root)
    os.symlink(audio, audio / "loop")  # folder -> its own parent
    os.symlink("self.wav", audio / "self.wav")  # a link to itself (ELOOP)
    os.symlink("ping.wav", audio / "pong.wav")
    os.symlink("pong.wav", audio / "ping.wav")
    rows = [["id", "text"], ["a001", "第一句"], ["self", "循环"], ["ping", "乒乓"], ["a002", "第二句"]]
    return Built("csv", write(root / "train.csv", csv_text(rows)), audio)


def _jsonl_no_line_is_json(root: Path) -> Built:
    audio = audio_folder(root)
    return Built("jsonl", write(root / "train.jsonl", "id,text\na001,你好\n"), audio)


GOOD_CONFIG = '# my settings\n[project]\nname = "demo"\n\n[train]\nepochs = 3\n'


# --------------------------------------------------------------------------- the corpus

CASES: list[Case] = [
    # ---- CSV
    Case("csv_gbk_without_bom", _gbk, ids=("a001", "a002"), texts=("今天天气很好", "请把窗户打开")),
    Case("csv_utf8_with_bom", csv_case(GOOD, encoding="utf-8-sig"), ids=("a001", "a002", "a003"),
         texts=("今天天气很好", "请把窗户打开", "我们去公园")),
    Case("csv_utf16_with_bom_tabs", _utf16, ids=("a001", "a002"), texts=("你好", "再见")),
    Case("csv_mixed_line_endings", _mixed_eol, ids=("a001", "a002", "a003"), texts=("one", "two", "four"),
         findings=(Expect("error", "missing_audio", 4, ("zz404",)),)),
    Case("csv_missing_text_column", csv_case([["id", "speaker", "gender"], ["a001", "张三", "男"]]), fatal=True,
         mention=("transcript column", "'speaker'", "data.text_column")),
    Case("csv_only_an_id_column", csv_case([["id"], ["a001"]]), fatal=True,
         mention=("transcript column", "data.text_column")),
    Case("csv_chinese_headers", csv_case([["音频", "文本"], ["a001", "你好"], ["a002", "再见"]]),
         ids=("a001", "a002"), texts=("你好", "再见")),
    Case("csv_unknown_headers", csv_case([["clip", "words", "extra"], ["a001", "你好", "1"]]), fatal=True,
         mention=("'clip'", "'words'", "data.id_column", "data.text_column")),
    Case("csv_quotes_and_commas_in_transcripts",
         csv_case([["id", "text"], ["a001", '他说："你好，世界"，然后走了'], ["a002", "one, two, three"],
                   ["a003", 'a "quoted", comma']]),
         ids=("a001", "a002", "a003"), texts=('他说："你好，世界"，然后走了', "one, two, three", 'a "quoted", comma')),
    Case("csv_empty_file", raw_csv_case(b""), fatal=True, mention=("empty",)),
    Case("csv_header_only", raw_csv_case(b"id,text\n"), fatal=True, mention=("no data rows", "'id'", "'text'")),
    Case("csv_huge_line", _huge_line, ids=("a001", "a003"),
         findings=(Expect("error", "transcript_too_long", 3, ("a002", "characters long")),)),
    Case("csv_random_bytes", _random_bytes, fatal=True, mention=("not text", "line 1", "data.encoding")),
    Case("csv_png_named_csv", _png, fatal=True, mention=("PNG image", "not a text file")),
    Case("csv_xlsx_named_csv", raw_csv_case(b"PK\x03\x04" + bytes(100)), fatal=True, mention=(".xlsx",)),
    Case("csv_duplicate_ids", csv_case([["id", "text"], ["a001", "一"], ["a002", "二"], ["a001", "三"]]),
         ids=("a001", "a002"), texts=("一", "二"),
         findings=(Expect("error", "duplicate_id", 4, ("a001", "line 2")),
                   Expect("warning", "duplicate_audio", 4, ("line 2",)))),
    Case("csv_id_without_audio", csv_case([["id", "text"], ["a001", "一"], ["zz404", "没有音频"], ["a002", "二"]]),
         ids=("a001", "a002"), findings=(Expect("error", "missing_audio", 3, ("zz404", "audio")),)),
    Case("csv_unclosed_quote", raw_csv_case('id,text\na001,"没有结束\na002,二\n'.encode()),
         ids=("a001",), findings=(Expect("warning", "multiline_row", 2, ("lines 2-3",)),)),
    # ---- JSONL
    Case("jsonl_broken_line_among_good",
         jsonl_case(kimi_line("audio/a001.wav", "一"), '{"task_type": "understanding", "conversation": [',
                    kimi_line("audio/a002.wav", "二")),
         ids=("a001", "a002"), texts=("一", "二"), findings=(Expect("error", "bad_json", 2, ("not valid JSON",)),)),
    Case("jsonl_conversation_not_a_list",
         jsonl_case(kimi_line("audio/a001.wav"), json.dumps({"conversation": "audio/a002.wav"})),
         ids=("a001",), findings=(Expect("error", "bad_sample", 2, ('"conversation"', "str")),)),
    Case("jsonl_content_is_a_number",
         jsonl_case(kimi_line(42, sid="n1"), kimi_line("audio/a002.wav", 3.14, sid="n2"),
                    kimi_line("audio/a003.wav", "三")),
         ids=("a003",), findings=(Expect("error", "bad_sample", 1, ("n1", "content")),
                                  Expect("error", "bad_sample", 2, ("n2", "content", "not a string")))),
    Case("jsonl_two_audio_messages",
         jsonl_case(kimi_line(None, conversation=[
             {"role": "user", "message_type": "audio", "content": "audio/a001.wav"},
             {"role": "user", "message_type": "audio", "content": "audio/a002.wav"},
             {"role": "assistant", "message_type": "text", "content": "二合一"}]), kimi_line("audio/a003.wav")),
         ids=("a003",), findings=(Expect("error", "multiple_audio", 1, ("2 audio messages",)),)),
    Case("jsonl_no_audio_message",
         jsonl_case(kimi_line("audio/a001.wav"), kimi_line(None, conversation=[
             {"role": "user", "message_type": "text", "content": "转写"},
             {"role": "assistant", "message_type": "text", "content": "没有音频"}])),
         ids=("a001",), findings=(Expect("error", "bad_sample", 2, ("no audio message",)),)),
    Case("jsonl_audio_path_does_not_exist",
         jsonl_case(kimi_line("audio/a001.wav"), kimi_line("audio/gone.wav", sid="g1")),
         ids=("a001",), findings=(Expect("error", "missing_audio", 2, ("gone.wav", "not found")),)),
    Case("jsonl_every_line_is_a_csv_row", _jsonl_no_line_is_json, fatal=True, mention=("line 1", "data.train_csv")),
    Case("jsonl_nested_too_deeply",
         jsonl_case(kimi_line("audio/a001.wav"), "[" * 200_000 + "]" * 200_000),
         ids=("a001",), findings=(Expect("error", "bad_json", 2, ("nested too deeply",)),)),
    # ---- WAV
    Case("wav_empty_file", wav_case(lambda a: (a / "bad.wav").write_bytes(b""), "bad"), ids=("a001", "a002"),
         findings=(Expect("error", "unreadable_audio", 3, ("bad.wav", "empty (0 bytes)")),)),
    Case("wav_header_with_truncated_data", wav_case(_truncated, "cut"), ids=("a001", "cut", "a002"),
         findings=(Expect("warning", "truncated_audio", 3, ("cut.wav", "cut short", "1.00 s")),)),
    Case("wav_header_without_data", wav_case(_header_only_wav, "hollow"), ids=("a001", "a002"),
         findings=(Expect("error", "empty_audio", 3, ("hollow.wav", "0 samples")),)),
    Case("wav_text_file_named_wav",
         wav_case(lambda a: (a / "notes.wav").write_text("这不是音频\nnot audio\n", encoding="utf-8"), "notes"),
         ids=("a001", "a002"), findings=(Expect("error", "unreadable_audio", 3, ("notes.wav", "cannot read")),)),
    Case("wav_8khz_mono", wav_case(lambda a: wav(a / "tel.wav", sr=8000), "tel"), ids=("a001", "tel", "a002"),
         findings=(Expect("note", "resampled", 3, ("tel.wav", "8000 Hz", "16 kHz")),)),
    Case("wav_48khz_stereo", wav_case(lambda a: wav(a / "studio.wav", sr=48000, channels=2), "studio"),
         ids=("a001", "studio", "a002"),
         findings=(Expect("note", "stereo", 3, ("studio.wav", "2 channels")),
                   Expect("note", "resampled", 3, ("studio.wav", "48000 Hz")))),
    Case("wav_ten_minutes", wav_case(lambda a: wav(a / "lecture.wav", seconds=600, sr=8000), "lecture"),
         ids=("a001", "a002"), findings=(Expect("error", "too_long", 3, ("lecture.wav", "600.0 s", "30 s limit")),)),
    # ---- paths
    Case("path_spaces", _spaces, ids=("clip one", "clip two.wav"), texts=("第一句", "第二句")),
    Case("path_quotes", _quotes, ids=("don't", 'say "hi"'), texts=("第一句", "第二句")),
    Case("path_chinese", _chinese, ids=("你好", "子目录/再见.wav"), texts=("你好", "再见")),
    Case("path_dotdot_outside_audio_folder", _dotdot, ids=("a001", "a002"),
         findings=(Expect("error", "missing_audio", 3, ("a009", "../secret/a009.wav")),)),
    Case("path_symlink_loop", _symlink_loop, ids=("a001", "a002"),
         findings=(Expect("error", "missing_audio", 3, ("self",)), Expect("error", "missing_audio", 4, ("ping",)))),
    # ---- kimi-tui.toml
    Case("config_unknown_key", config_case(GOOD_CONFIG + "learning_rat = 1e-5\n"), fatal=True,
         mention=(":7:", "[train] unknown key 'learning_rat'", "did you mean 'learning_rate'?")),
    Case("config_wrong_type", config_case(GOOD_CONFIG.replace("epochs = 3", 'epochs = "ten"')), fatal=True,
         mention=(":6:", '[train] epochs = "ten"', "expected a whole number")),
    Case("config_value_not_allowed", config_case(GOOD_CONFIG + '[engine]\ndevice = "gpu"\n'), fatal=True,
         mention=(":8:", '[engine] device = "gpu"', 'allowed values are "auto", "cpu", "cuda"')),
    Case("config_invalid_toml", config_case(GOOD_CONFIG + "batch_size = = 2\n"), fatal=True,
         mention=(":7:", "invalid TOML")),
    Case("config_duplicate_key", config_case(GOOD_CONFIG + "epochs = 4\n"), fatal=True,
         mention=(":7:", "invalid TOML", "epochs")),
    Case("config_unicode_line_separators", config_case(
        '# 说明\u2028第二段\x85第三段\n[project]\nname = "演示\u2028"\n\n[train]\nepochs = 3\nepoch = 4\n'),
         fatal=True, mention=(":7:", "unknown key 'epoch'", "did you mean 'epochs'?")),
    Case("config_not_utf8", config_case('[project]\nname = "演示"\n'.encode("gbk")), fatal=True,
         mention=("not valid UTF-8", "save it as UTF-8")),
    Case("config_missing", config_case(None), fatal=True, mention=("no such file", "kimi-tui init"),
         cli_mention=("not a kimi-tui project", "kimi-tui.toml", "kimi-tui init")),
]

assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"


def build_case(case: Case, root: Path) -> Built:
    root.mkdir(parents=True, exist_ok=True)
    return case.build(root)


def snapshot(root: Path) -> dict[str, tuple[str, object]]:
    """Every entry under ``root`` (links not followed): file bytes, link targets, folders."""
    out: dict[str, tuple[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                out[rel] = ("dir", None)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


__all__ = ["CASES", "Built", "Case", "Expect", "build_case", "snapshot"]
