"""Is checkpoint B really better than A? Paired comparison on the same utterances.

A pooled-CER difference of half a point on a few hundred utterances can be
noise. The paired bootstrap (Bisani & Ney 2004) resamples utterances with
replacement, keeping each utterance's two results together, and recomputes the
pooled CER difference each time: the 2.5th and 97.5th percentiles give a 95%
interval and the share of resamples where B has fewer errors gives P(B better).
The seed is fixed, so the same inputs always give the same interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from kimi_tui.evaluate.metrics import UtteranceScore


@dataclass
class PairedComparison:
    a: str
    b: str
    n_utts: int
    n_ref_chars: int
    cer_a: float | None
    cer_b: float | None
    delta: float | None  # pooled CER of B minus A: negative means B makes fewer errors
    ci_low: float | None
    ci_high: float | None
    p_b_better: float | None
    improved: int  # utterances where B makes fewer errors than A
    regressed: int
    unchanged: int
    resamples: int
    seed: int
    missing_in_b: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    errors_a: np.ndarray, errors_b: np.ndarray, n_ref: np.ndarray, resamples: int = 1000, seed: int = 0,
    chunk: int = 50,
) -> tuple[float, float, float]:
    """(low, high, P(B better)) of the pooled error-rate difference B - A, by resampling utterances."""
    diff = (np.asarray(errors_b, dtype=np.int64) - np.asarray(errors_a, dtype=np.int64))
    n_ref = np.asarray(n_ref, dtype=np.int64)
    n = len(diff)
    # One gather instead of two: each utterance's reference length in the high bits and its
    # (offset) error difference in the low 40 bits, summed together and split afterwards.
    offset = int(max(0, -diff.min())) if n else 0
    low_bits = diff + offset
    if n and int(low_bits.max()) * n >= 1 << 40 or n and int(n_ref.max()) * n >= 1 << 22:
        packed = None  # too large to pack safely: two gathers
    else:
        packed = (n_ref << 40) + low_bits
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples, dtype=np.float64)
    dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(k, n), dtype=dtype)
        if packed is not None:
            total = packed[idx].sum(axis=1)
            den = total >> 40
            num = (total & ((1 << 40) - 1)) - offset * n
        else:
            num = diff[idx].sum(axis=1)
            den = n_ref[idx].sum(axis=1)
        deltas[start : start + k] = np.where(den > 0, num / np.maximum(den, 1), 0.0)
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high), float((deltas < 0).mean())


def compare(
    name_a: str, a: list[UtteranceScore], name_b: str, b: list[UtteranceScore], resamples: int = 1000, seed: int = 0
) -> PairedComparison:
    """Pair utterances by id (A's order); an utterance B lacks counts as all deletions for B."""
    by_id = {s.id: s for s in b}
    errors_a = np.fromiter((s.errors for s in a), dtype=np.int64, count=len(a))
    n_ref = np.fromiter((s.n_ref for s in a), dtype=np.int64, count=len(a))
    missing = 0
    eb = []
    for s in a:
        other = by_id.get(s.id)
        if other is None:
            missing += 1
            eb.append(s.n_ref)
        else:
            eb.append(other.errors)
    errors_b = np.asarray(eb, dtype=np.int64)
    total = int(n_ref.sum())
    cer_a = float(errors_a.sum() / total) if total else None
    cer_b = float(errors_b.sum() / total) if total else None
    if len(a) and total:
        low, high, p = paired_bootstrap(errors_a, errors_b, n_ref, resamples, seed)
    else:
        low = high = p = None
    return PairedComparison(
        a=name_a,
        b=name_b,
        n_utts=len(a),
        n_ref_chars=total,
        cer_a=cer_a,
        cer_b=cer_b,
        delta=None if cer_a is None or cer_b is None else cer_b - cer_a,
        ci_low=low,
        ci_high=high,
        p_b_better=p,
        improved=int((errors_b < errors_a).sum()),
        regressed=int((errors_b > errors_a).sum()),
        unchanged=int((errors_b == errors_a).sum()),
        resamples=resamples,
        seed=seed,
        missing_in_b=missing,
    )


def per_utterance_table(models: dict[str, list[UtteranceScore]]) -> list[dict]:
    """One row per utterance id (first model's order): reference and every model's hypothesis and CER."""
    names = list(models)
    if not names:
        return []
    index = {name: {s.id: s for s in scores} for name, scores in models.items()}
    rows = []
    for first in models[names[0]]:
        row = {"id": first.id, "reference": first.reference, "models": {}}
        for name in names:
            s = index[name].get(first.id)
            row["models"][name] = (
                None if s is None else {"hypothesis": s.hypothesis, "cer": s.cer, "errors": s.errors, "sub": s.sub, "del": s.dele, "ins": s.ins}
            )
        rows.append(row)
    return rows
