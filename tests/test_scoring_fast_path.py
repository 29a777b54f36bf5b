"""The fast scoring path gives exactly what the one-by-one reference path gives.

score_pairs normalises whole batches through a numpy table, takes S/D/I from the
distance where the lengths force them, and builds edit operations only on demand;
summarise works column by column; summarise_texts (what `kimi-tui score` prints)
makes the same summary from numpy columns without a record per utterance. Every one of those is checked here against the
plain definition (normalise each string, rapidfuzz editops per pair, the per-utterance
properties summed in order) on random and hostile input: the numbers must not move.
"""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kimi_tui.evaluate.align import count_ops, edit_ops, sdi_arrays, sdi_counts
from kimi_tui.evaluate import metrics as M
from kimi_tui.evaluate.metrics import SIMILARITY_FORMULA, UtteranceScore, score_pairs, summarise, summarise_texts
from kimi_tui.evaluate.normalise import Normaliser, NormaliserOptions

N = importlib.import_module("kimi_tui.evaluate.normalise")
ROOT = Path(__file__).resolve().parent.parent

ALL_OPTIONS = [NormaliserOptions(numbers=a, fillers=b, mixed=c) for a, b, c in itertools.product((False, True), repeat=3)]

# What breaks batching: the "\n" joiner inside a string, tokens around it, lone surrogates,
# marks, full-width and compatibility forms, plane 2 ideographs (t2s maps some there),
# traditional characters, digits for the numbers option, fillers, controls, NUL.
_HOSTILE = [
    *"你好世界今天天气這個們說乾後僤呃嗯啊儿子那一二两百千0123456789１２.,:/%％，。！？ \t\r\n\x00\x0b\x1c\u2028",
    *"abcXYZİıßǰſ'’<>|[]",
    "\u0301", "\u0300", "\u20dd", "\u200b", "\ufeff", "\ufe0f", "\ud800", "\udfff", "😀", "\U00020000", "\U0002b820",
    "<|zh|>", "<|a|b|>", "<|", "|>", "<unk>", "[NOISE]", "\uf900", "ﬁ", "¨", "①", "㊀", "Ａ", "〇",
]
_hostile_text = st.lists(st.sampled_from(_HOSTILE), max_size=25).map("".join)
_cjk_text = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E00 + 800), max_size=25)
_texts = st.one_of(_hostile_text, _cjk_text, st.text(max_size=25), st.text(alphabet=st.characters(exclude_categories=()), max_size=25))
_settings = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _pair(draw) -> tuple[str, str | None]:
    ref = draw(_texts)
    kind = draw(st.sampled_from(["edit", "edit", "random", "same", "missing", "empty"]))
    if kind == "random":
        return ref, draw(_texts)
    if kind == "same":
        return ref, ref
    if kind == "missing":
        return ref, None
    if kind == "empty":
        return ref, ""
    hyp = list(ref)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(hyp)))
        op = draw(st.sampled_from("sdi"))
        if op == "s" and pos < len(hyp):
            hyp[pos] = draw(st.sampled_from(_HOSTILE))
        elif op == "d" and pos < len(hyp):
            del hyp[pos]
        else:
            hyp.insert(pos, draw(st.sampled_from(_HOSTILE)))
    return ref, "".join(hyp)


_pairs = st.lists(_pair(), max_size=12)


# ----------------------------------------------------------------------------- the reference path


def _reference_scores(pairs: list[tuple[str, str | None]], normaliser: Normaliser) -> list[tuple]:
    out = []
    for k, (ref, hyp) in enumerate(pairs):
        rn, hn = normaliser(ref), normaliser(hyp or "")
        ops = edit_ops(rn, hn)
        mixed = None
        if normaliser.options.mixed:
            rt, ht = normaliser.tokens(ref), normaliser.tokens(hyp or "")
            mixed = (len(rt), *count_ops(edit_ops(rt, ht)))
        out.append((str(k), ref, hyp or "", rn, hn, *count_ops(ops), ops, hyp is None, mixed))
    return out


def _reference_summary(scores: list[UtteranceScore], normaliser: Normaliser) -> dict:
    """summarise as it was written before the column-by-column version, on the per-utterance properties."""
    n = len(scores)
    n_chars = sum(s.n_ref for s in scores)
    sub, dele, ins = sum(s.sub for s in scores), sum(s.dele for s in scores), sum(s.ins for s in scores)
    rated = [s.cer for s in scores if s.cer is not None]
    errors = sub + dele + ins
    out = {
        "n_utts": n,
        "n_ref_chars": n_chars,
        "sub": sub,
        "del": dele,
        "ins": ins,
        "cer": errors / n_chars if n_chars else (0.0 if errors == 0 else None),
        "macro_cer": sum(rated) / len(rated) if rated else None,
        "ser": sum(1 for s in scores if s.errors) / n if n else None,
        "exact_match": sum(s.exact for s in scores) / n if n else None,
        "exact_match_raw": sum(s.reference.strip() == s.hypothesis.strip() for s in scores) / n if n else None,
        "similarity": sum(s.similarity for s in scores) / n if n else None,
        "similarity_formula": SIMILARITY_FORMULA,
        "n_empty_ref": sum(1 for s in scores if not s.ref_norm),
        "n_empty_hyp": sum(1 for s in scores if not s.hyp_norm and not s.missing),
        "n_missing_hyp": sum(1 for s in scores if s.missing),
        "n_hyp_over_2x_ref": sum(1 for s in scores if len(s.hyp_norm) > 2 * s.n_ref),
        "n_cer_over_100": sum(1 for s in scores if s.cer is not None and s.cer > 1),
        "normaliser": normaliser.label,
    }
    if normaliser.options.mixed:
        tokens = sum(s.mixed[0] for s in scores if s.mixed)
        mixed_errors = sum(sum(s.mixed[1:]) for s in scores if s.mixed)
        out["n_ref_tokens"] = tokens
        out["mer"] = mixed_errors / tokens if tokens else (0.0 if mixed_errors == 0 else None)
        out["mer_note"] = "mixed error rate: CJK characters and Latin words as tokens (not jiwer's match error rate)"
    return out


def _fields(s: UtteranceScore) -> tuple:
    return (s.id, s.reference, s.hypothesis, s.ref_norm, s.hyp_norm, s.sub, s.dele, s.ins, s.ops, s.missing, s.mixed)


# ----------------------------------------------------------------------------- normaliser batches


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=lambda o: o.label())
@_settings
@given(texts=st.lists(st.one_of(_texts, st.none()), max_size=15))
def test_batch_normalisation_equals_one_by_one(options: NormaliserOptions, texts: list[str | None]) -> None:
    n = Normaliser(options)
    expected = [n(t) if t else "" for t in texts]
    assert N._normalise_batch(n, texts) == expected  # the numpy path, forced on a small batch
    assert n._normalise_loop(texts) == expected
    big = texts * (N._BATCH_MIN // max(len(texts), 1) + 1)
    assert n.normalise_many(big) == expected * (N._BATCH_MIN // max(len(texts), 1) + 1)


def test_batch_chunks_and_newlines() -> None:
    n = Normaliser()
    texts = ["你好\n世界", "<|zh|>\n<|en|>", "這個", "", "a\nb", "\u0301x", "<|a\n|>好"] * 10_000  # > one chunk
    one = {t: n(t) for t in set(texts)}
    assert n.normalise_many(texts) == [one[t] for t in texts]
    with pytest.raises(TypeError):
        n.normalise_many(["好"] * 600 + [123])  # type: ignore[list-item]


# ----------------------------------------------------------------------------- counts


@_settings
@given(pairs=st.lists(st.tuples(_texts, _texts), max_size=20))
def test_sdi_counts_equal_edit_ops(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    expected = [count_ops(edit_ops(r, h)) for r, h in pairs]
    for k in (1, 600 // max(len(pairs), 1) + 1):  # the small path, then the numpy one
        subs, dels, inss = sdi_counts(refs * k, hyps * k)
        assert list(zip(subs, dels, inss)) == expected * k


# ----------------------------------------------------------------------------- score_pairs + summarise


@pytest.mark.parametrize("options", [NormaliserOptions(), NormaliserOptions(numbers=True, fillers=True, mixed=True)],
                         ids=lambda o: o.label())
@_settings
@given(pairs=_pairs, repeat=st.sampled_from([1, 1, 60]))
def test_score_pairs_and_summary_equal_reference(options: NormaliserOptions, pairs, repeat: int) -> None:
    n = Normaliser(options)
    pairs = pairs * repeat  # 60x a batch of ~6 crosses the batch thresholds
    scores = score_pairs([(str(k), r, h) for k, (r, h) in enumerate(pairs)], n)
    assert [_fields(s) for s in scores] == _reference_scores(pairs, n)
    assert summarise(scores, n) == _reference_summary(scores, n)


def test_summary_edge_cases_equal_reference() -> None:
    n = Normaliser()
    cases = [
        [],
        [("a", "", "")],
        [("a", "", "好好")],  # empty reference with insertions
        [("a", "你好", None), ("b", "", None), ("c", "好", "")],
        [("a", "好", "坏坏坏"), ("b", "今天天气", "今天天汽"), ("c", "", "x")],
    ]
    for items in cases:
        scores = score_pairs(items, n)
        assert summarise(scores, n) == _reference_summary(scores, n)


def _columns_summary(pairs: list[tuple[str, str | None]], normaliser: Normaliser) -> dict:
    """summarise_texts with the column path forced, however few the pairs."""
    saved, M._COLUMNS_MIN = M._COLUMNS_MIN, 0
    try:
        return summarise_texts([r for r, _ in pairs], [h for _, h in pairs], normaliser)
    finally:
        M._COLUMNS_MIN = saved


def _assert_same_summary(got: dict, want: dict) -> None:
    assert got == want
    for key, value in want.items():  # bit for bit, and plain Python numbers (json.dump takes no numpy ints)
        assert type(got[key]) is type(value), key
        if isinstance(value, float):
            assert got[key].hex() == value.hex(), key


@pytest.mark.parametrize("options", [NormaliserOptions(), NormaliserOptions(numbers=True),
                                     NormaliserOptions(numbers=True, fillers=True, mixed=True)], ids=lambda o: o.label())
@_settings
@given(pairs=st.lists(_pair(), min_size=1, max_size=12), repeat=st.sampled_from([1, 1, 60]))
def test_summarise_texts_equals_summarise_of_records(options: NormaliserOptions, pairs, repeat: int) -> None:
    n = Normaliser(options)
    pairs = pairs * repeat
    want = summarise(score_pairs([(str(k), r, h) for k, (r, h) in enumerate(pairs)], n), n)
    _assert_same_summary(_columns_summary(pairs, n), want)
    _assert_same_summary(summarise_texts([r for r, _ in pairs], [h for _, h in pairs], n), want)


@_settings
@given(pairs=st.lists(st.tuples(_texts, _texts), min_size=1, max_size=20))
def test_sdi_arrays_equal_edit_ops(pairs: list[tuple[str, str]]) -> None:
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    dist, n_ref, n_hyp, subs, dels, inss = sdi_arrays(refs, hyps)
    assert list(zip(subs.tolist(), dels.tolist(), inss.tolist())) == [count_ops(edit_ops(r, h)) for r, h in pairs]
    assert dist.tolist() == [len(edit_ops(r, h)) for r, h in pairs]
    assert n_ref.tolist() == list(map(len, refs)) and n_hyp.tolist() == list(map(len, hyps))


def test_summarise_texts_edge_cases_equal_summarise() -> None:
    n = Normaliser()
    cases = [
        [("", "")],
        [("", "好好")],  # empty reference with insertions: no rate, a CER over 100 % not counted
        [("你好", None), ("", None), ("好", "")],  # missing is not empty
        [("好", "坏坏坏"), ("今天天气", "今天天汽"), ("", "x"), ("。", "")],
        [(" 你好 ", "你好"), ("你好", "你好"), ("你 好", "你好"), ("A", "a")],  # raw exact vs normalised exact
        [("<|zh|>好", "好"), ("\u0301好", "好"), ("這個", "这个"), ("１２", "12")],
        [("好", None)] * 3,  # nothing but missing hypotheses
        [("好" * 40, "坏" * 3)] * 2,  # similarity clipped at 0
    ]
    for pairs in cases:
        for k in (1, 700):  # as given, and over the column threshold
            want = summarise(score_pairs([(str(i), r, h) for i, (r, h) in enumerate(pairs * k)], n), n)
            _assert_same_summary(_columns_summary(pairs * k, n), want)
            assert want == _reference_summary(score_pairs([(str(i), r, h) for i, (r, h) in enumerate(pairs * k)], n), n)
    with pytest.raises(ValueError):
        summarise_texts(["好"], [], n)


def test_operations_are_worked_out_on_demand() -> None:
    (s,) = score_pairs([("a", "今天天气很好", "今天天汽好")])
    assert s.ops == edit_ops("今天天气很好", "今天天汽好")
    assert count_ops(s.ops) == (s.sub, s.dele, s.ins)
    assert s.to_dict()["ops"] == s.ops and [c.op for c in s.columns()].count("S") == s.sub
    assert s == score_pairs([("a", "今天天气很好", "今天天汽好")])[0]
    assert "今天天汽好" in repr(s)


# ----------------------------------------------------------------------------- the benchmark runs


def test_benchmark_smoke_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scoring.py"), "--pairs", "2000", "--repeat", "1"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "end to end 2,000 pairs: kimi-tui" in done.stdout and "ratio" in done.stdout
    assert "space-separated vs plain" in done.stdout
