"""Whatever bytes a user points us at, the answer is a Manifest or a DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_tui.data import Manifest, load_split
from kimi_tui.errors import KimiTuiError

# CSV-shaped bytes (header, delimiters, quotes, ids that do and don't exist, both
# encodings) with junk mixed in, so most examples get past decoding and exercise
# column detection and the row checks.
_cell = st.sampled_from(["id", "text", "音频ID", "转录文本", "a001", "0002", "x.wav", "sub/x", "/abs/x.wav", "nope",
                         "你好", "", " ", '"', '"a,b"', '""', "a\nb", "x"])
_sep = st.sampled_from([",", "\t", ";", ",,"])
_eol = st.sampled_from(["\n", "\r\n", "\r", ""])
_enc = st.sampled_from(["utf-8", "utf-8-sig", "gbk", "utf-16"])
_junk = st.sampled_from([b"", b"", b"", b"\x00", b"\xff", b"\xef\xbb\xbf", b'"', b"\x1a"])
_row = st.lists(_cell, min_size=1, max_size=4)
_csvish = st.builds(
    lambda rows, sep, eol, enc, junk, pos: (
        lambda b: b[:pos] + junk + b[pos:]
    )(eol.join(sep.join(r) for r in rows).encode(enc)),
    st.lists(_row, min_size=1, max_size=6), _sep, _eol, _enc, _junk, st.integers(0, 200),
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "audio").mkdir()
    for name in ("a001", "0002", "x"):
        sf.write(root / "audio" / f"{name}.wav", np.zeros(160, dtype=np.int16), 16000, subtype="PCM_16")
    return root


def _check(root: Path, data: bytes, name: str) -> None:
    path = root / name
    path.write_bytes(data)
    try:
        m = load_split("fuzz", csv_path=path, audio_dir=root / "audio")
    except KimiTuiError:
        return
    assert isinstance(m, Manifest)
    assert all(f.level in ("error", "warning", "note") for f in m.findings)
    m.to_dict()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(fuzz_dir, data):
    _check(fuzz_dir, data, "random.csv")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_csvish)
def test_csv_like_bytes_never_crash(fuzz_dir, data):
    _check(fuzz_dir, data, "csvish.csv")
