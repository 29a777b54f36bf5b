"""jiwer as the oracle for our counting: on text the normaliser leaves as it is, kimi-tui's
S, D, I and CER are jiwer's, pair by pair and pooled.

jiwer is a dev dependency for this reason only (and for benchmarks/scoring.py's baseline); the
package itself aligns with rapidfuzz. A small alphabet makes repeated characters and equal-cost
alignments common, which is where a different split of S/D/I would show. The examples are the
same every run (tests/conftest.py's "gate" profile).
"""

from __future__ import annotations

import random

import jiwer
from hypothesis import given, settings
from hypothesis import strategies as st

from kimi_tui.evaluate.metrics import score_pairs, summarise, summarise_texts
from kimi_tui.evaluate.normalise import Normaliser

# Characters zh-cer leaves unchanged: simplified hanzi, lower-case Latin, a digit.
ALPHABET = "的一是在不了有人ab7"
NORMALISER = Normaliser()

# jiwer refuses an empty reference (it has no rate); an empty hypothesis is all deletions for both.
reference = st.text(alphabet=ALPHABET, min_size=1, max_size=14)
hypothesis = st.text(alphabet=ALPHABET, min_size=0, max_size=14)


def jiwer_counts(refs: list[str], hyps: list[str]) -> tuple[int, int, int]:
    out = jiwer.process_characters(refs, hyps)
    return out.substitutions, out.deletions, out.insertions


def test_the_alphabet_is_already_normalised() -> None:
    """Otherwise the comparison below would be of different strings."""
    texts = [ALPHABET, *ALPHABET, "ab7的的"]
    assert [NORMALISER(t) for t in texts] == texts


@settings(max_examples=80)
@given(pairs=st.lists(st.tuples(reference, hypothesis), min_size=1, max_size=6))
def test_counts_and_cer_equal_jiwer(pairs: list[tuple[str, str]]) -> None:
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    scores = score_pairs(((str(k), r, h) for k, (r, h) in enumerate(pairs)), NORMALISER)
    for s, r, h in zip(scores, refs, hyps):
        assert (s.ref_norm, s.hyp_norm) == (r, h)
        assert (s.sub, s.dele, s.ins) == jiwer_counts([r], [h]), (r, h)
        assert s.cer == jiwer.cer(r, h), (r, h)
    summary = summarise(scores, NORMALISER)
    assert (summary["sub"], summary["del"], summary["ins"]) == jiwer_counts(refs, hyps)
    assert summary["n_ref_chars"] == sum(map(len, refs))
    assert summary["cer"] == jiwer.cer(refs, hyps)


def test_pooled_cer_of_a_test_set_equals_jiwer() -> None:
    """600 pairs: enough for summarise_texts' column path (kimi-tui score), and the records' path agrees."""
    rng = random.Random(14)
    refs = ["".join(rng.choices(ALPHABET, k=rng.randint(1, 20))) for _ in range(600)]
    hyps = []
    for r in refs:  # mostly near the reference, as a model's output is, sometimes unrelated or empty
        roll = rng.random()
        if roll < 0.05:
            hyps.append("")
        elif roll < 0.15:
            hyps.append("".join(rng.choices(ALPHABET, k=rng.randint(1, 20))))
        else:
            chars = list(r)
            for _ in range(rng.randint(0, 3)):
                at = rng.randrange(len(chars) + 1)
                edit = rng.choice("sdi")
                if edit == "i" or not chars:
                    chars.insert(at, rng.choice(ALPHABET))
                elif at < len(chars):
                    chars[at] = rng.choice(ALPHABET) if edit == "s" else ""
            hyps.append("".join(chars))
    expected_counts, expected_cer = jiwer_counts(refs, hyps), jiwer.cer(refs, hyps)
    assert sum(expected_counts) > 0

    fast = summarise_texts(refs, hyps, NORMALISER)
    assert (fast["sub"], fast["del"], fast["ins"]) == expected_counts
    assert fast["cer"] == expected_cer
    records = summarise(score_pairs(((str(k), r, h) for k, (r, h) in enumerate(zip(refs, hyps))), NORMALISER),
                        NORMALISER)
    assert (records["sub"], records["del"], records["ins"], records["cer"]) == (*expected_counts, expected_cer)
