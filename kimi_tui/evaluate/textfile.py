"""Reading any system's transcripts for `kimi-tui score`: CSV, TSV, JSONL or Kaldi-style text.

Users compare kimi-tui's models with transcripts from elsewhere (another
toolkit's decode, a vendor's API), so the reader takes the formats those come
in, finds the id and text columns by name, and says which line is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

from kimi_tui.data.transcripts import ID_COLUMN_NAMES, TEXT_COLUMN_NAMES, describe_columns, find_column, read_table, read_text
from kimi_tui.errors import DataError

JSON_ID_KEYS = ("id", "utt_id", "uttid", "key", "utt", "audio_id", "name")
JSON_TEXT_KEYS = ("text", "hypothesis", "hyp", "prediction", "reference", "ref", "transcript", "sentence", "answer", "label")
HYP_TEXT_NAMES = ("hypothesis", "hyp", "prediction", "pred", "output", "result", "asr", "识别结果", "预测")


def read_id_text(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """id -> text, plus warnings (duplicate ids: the last one wins). Raises DataError naming the line.

    A file without utterances (empty, blank, or a header alone) gives an empty table in every
    format: whether that is an error (a reference) or a result (a system that said nothing)
    is the caller's call."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise DataError(f"{path} is a folder: pass a transcript file (CSV, TSV, JSONL or Kaldi text)")
        if path.exists():
            raise DataError(f"{path} is not a regular file: pass a transcript file saved on disk")
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(path)
    if suffix in (".txt", ".text", "") or path.name == "text":
        return _read_kaldi(path)
    return _read_csv(path)


def _store(table: dict[str, str], warnings: list[str], key: str, text: str, where: str) -> None:
    if key in table:
        warnings.append(f"{where}: id {key!r} appears again; the later text is used")
    table[key] = text


def _read_jsonl(path: Path) -> tuple[dict[str, str], list[str]]:
    table: dict[str, str] = {}
    warnings: list[str] = []
    text = read_text(path, what="JSONL file", allow_empty=True).text
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {line_no}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{where}: not valid JSON ({exc.args[0] if exc.args else exc})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object with an id and a text")
        if "conversation" in row and isinstance(row["conversation"], list):  # Kimi format
            conv = row["conversation"]
            audio = [m.get("content") for m in conv if isinstance(m, dict) and m.get("message_type") == "audio"]
            texts = [m.get("content") for m in conv if isinstance(m, dict) and m.get("role") == "assistant"]
            key = row.get("id") or (Path(str(audio[0])).stem if audio else None)
            value = texts[-1] if texts else ""
        else:
            key = next((row[k] for k in JSON_ID_KEYS if k in row), None)
            value = next((row[k] for k in JSON_TEXT_KEYS if k in row), None)
            if value is None:
                raise DataError(f"{where}: no text key (one of {', '.join(JSON_TEXT_KEYS)}) in {sorted(row)}")
        if key is None:
            raise DataError(f"{where}: no id key (one of {', '.join(JSON_ID_KEYS)}) in {sorted(row)}")
        _store(table, warnings, str(key), "" if value is None else str(value), where)
    return table, warnings


def _read_kaldi(path: Path) -> tuple[dict[str, str], list[str]]:
    table: dict[str, str] = {}
    warnings: list[str] = []
    text = read_text(path, what="transcript file", allow_empty=True).text
    if "\t" in text.split("\n", 1)[0] or "," in text.split("\n", 1)[0]:
        return _read_csv(path)
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        _store(table, warnings, key, value.strip(), f"{path.name} line {line_no}")
    return table, warnings


def _read_csv(path: Path) -> tuple[dict[str, str], list[str]]:
    if not read_text(path, allow_empty=True).text.strip():
        return {}, []
    table = read_table(path)
    header = table.rows[0].cells
    id_col = find_column(header, ID_COLUMN_NAMES)
    text_col = find_column(header, HYP_TEXT_NAMES + TEXT_COLUMN_NAMES, exclude=(id_col,))
    rows = table.rows[1:]
    if id_col is None or text_col is None:
        if len(header) == 2:  # no recognisable header: id, text
            id_col, text_col, rows = 0, 1, table.rows
        else:
            raise DataError(
                f"{path.name}: cannot tell the id and text columns apart (columns: {describe_columns(header)}); "
                "name them id and text"
            )
    out: dict[str, str] = {}
    warnings: list[str] = []
    for row in rows:
        where = f"{path.name} line {row.line}"
        if len(row.cells) <= max(id_col, text_col):
            if len(row.cells) == 1 and id_col == 0:
                _store(out, warnings, row.cells[0].strip(), "", where)
                continue
            raise DataError(f"{where}: expected {len(header)} fields, found {len(row.cells)}")
        _store(out, warnings, row.cells[id_col].strip(), row.cells[text_col], where)
    return out, warnings
