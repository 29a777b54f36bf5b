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

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import compress, repeat
from operator import add, attrgetter, eq, gt, itemgetter, mul, not_, truediv
from operator import sub as sub_

from kimi_tui.evaluate.align import Column, Ops, columns, count_ops, edit_ops, sdi_arrays, sdi_counts
from kimi_tui.evaluate.normalise import Normaliser

SIMILARITY_FORMULA = "mean over utterances of max(0, 1 - CER_utt); an empty reference scores 1 if the hypothesis is empty too, else 0"


class UtteranceScore:
    """One utterance's raw and normalised text and its counts.

    A plain class with slots rather than a dataclass: score_pairs makes one per utterance
    (10^5 and more per test set), and the edit operations are only worked out when asked for
    (the alignment views, a report's confusion pairs), from the same normalised strings.
    """

    __slots__ = ("id", "reference", "hypothesis", "ref_norm", "hyp_norm", "sub", "dele", "ins", "_ops", "missing", "mixed")
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as the dataclass was)

    def __init__(
        self,
        id: str,
        reference: str,
        hypothesis: str,
        ref_norm: str,
        hyp_norm: str,
        sub: int,
        dele: int,
        ins: int,
        ops: Ops | None = None,
        missing: bool = False,  # no hypothesis at all (the engine never produced one)
        mixed: tuple[int, int, int, int] | None = None,  # mixed-token mode only: (n_ref_tokens, sub, del, ins)
    ) -> None:
        self.id = id
        self.reference = reference
        self.hypothesis = hypothesis
        self.ref_norm = ref_norm
        self.hyp_norm = hyp_norm
        self.sub = sub
        self.dele = dele
        self.ins = ins
        self._ops = ops
        self.missing = missing
        self.mixed = mixed

    @property
    def ops(self) -> Ops:
        """rapidfuzz's edit operations from ref_norm to hyp_norm (the alignment the counts come from)."""
        if self._ops is None:
            self._ops = edit_ops(self.ref_norm, self.hyp_norm)
        return self._ops

    @ops.setter
    def ops(self, value: Ops) -> None:
        self._ops = value

    def _key(self) -> tuple:
        return (self.id, self.reference, self.hypothesis, self.ref_norm, self.hyp_norm, self.sub, self.dele,
                self.ins, self.ops, self.missing, self.mixed)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (f"UtteranceScore(id={self.id!r}, reference={self.reference!r}, hypothesis={self.hypothesis!r}, "
                f"ref_norm={self.ref_norm!r}, hyp_norm={self.hyp_norm!r}, sub={self.sub!r}, dele={self.dele!r}, "
                f"ins={self.ins!r}, missing={self.missing!r}, mixed={self.mixed!r})")

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
    with _gc_paused():
        return _score_pairs(list(items), normaliser)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic collections while 10^5 score objects are made: none of them is garbage yet,
    and the collector walking them over and over was a quarter of score_pairs' time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _score_pairs(items: list[tuple[str, str, str | None]], normaliser: Normaliser) -> list[UtteranceScore]:
    if not items:
        return []
    ids, refs_raw, hyps_raw = (list(map(itemgetter(k), items)) for k in range(3))
    if None in hyps_raw:
        missing = [h is None for h in hyps_raw]
        hyps_text = [h or "" for h in hyps_raw]
    else:
        missing, hyps_text = [False] * len(items), hyps_raw
    refs = normaliser.normalise_many(refs_raw)
    hyps = normaliser.normalise_many(hyps_text)
    counts = sdi_counts(refs, hyps)
    scores = list(map(UtteranceScore, ids, refs_raw, hyps_text, refs, hyps, *counts, [None] * len(items), missing))
    if normaliser.options.mixed:
        for score, ref, hyp in zip(scores, refs_raw, hyps_text):
            rt, ht = normaliser.tokens(ref), normaliser.tokens(hyp)
            score.mixed = (len(rt), *count_ops(edit_ops(rt, ht)))
    return scores


def score_utterance(utt_id: str, reference: str, hypothesis: str | None, normaliser: Normaliser | None = None) -> UtteranceScore:
    return score_pairs([(utt_id, reference, hypothesis)], normaliser)[0]


def _rate(errors: int, n: int) -> float | None:
    return errors / n if n else (0.0 if errors == 0 else None)


_COLUMNS_MIN = 512  # pairs; below this summarise_texts goes through the records (numpy's set-up costs more)


def summarise_texts(
    references: Sequence[str], hypotheses: Sequence[str | None], normaliser: Normaliser | None = None
) -> dict:
    """``summarise(score_pairs(...))`` for texts in utterance order (a hypothesis of None is missing), the same dict.

    ``kimi-tui score`` prints the summary alone, so it has no use for 10^5 UtteranceScore
    records: here each fact is a numpy column (lengths, distances; S/D/I only as totals) and
    every float is made by the same operations in the same order as summarise makes it
    (int / int divisions of exact doubles, then Python's sum over the values in utterance
    order), so the numbers are equal to the bit. The mixed option needs its tokens per
    utterance and goes through the records.
    """
    normaliser = normaliser or Normaliser()
    n = len(references)
    if len(hypotheses) != n:
        raise ValueError(f"{n} references but {len(hypotheses)} hypotheses")
    if n < _COLUMNS_MIN or normaliser.options.mixed:
        return summarise(score_pairs(zip(map(str, range(n)), references, hypotheses), normaliser), normaliser)
    import numpy as np

    references = list(references)
    hypotheses = list(hypotheses)
    n_missing = hypotheses.count(None)
    hyps_text = [h or "" for h in hypotheses] if n_missing else hypotheses
    ref_norms = normaliser.normalise_many(references)
    hyp_norms = normaliser.normalise_many(hyps_text)
    errors, n_refs, n_hyps, subs, dels, inss = sdi_arrays(ref_norms, hyp_norms)
    n_chars, sub, dele, ins = int(n_refs.sum()), int(subs.sum()), int(dels.sum()), int(inss.sum())
    rated_at = n_refs > 0
    rated = errors[rated_at] / n_refs[rated_at]  # float64 division of exact integers: UtteranceScore.cer
    similarity = np.where(n_hyps > 0, 0.0, 1.0)  # an empty reference: 1 if the hypothesis is empty too
    similarity[rated_at] = np.maximum(1.0 - rated, 0.0)
    exact_at = np.flatnonzero(errors == 0).tolist()  # distance 0: the normalised texts are equal
    # Equal raw texts normalise alike, so only the exact pairs can be equal raw.
    raw_exact = sum(map(eq, map(str.strip, map(references.__getitem__, exact_at)),
                        map(str.strip, map(hyps_text.__getitem__, exact_at))))
    n_empty_hyp = int(np.count_nonzero(n_hyps == 0))
    if n_missing:  # a missing hypothesis is not an empty one (it is counted on its own)
        n_empty_hyp -= n_missing
    n_rated = int(np.count_nonzero(rated_at))
    return _summary(
        normaliser, n=n, n_chars=n_chars, sub=sub, dele=dele, ins=ins, rated_sum=sum(rated.tolist()), n_rated=n_rated,
        n_error_free=len(exact_at), n_exact=len(exact_at), n_exact_raw=raw_exact,
        similarity_sum=sum(similarity.tolist()), n_empty_ref=n - n_rated, n_empty_hyp=n_empty_hyp,
        n_missing=n_missing, n_over_2x=int(np.count_nonzero(n_hyps > 2 * n_refs)),
        # CER > 100%: errors > n_ref, except where n_ref = 0 (no rate)
        n_over_100=int(np.count_nonzero((errors > n_refs) & rated_at)),
    )


def _summary(normaliser: Normaliser, *, n: int, n_chars: int, sub: int, dele: int, ins: int, rated_sum: float,
             n_rated: int, n_error_free: int, n_exact: int, n_exact_raw: int, similarity_sum: float,
             n_empty_ref: int, n_empty_hyp: int, n_missing: int, n_over_2x: int, n_over_100: int) -> dict:
    """The summary both paths return, from their totals: one layout and one set of divisions, so the
    two stay equal to the bit as long as they count alike."""
    return {
        "n_utts": n,
        "n_ref_chars": n_chars,
        "sub": sub,
        "del": dele,
        "ins": ins,
        "cer": _rate(sub + dele + ins, n_chars),
        "macro_cer": rated_sum / n_rated if n_rated else None,
        "ser": (n - n_error_free) / n if n else None,
        "exact_match": n_exact / n if n else None,
        "exact_match_raw": n_exact_raw / n if n else None,
        "similarity": similarity_sum / n if n else None,
        "similarity_formula": SIMILARITY_FORMULA,
        "n_empty_ref": n_empty_ref,
        "n_empty_hyp": n_empty_hyp,
        "n_missing_hyp": n_missing,
        "n_hyp_over_2x_ref": n_over_2x,
        "n_cer_over_100": n_over_100,
        "normaliser": normaliser.label,
    }


def summarise(scores: list[UtteranceScore], normaliser: Normaliser | None = None) -> dict:
    """Corpus metrics. Stable keys: n_utts, n_ref_chars, sub, del, ins, cer, exact_match, normaliser.

    A key added here goes into kimi_tui.evaluate.metric_table too (its label and format, the
    surfaces that show it): tests/test_metric_table.py fails until it does."""
    # Column by column with map() rather than properties per utterance (10^5 utterances take
    # milliseconds); each value is computed by the same expression, summed in the same order.
    normaliser = normaliser or Normaliser()
    n = len(scores)
    subs = list(map(attrgetter("sub"), scores))
    dels = list(map(attrgetter("dele"), scores))
    inss = list(map(attrgetter("ins"), scores))
    ref_norms = list(map(attrgetter("ref_norm"), scores))
    hyp_norms = list(map(attrgetter("hyp_norm"), scores))
    missing = list(map(attrgetter("missing"), scores))
    n_refs = list(map(len, ref_norms))
    n_hyps = list(map(len, hyp_norms))
    errors = list(map(add, map(add, subs, dels), inss))
    n_chars, sub, dele, ins = sum(n_refs), sum(subs), sum(dels), sum(inss)
    n_empty_ref = n_refs.count(0)
    rated = list(map(truediv, compress(errors, n_refs), compress(n_refs, n_refs)))  # UtteranceScore.cer, where defined
    if n_empty_ref:  # UtteranceScore.similarity, in utterance order
        similarity = [max(0.0, 1.0 - e / r) if r else (0.0 if h else 1.0) for e, r, h in zip(errors, n_refs, n_hyps)]
    else:
        similarity = list(map(sub_, repeat(1.0), rated))
        if similarity and min(similarity) < 0.0:  # max(0.0, x), without a call per utterance
            similarity = [x if x > 0.0 else 0.0 for x in similarity]
    errors_of_empty = list(compress(errors, map(not_, n_refs)))
    raw_exact = sum(map(eq, map(str.strip, map(attrgetter("reference"), scores)),
                        map(str.strip, map(attrgetter("hypothesis"), scores))))
    out = _summary(
        normaliser, n=n, n_chars=n_chars, sub=sub, dele=dele, ins=ins, rated_sum=sum(rated), n_rated=len(rated),
        n_error_free=errors.count(0), n_exact=sum(map(eq, ref_norms, hyp_norms)), n_exact_raw=raw_exact,
        similarity_sum=sum(similarity), n_empty_ref=n_empty_ref,
        # a missing hypothesis is not an empty one (it is counted on its own)
        n_empty_hyp=n_hyps.count(0) - list(compress(n_hyps, missing)).count(0), n_missing=sum(map(bool, missing)),
        n_over_2x=sum(map(gt, n_hyps, map(mul, n_refs, repeat(2)))),
        # CER > 100%: errors > n_ref, except where n_ref = 0 (no rate)
        n_over_100=sum(map(gt, errors, n_refs)) - (len(errors_of_empty) - errors_of_empty.count(0)),
    )
    if normaliser.options.mixed:
        tokens = sum(s.mixed[0] for s in scores if s.mixed)
        errors = sum(sum(s.mixed[1:]) for s in scores if s.mixed)
        out["n_ref_tokens"] = tokens
        out["mer"] = _rate(errors, tokens)
        out["mer_note"] = "mixed error rate: CJK characters and Latin words as tokens (not jiwer's match error rate)"
    return out
