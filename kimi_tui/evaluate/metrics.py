"""Pooled character error rate with its parts, exact match and similarity.

The headline is pooled CER = (S + D + I) / N over the whole set, as every ASR
toolkit reports it; a missing or empty hypothesis counts as all deletions and is
never dropped (dropping them is how a 36.8% CER becomes 14.3%).
Similarity follows the seed report's test script: 1 - CER per utterance,
clipped at 0, averaged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rapidfuzz.distance import Levenshtein

from kimi_tui.evaluate.normalise import NORMALISER_NAME, NORMALISER_VERSION, normalise


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cer"] = self.cer
        return d


def score_utterance(utt_id: str, reference: str, hypothesis: str | None) -> UtteranceScore:
    hypothesis = hypothesis or ""
    ref_n, hyp_n = normalise(reference), normalise(hypothesis)
    sub = dele = ins = 0
    for op in Levenshtein.editops(ref_n, hyp_n):
        if op.tag == "replace":
            sub += 1
        elif op.tag == "delete":
            dele += 1
        else:
            ins += 1
    return UtteranceScore(utt_id, reference, hypothesis, ref_n, hyp_n, sub, dele, ins)


def score_corpus(scores: list[UtteranceScore], n_missing: int = 0) -> dict:
    """Stable keys: n_utts, n_ref_chars, sub, del, ins, cer, exact_match, normaliser."""
    n = len(scores)
    n_chars = sum(s.n_ref for s in scores)
    sub = sum(s.sub for s in scores)
    dele = sum(s.dele for s in scores)
    ins = sum(s.ins for s in scores)
    errors = sub + dele + ins
    return {
        "n_utts": n,
        "n_ref_chars": n_chars,
        "sub": sub,
        "del": dele,
        "ins": ins,
        "cer": errors / n_chars if n_chars else (0.0 if errors == 0 else None),
        "exact_match": sum(s.ref_norm == s.hyp_norm for s in scores) / n if n else None,
        "exact_match_raw": sum(s.reference.strip() == s.hypothesis.strip() for s in scores) / n if n else None,
        "similarity": sum(s.similarity for s in scores) / n if n else None,
        "similarity_formula": "mean over utterances of max(0, 1 - CER_utt)",
        "n_empty_hyp": sum(1 for s in scores if not s.hyp_norm),
        "n_hyp_over_2x_ref": sum(1 for s in scores if len(s.hyp_norm) > 2 * s.n_ref),
        "n_missing_hyp": n_missing,
        "normaliser": f"{NORMALISER_NAME} v{NORMALISER_VERSION}",
    }
