"""Alignments a person can read: which characters were substituted, dropped or added, and where.

Edit operations come from rapidfuzz (C++), so per-utterance alignments for a
whole test set cost little more than the error counts. Columns are padded by
display width (a CJK character takes two terminal cells, Latin one), which is
where jiwer's visualize_alignment goes wrong for Chinese.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from rapidfuzz.distance import Indel, Levenshtein

EQUAL, SUB, DEL, INS = "=", "S", "D", "I"
_TAG = {"replace": SUB, "delete": DEL, "insert": INS}

Ops = list[tuple[str, int, int]]  # rapidfuzz editops: (tag, ref position, hyp position)


def edit_ops(ref: Sequence[str] | str, hyp: Sequence[str] | str) -> Ops:
    """Minimal edit operations turning ref into hyp; [] when they are equal."""
    if ref == hyp:
        return []
    return Levenshtein.editops(ref, hyp).as_list()


def count_ops(ops: Ops) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions)."""
    if not ops:
        return 0, 0, 0
    tags = [op[0] for op in ops]
    sub = tags.count("replace")
    dele = tags.count("delete")
    return sub, dele, len(ops) - sub - dele


def sdi_counts(refs: Sequence[str], hyps: Sequence[str]) -> tuple[list[int], list[int], list[int]]:
    """``count_ops(edit_ops(ref, hyp))`` for every pair, as three lists (S, D, I), without the operations.

    Any minimal alignment has S + D + I = d (the distance) and I - D = n_hyp - n_ref, so
    S + 2 min(D, I) = d - |n_hyp - n_ref| =: e, and S <= e with the parity of e. Its matches
    are a common subsequence, so with L the longest one, n_ref + n_hyp - 2 L = i (the Indel
    distance) gives S >= i - d. When i - d > e - 2 only S = e is left: the counts follow from
    two C-speed distances, no operations built. That is most pairs (any number of plain
    substitutions, one insertion or deletion ...). The rest, where alignments of equal cost can
    trade two substitutions for a deletion and an insertion, ask rapidfuzz for its edit
    operations, so the counts are always those of the alignment edit_ops (and the views) show.
    """
    n = len(refs)
    if len(hyps) != n:
        raise ValueError(f"{n} references but {len(hyps)} hypotheses")
    if n < 512:
        subs, dels, inss = [], [], []
        for ref, hyp in zip(refs, hyps):
            d = Levenshtein.distance(ref, hyp)
            delta = len(hyp) - len(ref)
            extra = d - abs(delta)
            if extra < 2 or Indel.distance(ref, hyp) - d > extra - 2:
                subs.append(extra)
                dels.append(-delta if delta < 0 else 0)
                inss.append(delta if delta > 0 else 0)
            else:
                s, dl, i = count_ops(Levenshtein.editops(ref, hyp).as_list())
                subs.append(s)
                dels.append(dl)
                inss.append(i)
        return subs, dels, inss
    _, _, _, subs, dels, inss = sdi_arrays(refs, hyps)
    return subs.tolist(), dels.tolist(), inss.tolist()


def sdi_arrays(refs: Sequence[str], hyps: Sequence[str]):
    """``(distance, n_ref, n_hyp, S, D, I)``, one int64 numpy array each, one entry per pair.

    The same counts as :func:`sdi_counts` (the argument is in its docstring), for callers
    that only need columns and totals: ``kimi-tui score`` summarises 10^5 pairs from these
    without a Python object per pair. The distances are rapidfuzz's, element-wise in C.
    """
    import numpy as np

    n = len(refs)
    if len(hyps) != n:
        raise ValueError(f"{n} references but {len(hyps)} hypotheses")
    dist = _distances(Levenshtein.distance, refs, hyps)
    n_ref = np.fromiter(map(len, refs), dtype=np.int64, count=n)
    n_hyp = np.fromiter(map(len, hyps), dtype=np.int64, count=n)
    delta = n_hyp - n_ref
    subs = dist - np.abs(delta)  # "extra" of sdi_counts: S where the lengths force it
    maybe = np.flatnonzero(subs >= 2)
    if maybe.size:
        at = maybe.tolist()
        maybe_refs, maybe_hyps = list(map(refs.__getitem__, at)), list(map(hyps.__getitem__, at))
        open_ = np.flatnonzero(_distances(Indel.distance, maybe_refs, maybe_hyps) - dist[maybe] <= subs[maybe] - 2)
        if open_.size:
            editops, first = Levenshtein.editops, itemgetter(0)
            subs[maybe[open_]] = [
                list(map(first, editops(maybe_refs[k], maybe_hyps[k]).as_list())).count("replace")
                for k in open_.tolist()
            ]
    # S + D + I = d and I - D = n_hyp - n_ref give D and I from S, for any minimal alignment.
    dels = (dist - subs - delta) // 2
    inss = dels + delta
    return dist, n_ref, n_hyp, subs, dels, inss


try:
    from rapidfuzz.process import cpdist as _cpdist  # rapidfuzz >= 3.6
except ImportError:  # pragma: no cover - older rapidfuzz: one call per pair
    _cpdist = None


def _distances(scorer, refs: Sequence[str], hyps: Sequence[str]):
    import numpy as np

    if _cpdist is None or not len(refs):
        return np.fromiter(map(scorer, refs, hyps), dtype=np.int64, count=len(refs))
    return _cpdist(refs, hyps, scorer=scorer, workers=-1).astype(np.int64)


@dataclass(frozen=True)
class Column:
    op: str  # "=", "S", "D", "I"
    ref: str  # "" for an insertion
    hyp: str  # "" for a deletion


def columns(ref: Sequence[str], hyp: Sequence[str], ops: Ops | None = None) -> list[Column]:
    """The full alignment, one column per reference or hypothesis token, in order."""
    if ops is None:
        ops = edit_ops(ref, hyp)
    out: list[Column] = []
    i = j = 0
    for tag, pos_ref, pos_hyp in ops:
        while i < pos_ref and j < pos_hyp:
            out.append(Column(EQUAL, ref[i], hyp[j]))
            i += 1
            j += 1
        if tag == "replace":
            out.append(Column(SUB, ref[i], hyp[j]))
            i += 1
            j += 1
        elif tag == "delete":
            out.append(Column(DEL, ref[i], ""))
            i += 1
        else:
            out.append(Column(INS, "", hyp[j]))
            j += 1
    while i < len(ref) and j < len(hyp):
        out.append(Column(EQUAL, ref[i], hyp[j]))
        i += 1
        j += 1
    return out


def display_width(text: str) -> int:
    """Terminal cells: wide and full-width characters take two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


@dataclass(frozen=True)
class Cell:
    """One aligned column ready to draw: both sides padded to the same display width."""

    op: str
    ref: str
    hyp: str
    width: int


def display_cells(cols: Iterable[Column], gap: str = "*") -> list[Cell]:
    """Pad each column to the wider side; a missing side shows `gap` repeated to width."""
    cells = []
    for col in cols:
        width = max(display_width(col.ref), display_width(col.hyp), 1)
        ref = col.ref if col.ref else gap * width
        hyp = col.hyp if col.hyp else gap * width
        ref += " " * (width - display_width(ref))
        hyp += " " * (width - display_width(hyp))
        cells.append(Cell(col.op, ref, hyp, width))
    return cells


def render_plain(cols: Iterable[Column], sep: str = " ") -> tuple[str, str, str]:
    """Three lines (REF, HYP, and a marker line with S/D/I under each error), aligned in a terminal."""
    cells = display_cells(cols)
    ref = sep.join(c.ref for c in cells)
    hyp = sep.join(c.hyp for c in cells)
    marks = sep.join((" " if c.op == EQUAL else c.op).ljust(c.width) for c in cells)
    return ref, hyp, marks.rstrip()


def confusion_pairs(all_columns: Iterable[Iterable[Column]]) -> Counter[tuple[str, str]]:
    """Substitutions counted per (reference token, hypothesis token), position by position."""
    counter: Counter[tuple[str, str]] = Counter()
    for cols in all_columns:
        for col in cols:
            if col.op == SUB:
                counter[(col.ref, col.hyp)] += 1
    return counter
