"""Reading any system's transcripts for `kimi-tui score`: CSV, TSV, JSONL, Kaldi text or sclite trn.

Users compare kimi-tui's models with transcripts from elsewhere (another
toolkit's decode, a vendor's API), and ASR files rarely carry an extension that
says what they are (Kaldi's `text`, `hyp.trn`, `ref.scp`, `decode.txt`). So
the format is read from the content: a header row naming an id and a text
column is a table, JSON objects are JSONL, `(id)` at the end of lines is sclite
trn, anything else is Kaldi `id text`. Kaldi text is split at the first run of
whitespace and never as CSV, because Chinese transcripts carry ASCII commas. An
explicit .csv/.tsv/.jsonl is trusted, but a .csv that is not a table of ids and
texts says so instead of silently scoring the wrong column.

Everything here is one pass over the decoded text with C-level splitting (Kaldi
lines through map(), no Python statement per line), so that `kimi-tui score` on
100k-line files is not dominated by reading them.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path

from kimi_tui.data.transcripts import (ID_COLUMN_NAMES, TEXT_COLUMN_NAMES, describe_columns, find_column,
                                       normalize_column_name, read_text, sniff_delimiter)
from kimi_tui.errors import DataError
from kimi_tui.workers.runtime import inspect_sample

JSON_ID_KEYS = ("id", "utt_id", "uttid", "key", "utt", "audio_id", "name")
JSON_TEXT_KEYS = ("text", "hypothesis", "hyp", "prediction", "reference", "ref", "transcript", "sentence", "answer", "label")
HYP_TEXT_NAMES = ("hypothesis", "hyp", "prediction", "pred", "output", "result", "asr", "识别结果", "预测")

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}

_ID_NAMES = frozenset(normalize_column_name(n) for n in ID_COLUMN_NAMES + JSON_ID_KEYS)
_TEXT_NAMES = frozenset(normalize_column_name(n) for n in HYP_TEXT_NAMES + TEXT_COLUMN_NAMES + JSON_TEXT_KEYS)
_SAMPLE_LINES = 50  # lines looked at to tell the format


def read_id_text(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """id -> text, plus warnings (duplicate ids: the last one wins). Raises DataError naming the line.

    A file without utterances (empty, blank, or a header alone) gives an empty table in every
    format: whether that is an error (a reference) or a result (a system that said nothing)
    is the caller's call."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise DataError(f"{path} is a folder: pass a transcript file (CSV, TSV, JSONL, Kaldi text or sclite trn)")
        if path.exists():
            raise DataError(f"{path} is not a regular file: pass a transcript file saved on disk")
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    text = read_text(path, what="JSONL file" if suffix in JSONL_SUFFIXES else "transcript file", allow_empty=True).text
    if not text.strip():
        return {}, []
    if suffix in JSONL_SUFFIXES:
        return _read_jsonl(path, text)
    if suffix in TABLE_SUFFIXES:
        return _read_csv(path, text, explicit=True)
    return _read_by_content(path, text)


def detect_format(text: str) -> str:
    """'csv', 'jsonl', 'trn' or 'kaldi' for a decoded transcript file, from its first lines."""
    sample: list[str] = []
    for line in text.split("\n", 4 * _SAMPLE_LINES)[: 4 * _SAMPLE_LINES]:
        line = line.strip()
        if line:
            sample.append(line)
            if len(sample) >= _SAMPLE_LINES:
                break
    if not sample:
        return "kaldi"
    first = sample[0]
    if first.startswith("{"):
        return "jsonl"
    if re.match(r"sep=[,\t;|][ \t]*$", first) or _table_header(first) is not None:
        return "csv"
    if all(_trn_split(line) for line in sample):
        return "trn"
    if all("," in line.split(None, 1)[0] for line in sample):
        return "csv"  # no header, no space after the id, a comma in every first token: `id,text`
    return "kaldi"


def _trn_split(line: str) -> tuple[str, str] | None:
    """(id, text) of a stripped sclite trn line `text (id)`; the id has no spaces or parentheses."""
    if not line.endswith(")"):
        return None
    i = line.rfind("(")
    key = line[i + 1:-1]
    if i < 0 or not key or ")" in key or " " in key or "\t" in key:
        return None
    return key, line[:i].rstrip()


def _table_header(line: str) -> str | None:
    """The delimiter, when ``line`` is a header row naming an id and a text column."""
    for delimiter in ("\t", ",", ";"):
        if delimiter in line:
            names = {normalize_column_name(c) for c in line.split(delimiter)}
            if names & _ID_NAMES and names & _TEXT_NAMES:
                return delimiter
    return None


def _read_by_content(path: Path, text: str) -> tuple[dict[str, str], list[str]]:
    kind = detect_format(text)
    if kind == "jsonl":
        return _read_jsonl(path, text)
    if kind == "csv":
        return _read_csv(path, text, explicit=False)
    if kind == "trn":
        return _read_trn(path, text)
    return _read_kaldi(path, text)


def _duplicates(path: Path, duplicates: list[tuple[int, str]]) -> list[str]:
    return [f"{path.name} line {n}: id {key!r} appears again; the later text is used" for n, key in duplicates]


def _lines(text: str) -> list[str]:
    # "\n" only: str.splitlines would also break at U+2028, U+0085 or \x1c inside a transcript.
    return text.split("\n")


def _read_kaldi(path: Path, text: str) -> tuple[dict[str, str], list[str]]:
    if "\t" in text:  # a tab after the id reads as a space: once for the file, not once a line
        text = text.replace("\t", " ")
    lines = _lines(text)
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start < len(lines):
        head = lines[start].split()
        if len(head) == 2 and normalize_column_name(head[0]) in _ID_NAMES and normalize_column_name(head[1]) in _TEXT_NAMES:
            start += 1  # an `id text` header over Kaldi lines
    # The common case on big files: one comprehension over C-level map()s, strip then the id up
    # to the first space (a run of spaces after it is stripped off the text). A stripped line
    # starts with its id, so the id is "" exactly on a blank line. Each (id, " ", text) tuple
    # is dropped as soon as it is read, so none piles up for the cyclic collector to walk.
    stripped = list(map(str.strip, lines[start:] if start else lines))
    table = {key: value.strip() for key, _, value in map(str.partition, stripped, repeat(" ")) if key}
    if len(table) == len(stripped) - stripped.count(""):
        return table, []
    keys = [line.partition(" ")[0] for line in stripped]
    seen: set[str] = set()
    duplicates: list[tuple[int, str]] = []
    for line_no, key in enumerate(keys, start + 1):
        if key in seen:
            duplicates.append((line_no, key))
        elif key:
            seen.add(key)
    return table, _duplicates(path, duplicates)


def _read_trn(path: Path, text: str) -> tuple[dict[str, str], list[str]]:
    table: dict[str, str] = {}
    duplicates: list[tuple[int, str]] = []
    for line_no, line in enumerate(_lines(text), 1):
        line = line.strip()
        if not line:
            continue
        pair = _trn_split(line)
        if pair is None:
            raise DataError(
                f"{path.name} line {line_no}: no (id) at the end of the line, where the lines above are "
                f"sclite trn (`text (id)`): {_clip(line)}; add the utterance id in parentheses at the end"
            )
        key = pair[0]
        if key in table:
            duplicates.append((line_no, key))
        table[key] = pair[1]
    return table, _duplicates(path, duplicates)


def _parse_json_lines(path: Path, numbered: list[tuple[int, str]]) -> list[object]:
    try:  # one C call for the whole file; the loop below only runs to say which line is wrong
        rows = json.loads("[" + ",".join(line for _, line in numbered) + "]")
        if len(rows) == len(numbered) and all(line[0] == "{" and line[-1] == "}" for _, line in numbered):
            return rows
    except (ValueError, RecursionError):
        pass
    rows = []
    for n, line in numbered:
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise DataError(f"{path.name} line {n}: not valid JSON ({exc.args[0] if exc.args else exc})") from None
        except RecursionError:
            raise DataError(f"{path.name} line {n}: JSON nested too deeply to read") from None
    return rows


def _read_jsonl(path: Path, text: str) -> tuple[dict[str, str], list[str]]:
    numbered = [(n, line.strip()) for n, line in enumerate(_lines(text), 1) if line.strip()]
    rows = _parse_json_lines(path, numbered)
    table: dict[str, str] = {}
    duplicates: list[tuple[int, str]] = []
    for (line_no, _), row in zip(numbered, rows):
        if not isinstance(row, dict):
            raise DataError(f"{path.name} line {line_no}: expected a JSON object with an id and a text")
        key = value = None
        if "conversation" in row and isinstance(row["conversation"], list):  # Kimi format
            shape = inspect_sample(row)  # the rule prepare and the transcribers use
            key, value = shape.key, shape.transcript or ""
        else:
            for k in JSON_ID_KEYS:
                if k in row:
                    key = row[k]
                    break
            for k in JSON_TEXT_KEYS:
                if k in row:
                    value = row[k]
                    break
            else:
                raise DataError(f"{path.name} line {line_no}: no text key (one of {', '.join(JSON_TEXT_KEYS)}) "
                                f"in {sorted(row)}")
        if key is None:
            raise DataError(f"{path.name} line {line_no}: no id key (one of {', '.join(JSON_ID_KEYS)}) in {sorted(row)}")
        key = key if type(key) is str else str(key)
        if key in table:
            duplicates.append((line_no, key))
        table[key] = "" if value is None else value if type(value) is str else str(value)
    return table, _duplicates(path, duplicates)


def _clip(line: str, n: int = 60) -> str:
    line = line.strip()
    return repr(line if len(line) <= n else line[:n] + "...")


def _not_a_table(path: Path, line: int, why: str) -> DataError:
    return DataError(
        f"{path.name} line {line}: {why}, so it does not read as a {path.suffix.lower().lstrip('.').upper()} table "
        "of ids and texts; give it a header row naming the id and text columns (e.g. id,text), or, if it holds "
        "Kaldi `id text` or sclite `text (id)` lines, give it another extension (e.g. .txt) so that kimi-tui "
        "reads it by its content"
    )


def _csv_records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, last line, cells) of every non-blank record; DataError naming the line of a broken quote."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    prev_end = 0
    try:
        for cells in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not cells or (not cells[0].strip() and all(not c.strip() for c in cells)):
                continue  # blank line or ",,," left over by a spreadsheet
            yield start, prev_end, cells
    except csv.Error as exc:
        raise DataError(f"{path.name} is not a readable CSV file (line {reader.line_num}: {exc}); "
                        "a double quote (\") is probably not closed") from None


def _read_csv(path: Path, text: str, *, explicit: bool) -> tuple[dict[str, str], list[str]]:
    excel_sep = re.match(r"sep=([,\t;|])[ \t]*(\r\n|\n|\r|$)", text)  # Excel's "sep=;" first line
    if excel_sep:
        delimiter = excel_sep.group(1)
    else:
        first = next((line for line in text.split("\n", 200) if line.strip()), "")
        delimiter = _table_header(first.strip()) or sniff_delimiter(text)
    records = _csv_records(path, text, delimiter)
    if excel_sep:
        next(records, None)
    first_record = next(records, None)
    if first_record is None:
        return {}, []
    header_line, _, header = first_record
    id_col = find_column(header, ID_COLUMN_NAMES)
    text_col = find_column(header, HYP_TEXT_NAMES + TEXT_COLUMN_NAMES, exclude=(id_col,))
    headerless = id_col is None or text_col is None
    if headerless:
        if len(header) == 2:  # no recognisable header: id, text
            id_col, text_col = 0, 1
            key = header[0].strip()
            if explicit and key.split(None, 1) != [key]:
                raise _not_a_table(path, header_line, f"the id {_clip(key)} holds a space and there is no header row")
        elif len(header) == 1:
            raise _not_a_table(path, header_line, f"the first line is one column ({_clip(header[0])})")
        else:
            raise DataError(
                f"{path.name}: cannot tell the id and text columns apart (columns: {describe_columns(header)}); "
                "name them id and text"
            )
    width = len(header)
    need = max(id_col, text_col)
    tab = delimiter == "\t"
    table: dict[str, str] = {}
    duplicates: list[tuple[int, str]] = []
    rejoined: list[int] = []  # lines whose unquoted delimiters in the text were put back
    spanning: list[tuple[int, int]] = []  # records that run over several lines
    for line_no, end_line, cells in itertools.chain([first_record] if headerless else [], records):
        n = len(cells)
        if end_line > line_no:
            spanning.append((line_no, end_line))
        if n <= need:
            if n == 1 and id_col == 0:
                parts = cells[0].split(None, 1)
                if len(parts) == 2 and not tab:
                    raise DataError(
                        f"{path.name} line {line_no}: one field {_clip(cells[0])} where {width} are expected "
                        f"(is the delimiter {delimiter!r} missing after the id?)"
                    )
                key, value = parts[0], parts[1].strip() if len(parts) == 2 else ""  # a space where others have a tab
            else:
                raise DataError(f"{path.name} line {line_no}: expected {width} fields, found {n}")
        else:
            key, value = cells[id_col].strip(), cells[text_col].strip()
            if n > width and any(c.strip() for c in cells[width:]):
                if text_col != width - 1:
                    raise DataError(
                        f"{path.name} line {line_no}: {n} fields where the header has {width}; a "
                        f"{'tab' if tab else repr(delimiter)} inside a text must be quoted (\"...\")"
                    )
                value = delimiter.join(cells[text_col:]).rstrip(delimiter).strip()  # an unquoted comma in the text
                rejoined.append(line_no)
        if key in table:
            duplicates.append((line_no, key))
        table[key] = value
    warnings = _duplicates(path, duplicates)
    if rejoined:
        warnings.append(
            f"{path.name} line {rejoined[0]}" + (f" and {len(rejoined) - 1} more" if len(rejoined) > 1 else "")
            + f": more fields than the {width} columns of the header; the text, the last column, is taken to run "
            f"to the end of the line (quote texts that hold a {'tab' if tab else repr(delimiter)})"
        )
    if spanning:
        (first, last), more = spanning[0], len(spanning) - 1
        warnings.append(
            f"{path.name} line {first}: a quoted text runs on to line {last}"
            + (f" ({more} more records run over several lines)" if more else "")
            + "; if a double quote (\") was not meant to open a quoted field, quote the text (\"...\") and double "
            "the quotes in it (\"\")"
        )
    return table, warnings


# --------------------------------------------------------------------------- ids that do not meet

_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def _folder_free(key: str) -> str:
    return key.replace("\\", "/").rsplit("/", 1)[-1]


def _canonical(key: str) -> str:
    """What is left of an id once a folder, an extension and letter case are ignored."""
    return _EXTENSION.sub("", _folder_free(key)).casefold()


def _differences(a: str, b: str) -> list[str]:
    found = []
    if _folder_free(a) != a or _folder_free(b) != b:
        found.append("the folder")
    a, b = _folder_free(a), _folder_free(b)
    if _EXTENSION.sub("", a) != a or _EXTENSION.sub("", b) != b:
        found.append("the extension")
    a, b = _EXTENSION.sub("", a), _EXTENSION.sub("", b)
    if a != b and a.casefold() == b.casefold():
        found.append("letter case")
    return found


def _prefixed(keys: dict[str, str], others: dict[str, str]) -> list[tuple[str, str]]:
    """(key, other) where key is other with a speaker prefix: `spk-utt` / `spk_utt` for `utt`."""
    pairs = []
    for canon, key in keys.items():
        for sep in ("-", "_"):
            i = canon.find(sep)
            while i >= 0:
                if canon[i + 1:] in others:
                    pairs.append((key, others[canon[i + 1:]]))
                    break
                i = canon.find(sep, i + 1)
            else:
                continue
            break
    return pairs


def example_ids(keys: list[str], n: int = 3) -> str:
    return ", ".join(repr(k) for k in keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def explain_id_mismatch(ref_ids: list[str], hyp_ids: list[str], ref_name: str = "REF", hyp_name: str = "HYP") -> str:
    """Why ids of REF are not found in HYP, when a way of writing them explains it; '' otherwise.

    Linear in the ids: each side is indexed once by its canonical form."""
    refs = {_canonical(k): k for k in ref_ids}
    hyps = {_canonical(k): k for k in hyp_ids}
    pairs = [(refs[c], hyps[c]) for c in refs.keys() & hyps.keys()]
    kinds: list[str] = []
    if pairs:
        pairs.sort()
        for r, h in pairs[:20]:
            kinds += [d for d in _differences(r, h) if d not in kinds]
    else:
        pairs = sorted((r, h) for h, r in _prefixed(hyps, refs))
        if pairs:
            kinds = [f"a speaker prefix on the {hyp_name} ids"]
        else:
            pairs = sorted(_prefixed(refs, hyps))
            kinds = [f"a speaker prefix on the {ref_name} ids"] if pairs else []
    if not pairs:
        return ""
    what = " and ".join(kinds) or "the way they are written"
    r, h = pairs[0]
    n = len(pairs)
    return (f"{n} {ref_name} id{'s' if n > 1 else ''} match{'' if n > 1 else 'es'} {hyp_name} once {what} "
            f"{'are' if len(kinds) > 1 else 'is'} ignored (e.g. {ref_name} {r!r} is {hyp_name} {h!r}): "
            "write the hypotheses with the ids the references use")
