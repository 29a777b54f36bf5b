"""The corpus metrics, named, labelled and formatted in one place.

A number people compare is shown in four places (the report's Markdown and CSV, the Evaluation
panel's table, `kimi-tui score`), and a metric added to one of them and forgotten in another, or
one labelled "exact" here and "exact match" there, or printed at another precision, makes two
screens disagree about one evaluation. So each surface picks its metrics from this table (by key,
in its own order) and takes their labels and formats from it; tests/test_metric_table.py checks
that every metric reaches every surface it is meant for.

Keys are summarise()'s dict keys (kimi_tui.evaluate.metrics): the report's CSV columns and
`kimi-tui score --json` are those keys, a stable interface.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PERCENT = "percent"  # a rate, shown as 12.3%
COUNT = "count"  # an integer, shown as it is
SDI = "sdi"  # substitutions/deletions/insertions in one cell: 3/1/0

ALWAYS = "always"
MIXED = "mixed"  # only with mixed-token scoring (the normaliser's `mixed` option): summarise() adds them then


def pct(x: float | None, digits: int = 1) -> str:
    """A rate as a percentage ('-' when it has none, as an empty reference's CER)."""
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def points(x: float | None) -> str:
    """A difference of two rates in percentage points, signed: +1.5, -0.3."""
    return "-" if x is None else f"{x * 100:+.1f}"


@dataclass(frozen=True)
class Metric:
    key: str  # summarise()'s key; for SDI, a name for the triple (it is not in the dict)
    label: str  # the report's column header, and the metric's name in `kimi-tui score`'s text
    kind: str = PERCENT
    applies: str = ALWAYS
    short: str = ""  # the Evaluation panel's column header, where the label is too wide for 80 columns
    csv: bool = True  # a column of the report's summary CSV (and a key of `kimi-tui score --json`)
    parts: tuple[str, ...] = ()  # SDI: the keys of the triple

    @property
    def column(self) -> str:
        """The Evaluation panel's header."""
        return self.short or self.label

    def value(self, summary: Mapping):
        return summary.get(self.key)

    def format(self, summary: Mapping, digits: int = 1) -> str:
        """The metric of `summary` (a summarise() dict, or a per-utterance entry with the same keys) as text."""
        if self.kind == SDI:
            return "/".join(str(summary[k]) for k in self.parts)
        value = summary.get(self.key)
        if self.kind == PERCENT:
            return pct(value, digits)
        return "-" if value is None else str(value)

    def applies_to(self, mixed: bool) -> bool:
        return self.applies == ALWAYS or mixed


#: Every metric, in the report's CSV order (MIXED ones go at the CSV's end, after its state columns).
METRICS: tuple[Metric, ...] = (
    Metric("n_utts", "N", COUNT),
    Metric("n_ref_chars", "reference characters", COUNT),
    Metric("sub", "S", COUNT),
    Metric("del", "D", COUNT),
    Metric("ins", "I", COUNT),
    Metric("sdi", "S/D/I", SDI, csv=False, parts=("sub", "del", "ins")),
    Metric("cer", "CER"),
    Metric("macro_cer", "macro CER", short="macro"),
    Metric("ser", "SER"),
    Metric("exact_match", "exact"),
    Metric("exact_match_raw", "exact raw"),
    Metric("similarity", "similarity", short="sim"),
    Metric("n_empty_ref", "empty refs", COUNT),
    Metric("n_empty_hyp", "empty hyps", COUNT),
    Metric("n_missing_hyp", "missing hyps", COUNT),
    Metric("n_hyp_over_2x_ref", "hyps over 2x ref", COUNT),
    Metric("n_cer_over_100", "CER over 100%", COUNT),
    Metric("n_ref_tokens", "mixed tokens", COUNT, MIXED),
    Metric("mer", "MER", applies=MIXED),
)

BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}

#: summarise() keys that are words, not metrics: they describe how the numbers were made.
DESCRIPTIONS = ("normaliser", "similarity_formula", "mer_note")

#: The report's per-split Markdown table, after its model and state columns.
MARKDOWN_COLUMNS = ("cer", "sub", "del", "ins", "mer", "macro_cer", "ser", "exact_match", "exact_match_raw",
                    "similarity")
#: The Evaluation panel's metrics table, after its model column: narrower than the report's (80 columns).
PANEL_COLUMNS = ("cer", "sdi", "mer", "macro_cer", "ser", "exact_match", "similarity", "n_utts")
#: The per-utterance Markdown table's numbers (a per-utterance entry has these keys too).
UTTERANCE_MARKDOWN_COLUMNS = ("cer", "sdi", "mer")

#: `kimi-tui score`'s text, a line each: ``{key}`` is the metric formatted by the table, ``{key:2}``
#: with two decimals. A line with a MIXED metric is printed only when it has a value (mixed scoring on,
#: and reference tokens to rate against).
SCORE_TEXT = (
    "CER {cer:2}  (S {sub}  D {del}  I {ins}  N {n_ref_chars} characters in {n_utts} utterances)",
    "MER {mer:2}  over {n_ref_tokens} mixed tokens",
    "macro CER {macro_cer:2}  SER {ser}  exact {exact_match} (raw {exact_match_raw})  similarity {similarity}",
    "empty refs {n_empty_ref}, empty hyps {n_empty_hyp}, missing hyps {n_missing_hyp} (scored as deletions), "
    "hyps over 2x ref {n_hyp_over_2x_ref}, CER over 100% {n_cer_over_100}",
)


def metrics(keys: Iterable[str], mixed: bool) -> list[Metric]:
    """The metrics of `keys`, in that order, less those that do not apply (MER without mixed scoring)."""
    return [m for m in map(BY_KEY.__getitem__, keys) if m.applies_to(mixed)]


def csv_metrics(mixed: bool) -> tuple[list[Metric], list[Metric]]:
    """The summary CSV's metric columns: (those after model and split, those at the very end). The
    MIXED ones come last, only when computed, so the columns before keep their places for readers."""
    columns = [m for m in METRICS if m.csv]
    return [m for m in columns if m.applies == ALWAYS], [m for m in columns if m.applies == MIXED and mixed]


class _SummaryFormatter(string.Formatter):
    def __init__(self, summary: Mapping) -> None:
        self.summary = summary

    def get_value(self, key, args, kwargs):
        return BY_KEY[key]

    def format_field(self, metric: Metric, spec: str) -> str:
        return metric.format(self.summary, int(spec) if spec else 1)


def score_keys(template: str) -> list[str]:
    """The metric keys a SCORE_TEXT line shows, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def score_lines(summary: Mapping) -> list[str]:
    """`kimi-tui score`'s text for a summarise() dict."""
    formatter = _SummaryFormatter(summary)
    out = []
    for template in SCORE_TEXT:
        if any(BY_KEY[k].applies == MIXED and summary.get(k) is None for k in score_keys(template)):
            continue
        out.append(formatter.format(template))
    return out
