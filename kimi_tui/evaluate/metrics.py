"""Pooled error rates with their parts, and the per-utterance facts behind them.

The headline is pooled CER = (S + D + I) / N over the whole set, as every ASR
toolkit reports it; the mean of per-utterance rates is reported too, labelled
"macro". A missing or empty hypothesis counts as all deletions and is never
dropped (dropping them is how a 36.8% CER becomes 14.3%). An empty reference
has no rate of its own, but its insertions count in the pool. Similarity
follows the seed report's test script: 1 - CER per utterance, clipped at 0,
averaged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kimi_tui.evaluate.align import Column, Ops, columns, count_ops, edit_ops
from kimi_tui.evaluate.normalise import Normaliser

SIMILARITY_FORMULA = "mean over utterances of max(0, 1 - CER_utt); an empty reference scores 1 if the hypothesis is empty too, else 0"


@dataclass
class UtteranceScore:
    id: str
    reference: str
    hypothesis: str
    ref_norm: str
    hyp_norm: str
    sub: int
    dele: int
    ins: int
    ops: Ops = field(repr=False)
    missing: bool = False  # no hypothesis at all (the engine never produced one)
    # mixed-token mode only: the same counts over CJK characters + Latin words
    mixed: tuple[int, int, int, int] | None = None  # (n_ref_tokens, sub, del, ins)

    @property
    def n_ref(self) -> int:
        return len(self.ref_norm)

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def cer(self) -> float | None:
        """None for an empty reference: its rate is undefined (its insertions still count in the pool)."""
        return self.errors / self.n_ref if self.n_ref else None

    @property
    def similarity(self) -> float:
        if not self.n_ref:
            return 1.0 if not self.hyp_norm else 0.0
        return max(0.0, 1.0 - self.errors / self.n_ref)

    @property
    def exact(self) -> bool:
        return self.ref_norm == self.hyp_norm

    def columns(self) -> list[Column]:
        return columns(self.ref_norm, self.hyp_norm, self.ops)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "ref_norm": self.ref_norm,
            "hyp_norm": self.hyp_norm,
            "n_ref": self.n_ref,
            "sub": self.sub,
            "del": self.dele,
            "ins": self.ins,
            "cer": self.cer,
            "missing": self.missing,
            "ops": self.ops,
        }


def score_pairs(
    items: Iterable[tuple[str, str, str | None]], normaliser: Normaliser | None = None
) -> list[UtteranceScore]:
    """Score (id, reference, hypothesis-or-None) triples with one normaliser for both sides."""
    normaliser = normaliser or Normaliser()
    items = list(items)
    refs = normaliser.normalise_many([r for _, r, _ in items])
    hyps = normaliser.normalise_many([h or "" for _, _, h in items])
    mixed = normaliser.options.mixed
    scores = []
    for (utt_id, ref, hyp), rn, hn in zip(items, refs, hyps):
        ops = edit_ops(rn, hn)
        s, d, i = count_ops(ops)
        score = UtteranceScore(utt_id, ref, hyp or "", rn, hn, s, d, i, ops, missing=hyp is None)
        if mixed:
            rt, ht = normaliser.tokens(ref), normaliser.tokens(hyp or "")
            score.mixed = (len(rt), *count_ops(edit_ops(rt, ht)))
        scores.append(score)
    return scores


def score_utterance(utt_id: str, reference: str, hypothesis: str | None, normaliser: Normaliser | None = None) -> UtteranceScore:
    return score_pairs([(utt_id, reference, hypothesis)], normaliser)[0]


def _rate(errors: int, n: int) -> float | None:
    return errors / n if n else (0.0 if errors == 0 else None)


def summarise(scores: list[UtteranceScore], normaliser: Normaliser | None = None) -> dict:
    """Corpus metrics. Stable keys: n_utts, n_ref_chars, sub, del, ins, cer, exact_match, normaliser."""
    normaliser = normaliser or Normaliser()
    n = len(scores)
    n_chars = sum(s.n_ref for s in scores)
    sub = sum(s.sub for s in scores)
    dele = sum(s.dele for s in scores)
    ins = sum(s.ins for s in scores)
    rated = [s.cer for s in scores if s.cer is not None]
    out = {
        "n_utts": n,
        "n_ref_chars": n_chars,
        "sub": sub,
        "del": dele,
        "ins": ins,
        "cer": _rate(sub + dele + ins, n_chars),
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
        errors = sum(sum(s.mixed[1:]) for s in scores if s.mixed)
        out["n_ref_tokens"] = tokens
        out["mer"] = _rate(errors, tokens)
        out["mer_note"] = "mixed error rate: CJK characters and Latin words as tokens (not jiwer's match error rate)"
    return out
