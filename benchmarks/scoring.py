"""Scoring speed against jiwer, and the paired bootstrap, on 100,000 utterance pairs.

Usage: python benchmarks/scoring.py [--n 100000] [--repeat 3]

Pairs of about 15 Chinese characters with 0-3 random edits. Prints, best of
--repeat runs, measured in the same process on the same pairs:
  - jiwer.process_characters (S/D/I and alignments)           the baseline
  - kimi-tui's scorer on the same (already normalised) strings  per-utterance S/D/I + edit operations
  - kimi-tui's full score_pairs (normaliser + scorer)          for context
  - a 1,000-resample paired bootstrap over the 100,000 utterances
The issue's targets: the scorer at least 10x jiwer; the bootstrap under 1 s.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def make_pairs(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 800)]
    refs, hyps = [], []
    for _ in range(n):
        ref = "".join(rng.choices(chars, k=rng.randint(12, 18)))
        hyp = list(ref)
        for _ in range(rng.randint(0, 3)):
            op, pos = rng.random(), rng.randrange(len(hyp) + 1)
            if op < 0.33 and pos < len(hyp):
                hyp[pos] = rng.choice(chars)
            elif op < 0.66 and pos < len(hyp):
                del hyp[pos]
            else:
                hyp.insert(pos, rng.choice(chars))
        refs.append(ref)
        hyps.append("".join(hyp))
    return refs, hyps


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import jiwer

    from kimi_tui.evaluate.align import count_ops, edit_ops
    from kimi_tui.evaluate.compare import paired_bootstrap
    from kimi_tui.evaluate.metrics import score_pairs

    refs, hyps = make_pairs(args.n)

    def ours():
        return [count_ops(ops) + (ops,) for ops in map(edit_ops, refs, hyps)]

    t_jiwer, out_jiwer = best_of(args.repeat, lambda: jiwer.process_characters(refs, hyps))
    t_ours, out_ours = best_of(args.repeat, ours)
    errors_ours = sum(s + d + i for s, d, i, _ in out_ours)
    errors_jiwer = out_jiwer.substitutions + out_jiwer.deletions + out_jiwer.insertions
    assert errors_ours == errors_jiwer, (errors_ours, errors_jiwer)
    items = [(str(k), r, h) for k, (r, h) in enumerate(zip(refs, hyps))]
    t_full, scores = best_of(args.repeat, lambda: score_pairs(items))
    errors = np.array([s.errors for s in scores])
    n_ref = np.array([s.n_ref for s in scores])
    other = np.maximum(errors - (np.arange(len(errors)) % 2), 0)
    t_boot, (low, high, p) = best_of(args.repeat, lambda: paired_bootstrap(errors, other, n_ref, 1000, seed=0))

    print(f"pairs: {args.n:,} of ~15 characters; {errors_ours:,} errors in total (jiwer agrees)")
    print(f"jiwer.process_characters        {t_jiwer:7.3f} s  {args.n / t_jiwer:12,.0f} pairs/s")
    print(f"kimi-tui scorer (S/D/I + ops)   {t_ours:7.3f} s  {args.n / t_ours:12,.0f} pairs/s   {t_jiwer / t_ours:5.1f}x jiwer")
    print(f"kimi-tui score_pairs (+ normaliser, per-utterance records) {t_full:7.3f} s  {t_jiwer / t_full:5.1f}x jiwer")
    print(f"paired bootstrap, 1,000 resamples x {args.n:,} utterances: {t_boot:6.3f} s  "
          f"(interval {low * 100:+.2f} to {high * 100:+.2f} points, P(B better) {p:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
