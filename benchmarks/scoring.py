"""Scoring speed against jiwer, end to end and in parts, on 100,000 Chinese utterance pairs.

Usage: python benchmarks/scoring.py [--pairs 100000] [--repeat 3]
       python benchmarks/scoring.py --pairs 2000 --repeat 1      (smoke mode, a few seconds)

Why: ``kimi-tui score`` on a large test set has to stay an interactive command, and the
issue's bar is ``jiwer.process_characters`` (alignments included), measured in this
same run on the same pairs, since figures on a shared machine move with its load.

Pairs of 12-18 Chinese characters (U+4E00 onwards, so some traditional ones the
normaliser converts) with 0-3 random edits, written as Kaldi ``text`` files, once
plain (``你好世界``) and once space-separated (``你 好 世 界``). Prints, best of
--repeat runs:
  - end to end, the code path of ``kimi-tui score`` (cli.cmd_score): read_id_text on
    both files, matching the ids, summarise_texts with the default Normaliser; against
    jiwer.process_characters on the raw strings in memory (no reading, no
    normalisation: the baseline gets the easier job). Target >= 10x.
  - where the end-to-end time goes (reading, matching ids, summarise_texts).
  - space-separated input against plain input, end to end. Target <= 1.0x.
  - kimi-tui's aligner alone on the same strings (S/D/I + edit operations) against jiwer.
  - a 1,000-resample paired bootstrap over the utterances (target < 1 s).
Both inputs must give the same summary, summarise_texts the summary of
summarise(score_pairs(...)), and the aligner the same error total as jiwer (asserted).

Measured on the 2-core shared machine while another engineer's test suite ran (load
average 2.5-2.6, after 3-5 during development; every figure moves by 10-30% between
runs), three runs of ``.venv/bin/python benchmarks/scoring.py``, min-max over the runs:

    end to end 100,000 pairs: kimi-tui 0.221-0.235 s, jiwer.process_characters 2.11-2.37 s,
        ratio 9.3x-10.4x (per round 7.3x-12.1x)
      kimi-tui parts: read both files 0.102-0.111 s (46-49%), match ids 0.006-0.007 s,
        summarise_texts 0.111-0.118 s; without reading 17.4x-20.2x jiwer
    space-separated vs plain: ratio 1.18x-1.32x (per round 1.13x-1.43x); reading
        0.128-0.144 s vs 0.102-0.111 s, scoring 0.146-0.158 s vs 0.118-0.125 s
    aligner alone: 0.111-0.118 s, 17.9x-20.7x jiwer (runs before the last change)
    paired bootstrap: 0.59-0.60 s

Before this (commit e3154f7: score_pairs + summarise, the per-line reader): end to end
0.420-0.435 s, 5.2x-5.7x jiwer (0.385 s, 5.7x re-measured at load 0.6); reading 0.148-0.161 s,
score_pairs + summarise 0.27 s; space-separated 1.09x-1.32x plain. On the code before
issue 12 (commit 480dbf8): 1.291 s, 2.1x jiwer; space-separated 1.52x plain.

Where the time goes now (cProfile of summarise_texts on the 100k pairs, 0.156 s under the
profiler): rapidfuzz cpdist 0.035 s (Levenshtein on all pairs, Indel on the ~22% the
lengths leave open), the substitution count from editops for the ~14.5% where equal-cost
alignments differ 0.019 s, the two normaliser batches ~0.057 s (join, utf-32 encode,
code point table take/compress, decode, split), the rest numpy columns and two Python
sums over float lists (kept for bit-identical macro CER and similarity). Reading is
half of the end-to-end time: per file ~0.01 s decoding and ~0.045 s for the Kaldi
comprehension (10^5 ids and texts made as Python strings, hashed into a dict).

Space-separated input stays 1.2-1.3x plain: its file is 25% more bytes to decode, its
lines twice the characters to split, strip and copy, and its batches twice the code
points for the normaliser's table (which drops the spaces: 25 ms a side against 20 ms
plain; removing them first with str.replace was tried and cost 36 ms).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing


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


def write_kaldi(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(f"utt{k:07d} {t}\n" for k, t in enumerate(texts)), encoding="utf-8")
    return path


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def score_files(ref_path: Path, hyp_path: Path) -> tuple[dict, dict[str, float]]:
    """What cmd_score does (default options, no printing), with the time of each part."""
    from kimi_tui.evaluate.metrics import summarise_texts
    from kimi_tui.evaluate.normalise import Normaliser
    from kimi_tui.evaluate.textfile import read_id_text

    t0 = time.perf_counter()
    refs, _ = read_id_text(ref_path)
    hyps, _ = read_id_text(hyp_path)
    t1 = time.perf_counter()
    same_ids = len(hyps) == len(refs) and list(hyps) == list(refs)
    extra = [] if same_ids else sorted(hyps.keys() - refs.keys())
    missing = [] if same_ids or len(hyps) - len(extra) == len(refs) else [i for i in refs if i not in hyps]
    references, hypotheses = list(refs.values()), list(hyps.values()) if same_ids else list(map(hyps.get, refs))
    t2 = time.perf_counter()
    summary = summarise_texts(references, hypotheses, Normaliser())
    t3 = time.perf_counter()
    assert not missing and not extra
    return summary, {"read": t1 - t0, "match": t2 - t1, "score": t3 - t2, "total": t3 - t0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", "--n", dest="pairs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import jiwer

    from kimi_tui.evaluate.align import count_ops, edit_ops
    from kimi_tui.evaluate.compare import paired_bootstrap
    from kimi_tui.evaluate.normalise import Normaliser

    n = args.pairs
    refs, hyps = make_pairs(n)
    Normaliser()("預熱")  # the tables are built once per process (~0.3 s): not part of any figure
    with tempfile.TemporaryDirectory(prefix="kimi-tui-bench-") as tmp:
        folder = Path(tmp)
        raw = write_kaldi(folder / "ref.txt", refs), write_kaldi(folder / "hyp.txt", hyps)
        spaced = (write_kaldi(folder / "ref_spaced.txt", [" ".join(r) for r in refs]),
                  write_kaldi(folder / "hyp_spaced.txt", [" ".join(h) for h in hyps]))
        score_files(*raw)  # warm the page cache and numpy's import
        # Interleaved rounds, so that the baseline and kimi-tui see the same load on a shared machine.
        rounds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out_jiwer = jiwer.process_characters(refs, hyps)
            t_jiwer = time.perf_counter() - start
            summary, parts = score_files(*raw)
            summary_spaced, parts_spaced = score_files(*spaced)
            assert summary_spaced == summary, "space-separated input scored differently from plain input"
            rounds.append((t_jiwer, parts, parts_spaced))
    t_jiwer = min(r[0] for r in rounds)
    parts = min((r[1] for r in rounds), key=lambda p: p["total"])
    parts_spaced = min((r[2] for r in rounds), key=lambda p: p["total"])
    round_ratios = sorted(r[0] / r[1]["total"] for r in rounds)
    spaced_ratios = sorted(r[2]["total"] / r[1]["total"] for r in rounds)

    def aligner():
        return [count_ops(ops) + (ops,) for ops in map(edit_ops, refs, hyps)]

    t_align, out_align = best_of(args.repeat, aligner)
    errors_align = sum(s + d + i for s, d, i, _ in out_align)
    errors_jiwer = out_jiwer.substitutions + out_jiwer.deletions + out_jiwer.insertions
    assert errors_align == errors_jiwer, (errors_align, errors_jiwer)

    from kimi_tui.evaluate.metrics import score_pairs, summarise

    scores = score_pairs((str(k), r, h) for k, (r, h) in enumerate(zip(refs, hyps)))
    assert summarise(scores, Normaliser()) == summary, "summarise_texts differs from summarise(score_pairs(...))"
    errors = np.array([s.errors for s in scores])
    n_ref = np.array([s.n_ref for s in scores])
    other = np.maximum(errors - (np.arange(len(errors)) % 2), 0)
    t_boot, (low, high, p) = best_of(args.repeat, lambda: paired_bootstrap(errors, other, n_ref, 1000, seed=0))

    total = parts["total"]
    print(f"pairs: {n:,} of 12-18 characters, best of {args.repeat}; kimi-tui: S {summary['sub']:,} "
          f"D {summary['del']:,} I {summary['ins']:,} N {summary['n_ref_chars']:,} CER {summary['cer'] * 100:.2f}%")
    print(f"end to end {n:,} pairs: kimi-tui {total:.3f} s, jiwer.process_characters {t_jiwer:.3f} s, "
          f"ratio {t_jiwer / total:.1f}x (target >= 10x; per round {round_ratios[0]:.1f}x to {round_ratios[-1]:.1f}x)")
    print(f"  kimi-tui parts: read both files {parts['read']:.3f} s ({parts['read'] / total:.0%}), "
          f"match ids {parts['match']:.3f} s, summarise_texts {parts['score']:.3f} s; "
          f"without reading {t_jiwer / (total - parts['read']):.1f}x jiwer")
    print(f"space-separated vs plain, end to end: spaced {parts_spaced['total']:.3f} s, plain {total:.3f} s, "
          f"ratio {parts_spaced['total'] / total:.2f}x (per round {spaced_ratios[0]:.2f}x to {spaced_ratios[-1]:.2f}x; "
          f"target <= 1.0x; reading {parts_spaced['read']:.3f} s "
          f"vs {parts['read']:.3f} s, scoring {parts_spaced['total'] - parts_spaced['read']:.3f} s "
          f"vs {total - parts['read']:.3f} s)")
    print(f"aligner alone (S/D/I + edit operations): {t_align:.3f} s, {t_jiwer / t_align:.1f}x jiwer "
          f"({errors_align:,} errors, jiwer agrees)")
    print(f"paired bootstrap, 1,000 resamples x {n:,} utterances: {t_boot:.3f} s "
          f"(interval {low * 100:+.2f} to {high * 100:+.2f} points, P(B better) {p:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
