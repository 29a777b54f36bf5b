"""Properties of the readers of user input: for any input, data or a KimiTuiError, nothing else.

The CSV reader (read_table, and `kimi-tui score`'s read_id_text), the Kimi JSONL
readers (read_kimi_jsonl, inspect_sample, load_split) and the kimi-tui.toml loader
(parse_config, load_config, set_field) are fed arbitrary bytes, text, JSON values and
TOML documents. Any other exception escaping is a bug: the CLI would print a traceback.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kimi_tui.config import ProjectConfig, _tables, load_config, parse_config, set_field
from kimi_tui.data import Manifest, load_split, read_kimi_jsonl
from kimi_tui.data.kimi_jsonl import SampleShape, inspect_sample
from kimi_tui.data.transcripts import Table, read_table
from kimi_tui.errors import KimiTuiError
from kimi_tui.evaluate.textfile import read_id_text

#: Raise for a longer hunt, e.g. KIMI_TUI_PROPERTY_EXAMPLES=5000 (the default keeps the file near 10 s).
EXAMPLES = int(os.environ.get("KIMI_TUI_PROPERTY_EXAMPLES", "250"))
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("props")
    (root / "audio").mkdir()
    for name in ("a001", "a002"):
        sf.write(root / "audio" / f"{name}.wav", np.zeros(160, dtype=np.int16), 16000, subtype="PCM_16")
    return root


def put(root: Path, name: str, data: bytes | str) -> Path:
    path = root / f"{next(_counter)}_{name}"  # a new file per example: no state between examples
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def returns_or_kimi_error(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except KimiTuiError as exc:
        assert str(exc).strip(), "an error the user sees must say something"
        assert "Traceback" not in str(exc)
        return exc


# --------------------------------------------------------------------------- CSV

_csv_alphabet = st.sampled_from(list('ab01 ,;\t"\'\r\n\\|=') + ["sep=", "id", "text", "音频", "文本", "\ufeff", "\x00",
                                                               "\u2028", "é", "\ud800"])
csv_text = st.lists(_csv_alphabet, max_size=80).map("".join)
csv_bytes = st.one_of(
    st.binary(max_size=300),
    st.tuples(csv_text, st.sampled_from(["utf-8", "utf-8-sig", "gb18030", "utf-16", "latin-1"])).map(
        lambda t: t[0].encode(t[1], "surrogatepass") if t[1].startswith("utf") else t[0].encode(t[1], "replace")),
)


def _check_table(table: Table) -> None:
    assert table.rows and table.delimiter in (",", "\t", ";", "|")
    last = 0
    for row in table.rows:
        assert last < row.line <= row.end_line
        assert all(isinstance(c, str) for c in row.cells)
        last = row.end_line


@FAST
@given(data=csv_bytes)
def test_read_table_returns_rows_or_data_error(work, data):
    out = returns_or_kimi_error(read_table, put(work, "t.csv", data))
    if isinstance(out, Table):
        _check_table(out)


@FAST
@given(data=csv_bytes, encoding=st.sampled_from(["auto", "utf-8", "gbk", "gb18030", "utf-8-sig", "utf-16", "nope"]))
def test_read_table_with_a_forced_encoding(work, data, encoding):
    out = returns_or_kimi_error(read_table, put(work, "t.csv", data), encoding)
    if isinstance(out, Table):
        _check_table(out)


@FAST
@given(data=csv_bytes, name=st.sampled_from(["ref.csv", "ref.tsv", "ref.txt", "text", "ref.jsonl"]))
def test_score_reader_returns_pairs_or_data_error(work, data, name):
    out = returns_or_kimi_error(read_id_text, put(work, name, data))
    if not isinstance(out, KimiTuiError):
        table, warnings = out
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in table.items())
        assert all(isinstance(w, str) for w in warnings)


@FAST
@given(data=csv_bytes, id_column=st.sampled_from([None, "id", "ID", "nope", "文本"]),
       text_column=st.sampled_from([None, "text", "id", "音频"]))
def test_load_split_csv_with_column_settings(work, data, id_column, text_column):
    out = returns_or_kimi_error(load_split, "t", csv_path=put(work, "t.csv", data), audio_dir=work / "audio",
                                id_column=id_column, text_column=text_column)
    if isinstance(out, Manifest):
        json.dumps(out.to_dict())


# --------------------------------------------------------------------------- Kimi JSONL

_keys = st.sampled_from(["conversation", "role", "message_type", "content", "id", "task_type", "user", "audio"])
_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["audio", "text", "user", "assistant", "audio/a001.wav", "a002.wav", "~", "~nobody/x.wav",
                     "~x\x00y/a.wav", "/", "", " ", "\x00", "a" * 300, "../audio/a001.wav"]),
)
json_values = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(_keys, st.text(max_size=5)),
                                                                         inner, max_size=5)),
    max_leaves=20,
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "message_type": st.sampled_from(["audio", "text"]),
     "content": _leaf},
)
kimi_samples = st.fixed_dictionaries(
    {"task_type": st.just("understanding"), "conversation": st.lists(_message, max_size=4)},
    optional={"id": _leaf},
)


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


@FAST
@given(lines=st.lists(st.text(max_size=40), max_size=8), eol=st.sampled_from(["\n", "\r\n"]))
def test_jsonl_readers_on_arbitrary_text_lines(work, lines, eol):
    path = put(work, "t.jsonl", eol.join(lines))
    out = returns_or_kimi_error(read_kimi_jsonl, path)
    if isinstance(out, list):
        assert all(isinstance(s, dict) for s in out)
    out = returns_or_kimi_error(load_split, "t", jsonl_path=path)
    if isinstance(out, Manifest):
        json.dumps(out.to_dict())


@FAST
@given(values=st.lists(st.one_of(json_values, kimi_samples), max_size=6))
@example(values=[{"task_type": "understanding", "conversation": [  # found by a CI run: expanduser("~\x00") raised
    {"role": "user", "message_type": "audio", "content": "~\x00"},
    {"role": "assistant", "message_type": "text", "content": ""}]}])
def test_jsonl_readers_on_arbitrary_json_values(work, values):
    for value in values:
        shape = inspect_sample(value)  # pure: never raises
        assert isinstance(shape, SampleShape)
        assert shape.problems or (len(shape.audios) >= 1 and isinstance(shape.transcript, str))
    path = put(work, "t.jsonl", "\n".join(_dump(v) for v in values))
    out = returns_or_kimi_error(read_kimi_jsonl, path)
    if isinstance(out, list):
        assert all(isinstance(s, dict) for s in out)
    out = returns_or_kimi_error(load_split, "t", jsonl_path=path)
    if isinstance(out, Manifest):
        assert out.n_rows == len(values)
        json.dumps(out.to_dict())


@FAST
@given(data=st.binary(max_size=200))
def test_jsonl_readers_on_arbitrary_bytes(work, data):
    path = put(work, "t.jsonl", data)
    returns_or_kimi_error(read_kimi_jsonl, path)
    returns_or_kimi_error(load_split, "t", jsonl_path=path)


# --------------------------------------------------------------------------- kimi-tui.toml

_TABLES = _tables()
_FIELDS = {name: list(cls.model_fields) for name, cls in _TABLES.items()}


def _toml_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF:
            out.append(f"\\u{ord(ch) & 0xFFFF:04x}" if ord(ch) < 0x10000 else "?")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k) else _toml_string(k)


def _toml_float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


_toml_scalar = st.one_of(
    st.booleans().map(lambda b: "true" if b else "false"),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats().map(_toml_float),
    st.text(max_size=15).map(_toml_string),
    st.sampled_from(['"auto"', '"all"', '"last"', '"cpu"', '"whisper"', "'C:\\data\\x.csv'", '"""multi\nline"""',
                     "1979-05-27", "07:32:00", "1979-05-27T07:32:00Z", "0x10", "1_000", "+inf", "-0.0", "1e400"]),
)
toml_values = st.recursive(
    _toml_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(st.text(max_size=6), inner), max_size=3).map(
            lambda kv: "{ " + ", ".join(f"{_toml_key(k)} = {v}" for k, v in dict(kv).items()) + " }"),
    ),
    max_leaves=6,
)
_table_names = st.one_of(st.sampled_from(list(_TABLES)), st.sampled_from(["trian", "Train", "data.sub", "x"]))


@st.composite
def toml_documents(draw) -> str:
    """TOML-shaped text: known and unknown tables and keys, values of every TOML type."""
    lines = []
    if draw(st.booleans()):
        lines.append(f"{draw(st.sampled_from(['epochs', 'name', 'x']))} = {draw(toml_values)}")
    seen: set[str] = set()
    for table in draw(st.lists(_table_names, max_size=4)):
        if table in seen:
            continue
        seen.add(table)
        lines.append(f"[{table}]" if draw(st.integers(0, 9)) else f"[[{table}]]")
        known = _FIELDS.get(table, ["epochs"])
        keys = draw(st.lists(st.one_of(st.sampled_from(known), st.text(min_size=1, max_size=8)), max_size=5,
                             unique=True))
        for key in keys:
            lines.append(f"{_toml_key(key)} = {draw(toml_values)}" + draw(st.sampled_from(["", "  # note"])))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=toml_documents())
def test_parse_config_on_toml_shaped_documents(text):
    out = returns_or_kimi_error(parse_config, text, "kimi-tui.toml")
    if isinstance(out, ProjectConfig):
        assert ProjectConfig.model_validate(out.model_dump()) == out
    else:
        assert str(out).startswith("kimi-tui.toml"), str(out)


@FAST
@given(text=st.text(max_size=200))
def test_parse_config_on_arbitrary_text(text):
    out = returns_or_kimi_error(parse_config, text, "kimi-tui.toml")
    if not isinstance(out, ProjectConfig):
        assert str(out).startswith("kimi-tui.toml"), str(out)


@FAST
@given(data=st.binary(max_size=200))
def test_load_config_on_arbitrary_bytes(work, data):
    path = put(work, "kimi-tui.toml", data)
    out = returns_or_kimi_error(load_config, path)
    if not isinstance(out, ProjectConfig):
        assert str(path) in str(out)


@FAST
@given(dotted=st.one_of(st.sampled_from([f"{t}.{k}" for t, ks in _FIELDS.items() for k in ks]),
                        st.text(max_size=20)),
       raw=st.one_of(st.text(max_size=20), st.sampled_from(["1e3", "-1", "nan", "inf", "[1, 2]", "[", "true", "a, b"]),
                     st.integers(), st.floats(), st.booleans(), st.none()))
def test_set_field_on_arbitrary_settings(dotted, raw):
    out = returns_or_kimi_error(set_field, ProjectConfig(), dotted, raw)
    if isinstance(out, ProjectConfig):
        assert ProjectConfig.model_validate(out.model_dump()) == out
