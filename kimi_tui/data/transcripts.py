"""Reading transcript tables the way people actually export them.

Transcripts come out of spreadsheets: Excel in China saves GBK/GB18030 without
a BOM, "CSV UTF-8" saves with a BOM, some tools write tabs or semicolons, and
ids such as "0001" must stay strings. This module turns such a file into rows
of strings with their 1-based line numbers (so every finding can point at a
line the user can open) and guesses the id / transcript columns from the header
so that most users never configure them. It knows nothing about audio; what a
row means is decided in manifest.py.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import os
import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from kimi_tui.errors import DataError

#: Tried in this order when ``encoding="auto"``. GB18030 is a superset of GBK
#: and GB2312, so it also reads what Excel calls "ANSI" on Chinese Windows.
AUTO_ENCODINGS: tuple[str, ...] = ("utf-8-sig", "utf-8", "gb18030")

DELIMITERS: tuple[str, ...] = (",", "\t", ";")

# The csv module refuses fields over 128 KiB with an error that fails the whole file; a
# transcript that long (or a quote left open) is a problem of one row, reported as such.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

#: Header names (compared after :func:`normalize_column_name`) that hold the
#: utterance id or the audio file, in order of preference.
ID_COLUMN_NAMES: tuple[str, ...] = (
    "id", "utt", "utt_id", "uttid", "utterance_id", "key", "audio_id", "wav_id",
    "audio", "audio_path", "audio_file", "path", "file", "filename", "file_name",
    "filepath", "file_path", "wav", "wav_path",
    "音频id", "音频", "音频文件", "音频路径", "文件", "文件名", "路径", "编号",
)

#: Id-like names that denote a file or path; when the id column is a plain id
#: and another column has one of these names, audio is looked up through it.
PATH_COLUMN_NAMES: tuple[str, ...] = (
    "audio_path", "audio_file", "path", "filepath", "file_path", "wav_path",
    "audio", "file", "filename", "file_name", "wav",
    "音频路径", "音频文件", "路径", "文件", "文件名", "音频",
)

#: Header names that hold the transcript, in order of preference.
TEXT_COLUMN_NAMES: tuple[str, ...] = (
    "text", "transcript", "transcription", "sentence", "normalized_text",
    "answer", "label", "content", "reference", "ref",
    "文本", "转录", "转录文本", "标注", "标注文本", "答案", "内容", "句子", "文字",
)


@dataclass
class DecodedText:
    text: str
    encoding: str


@dataclass
class Row:
    """One CSV record: ``line`` is where it starts, ``end_line`` where it ends."""

    line: int
    end_line: int
    cells: list[str]


@dataclass
class Table:
    path: Path
    encoding: str
    delimiter: str
    rows: list[Row]  # every non-blank record, the header candidate included


def normalize_column_name(name: str) -> str:
    """Fold case, full-width forms and separators: "Utt ID" == "utt_id" == "uttid"."""
    name = unicodedata.normalize("NFKC", name).strip().strip('"').strip().lower()
    return "".join(ch for ch in name if ch not in " _-\t")


_MAGIC = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls / Office document"),
    (b"RIFF", "a WAV/RIFF file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 file"),
    (b"%PDF", "a PDF"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
)


def read_text(path: str | os.PathLike[str], encoding: str = "auto", *, what: str = "transcript file",
              allow_empty: bool = False) -> DecodedText:
    """Read and decode a whole text file, raising DataError that says what to do."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist; check the path (data.* in kimi-tui.toml)") from None
    except IsADirectoryError:
        raise DataError(f"{what} {path} is a folder, not a file; point it at the .csv/.jsonl file") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None

    if not data.strip():
        if allow_empty:
            return DecodedText("", "utf-8")
        raise DataError(f"{what} {path} is empty")
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            raise DataError(
                f"{what} {path} is {kind}, not a text file; export the transcripts as CSV (UTF-8) "
                "with an id column and a transcript column"
            )

    if encoding.lower().replace("_", "-") in ("auto", ""):
        if data.startswith(codecs.BOM_UTF8):
            candidates: tuple[str, ...] = ("utf-8-sig",)
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            candidates = ("utf-16",)  # Excel "Unicode text": unambiguous thanks to the BOM
        else:
            candidates = tuple(e for e in AUTO_ENCODINGS if e != "utf-8-sig")
        text = None
        first_err: UnicodeDecodeError | None = None
        for enc in candidates:
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as exc:
                first_err = first_err or exc
                continue
            used = enc
            break
        if text is None:
            assert first_err is not None
            line = data[: first_err.start].count(b"\n") + 1
            raise DataError(
                f"{what} {path} is not text in any supported encoding (tried UTF-8 with BOM, UTF-8, GB18030); "
                f"the first undecodable byte is on line {line}. Re-save it as 'CSV UTF-8', or set "
                "data.encoding in kimi-tui.toml to the file's encoding"
            )
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError(
                f"unknown encoding {encoding!r} for {path}; use 'auto', 'utf-8', 'utf-8-sig', 'gbk' or 'gb18030'"
            ) from None
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise DataError(
                f"{what} {path} cannot be decoded as {encoding}: line {line} has bytes that are not "
                f"{encoding}. Set data.encoding = 'auto' in kimi-tui.toml or re-save the file as UTF-8"
            ) from None
        used = encoding

    if text.startswith("\ufeff"):
        text = text[1:]
    if _looks_binary(text):
        raise DataError(
            f"{what} {path} looks like a binary file, not text; export the transcripts as CSV (UTF-8) "
            "(if it is UTF-16 text without a BOM, set data.encoding = 'utf-16' in kimi-tui.toml)"
        )
    if not text.strip() and not allow_empty:
        raise DataError(f"{what} {path} is empty")
    return DecodedText(text, used)


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    sample = text[:8192]
    control = sum(
        1 for ch in sample if ch not in "\t\n\r\f\v" and unicodedata.category(ch) in ("Cc", "Cs", "Co")
    )
    return control > max(2, len(sample) // 100)


def _parse(text: str, delimiter: str, limit: int | None = None) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[Row] = []
    prev_end = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"line {reader.line_num}: {exc}") from None
        start, end = prev_end + 1, reader.line_num
        prev_end = end
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line or ",,," left over by a spreadsheet
        rows.append(Row(start, end, cells))
        if limit is not None and len(rows) >= limit:
            break
    return rows


def sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the header into >1 columns most consistently."""
    sample = text[:65536]
    best, best_score = ",", (-1.0, 0)
    for rank, delim in enumerate(DELIMITERS):
        try:
            rows = _parse(sample, delim, limit=50)
        except DataError:
            continue
        if not rows or len(rows[0].cells) < 2:
            continue
        n = len(rows[0].cells)
        consistent = sum(1 for r in rows if len(r.cells) == n) / len(rows)
        score = (consistent, -rank)
        if score > best_score:
            best, best_score = delim, score
    return best


def read_table(path: str | os.PathLike[str], encoding: str = "auto") -> Table:
    """Decode, sniff the delimiter and split ``path`` into rows of strings."""
    path = Path(path)
    decoded = read_text(path, encoding)
    excel_sep = re.match(r"sep=([,\t;|])[ \t]*(\r\n|\n|\r|$)", decoded.text)  # Excel's "sep=;" first line
    delimiter = excel_sep.group(1) if excel_sep else sniff_delimiter(decoded.text)
    try:
        rows = _parse(decoded.text, delimiter)
    except DataError as exc:
        raise DataError(
            f"{path.name} is not a readable CSV file ({exc}); a double quote (\") is probably not closed"
        ) from None
    if excel_sep:
        rows = [r for r in rows if r.line > 1]
    if not rows:
        raise DataError(f"transcript file {path} is empty")
    return Table(path, decoded.encoding, delimiter, rows)


def find_column(header: list[str], names: tuple[str, ...], *,
                exclude: Collection[int | None] = ()) -> int | None:
    """Index of the first header cell matching ``names`` (in their order of preference)."""
    normalized = [normalize_column_name(h) for h in header]
    for name in names:
        want = normalize_column_name(name)
        for i, have in enumerate(normalized):
            if i not in exclude and have == want:
                return i
    return None


def describe_columns(header: list[str]) -> str:
    return ", ".join(repr(h) for h in header)


def column_by_name(header: list[str], name: str, *, setting: str, source: Path) -> int:
    """Index of the column the user named; DataError with a did-you-mean otherwise."""
    if name in header:
        return header.index(name)
    want = normalize_column_name(name)
    for i, h in enumerate(header):
        if normalize_column_name(h) == want:
            return i
    by_norm = {normalize_column_name(h): h for h in header}
    close = difflib.get_close_matches(want, list(by_norm), n=1, cutoff=0.5)
    hint = f" Did you mean {by_norm[close[0]]!r}?" if close else ""
    raise DataError(
        f"{source.name} has no column {name!r} (set as {setting}); the columns are: "
        f"{describe_columns(header)}.{hint} Fix {setting} in kimi-tui.toml."
    )
