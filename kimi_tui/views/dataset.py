"""The Dataset panel's rows and statistics, as the prepare stage will see the data.

Rows that an error leaves out have no Utterance, yet the user must see them (and why): they
are rebuilt from the findings as ExcludedRow, merged with the utterances in file order. The
statistics of a whole split are computed once, where the data is read (a worker thread for the
TUI), because a corpus has 100,000+ rows. Imports only the standard library at start-up:
kimi_tui.data pulls numpy and soundfile, so it is imported where a split is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kimi_tui.errors import KimiTuiError

if TYPE_CHECKING:
    from kimi_tui.data import Finding, Manifest
    from kimi_tui.project import Project

LEVELS = ("error", "warning", "note")
LEVEL_MARK = {"error": "✗", "warning": "!", "note": "·"}
HIST_BINS = 8

#: (values, minimum, maximum) -> the widest value's width in cells, clamped: the display's measure.
Measure = Callable[[Sequence[str], int, int], int]


@dataclass(eq=False)
class ExcludedRow:
    """A row of the transcript file that an error left out: there is no Utterance for it."""

    id: str
    line: int | None
    source: str
    audio: str | None
    reason: str  # the first error, without its "file line N (id X):" prefix
    text: str = ""  # the transcript is not kept for rows that were left out


@dataclass
class Stats:
    clips: int = 0
    excluded: int = 0
    total_s: float = 0.0
    min_s: float = 0.0
    max_s: float = 0.0
    chars: int = 0
    bins: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def mean_s(self) -> float:
        return self.total_s / self.clips if self.clips else 0.0

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.total_s if self.total_s else 0.0


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is at least ``raw``."""
    if raw <= 0:
        return 1.0
    exponent = math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * 10.0**exponent
        if step >= raw * (1 - 1e-9):
            return step
    return 10.0 ** (exponent + 1)


def histogram(durations: Sequence[float], bins: int = HIST_BINS) -> list[tuple[float, float, int]]:
    """At most ``bins`` equal bins with round edges covering min..max: (low, high, count)."""
    if not durations:
        return []
    low, high = min(durations), max(durations)
    step = _nice_step((high - low) / bins if high > low else max(high, 1.0) / bins)
    while True:
        start = math.floor(low / step) * step
        count = math.floor((high - start) / step) + 1
        if count <= bins:
            break
        step = _nice_step(step * 1.01)
    counts = [0] * count
    last = count - 1
    for d in durations:
        i = int((d - start) / step)
        counts[i if i < last else last] += 1
    return [(start + i * step, start + (i + 1) * step, n) for i, n in enumerate(counts)]


def compute_stats(rows: Sequence[Any]) -> Stats:
    utts = [r for r in rows if not isinstance(r, ExcludedRow)]
    durations = [u.duration_s for u in utts]
    if not durations:
        return Stats(excluded=len(rows))
    return Stats(
        clips=len(utts),
        excluded=len(rows) - len(utts),
        total_s=sum(durations),
        min_s=min(durations),
        max_s=max(durations),
        chars=sum(len(u.text) - u.text.count(" ") for u in utts),
        bins=histogram(durations),
    )


def short_message(finding: Finding) -> str:
    """The message without the "file line N (id X): " prefix the table already shows."""
    where = Path(finding.source).name
    if finding.line is not None:
        where += f" line {finding.line}"
    if finding.utt_id:
        where += f" (id {finding.utt_id})"
    where += ": "
    return finding.message[len(where):] if finding.message.startswith(where) else finding.message


@dataclass(eq=False)
class SplitData:
    """One split as the panel shows it: rows (usable and left out) with their findings."""

    split: str
    manifest: Manifest | None = None
    error: str = ""  # the source could not be read at all
    missing: str = ""  # no source configured for this split
    rows: list[Any] = field(default_factory=list)  # Utterance | ExcludedRow, in file order
    by_line: dict[int, list[Finding]] = field(default_factory=dict)  # findings attached to a row
    file_findings: list[Finding] = field(default_factory=list)  # about the file, not one row
    stats: Stats = field(default_factory=Stats)
    id_width: int = 4
    findings_width: int = 8
    _keys: list[str] | None = None
    _line_index: dict[int, Any] | None = None

    @property
    def findings(self) -> list[Finding]:
        return self.manifest.findings if self.manifest is not None else []

    @property
    def n_utterances(self) -> int:
        return len(self.manifest.utterances) if self.manifest is not None else 0

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @classmethod
    def build(cls, split: str, manifest: Manifest, measure: Measure | None = None) -> "SplitData":
        """Merge the utterances with rows left out by errors (built from findings whose line has no utterance).

        ``measure(values, minimum, maximum)``: the cell width of the id and findings columns
        (the display's own measure; without one they keep the minimum)."""
        utt_lines = {u.line for u in manifest.utterances}
        by_line: dict[int, list[Finding]] = {}
        file_findings: list[Finding] = []
        excluded: dict[int, ExcludedRow] = {}
        for f in manifest.findings:
            if f.line is None or (f.utt_id is None and f.level != "error"):
                file_findings.append(f)  # a summary, or a note about the header / column layout
                continue
            if f.line not in utt_lines:
                row = excluded.get(f.line)
                if row is None:
                    if f.level != "error":
                        file_findings.append(f)
                        continue
                    row = excluded[f.line] = ExcludedRow(
                        id=f.utt_id or f"(line {f.line})", line=f.line, source=f.source, audio=f.audio,
                        reason=short_message(f),
                    )
                elif row.audio is None and f.audio:
                    row.audio = f.audio
            by_line.setdefault(f.line, []).append(f)
        rows: list[Any] = manifest.utterances
        if excluded:
            rows = sorted([*manifest.utterances, *excluded.values()], key=attrgetter("line"))
        cells = [finding_cell(fs)[0] for fs in by_line.values()]
        return cls(
            split=split, manifest=manifest, rows=rows, by_line=by_line, file_findings=file_findings,
            stats=compute_stats(rows),
            id_width=measure([r.id for r in rows], 4, 28) if measure else 4,
            findings_width=measure(cells, 8, 22) if measure else 8,
        )

    def search_keys(self) -> list[str]:
        if self._keys is None:
            self._keys = [f"{r.id}\n{r.text}".casefold() for r in self.rows]
        return self._keys

    def find(self, utt_id: str | None, line: int | None) -> Any | None:
        if line is not None:
            if self._line_index is None:
                self._line_index = {r.line: r for r in self.rows}
            row = self._line_index.get(line)
            if row is not None and (utt_id is None or row.id == utt_id or isinstance(row, ExcludedRow)):
                return row
        if utt_id is not None:
            for row in self.rows:
                if row.id == utt_id:
                    return row
        return None


def finding_cell(findings: Sequence[Finding]) -> tuple[str, str]:
    """The table's findings cell: worst level's mark and code, "+N" for more; and that level."""
    worst = min(findings, key=lambda f: LEVELS.index(f.level))
    more = f" +{len(findings) - 1}" if len(findings) > 1 else ""
    return f"{LEVEL_MARK[worst.level]} {worst.code}{more}", worst.level


def load_split_data(project: Project, split: str, train: Manifest | None = None,
                    measure: Measure | None = None) -> SplitData:
    """One split read the way the prepare stage reads it (Project.load_split); blocking.

    ``train``: for the test split, the training set already read, so the test rows it shares
    are marked (and left out) as prepare does (kimi_tui.data.check_leakage)."""
    try:
        manifest = project.load_split(split)
    except KimiTuiError as exc:
        return SplitData(split, error=str(exc))
    if manifest is not None and train is not None and split == "test":
        from kimi_tui.data import check_leakage

        check_leakage(train, manifest)
    if manifest is None:
        what = "training" if split == "train" else "test"
        return SplitData(split, missing=f"No {what} data configured: set data.{split}_csv and data.{split}_audio, "
                                        f"or data.{split}_jsonl, in kimi-tui.toml (Config panel).")
    return SplitData.build(split, manifest, measure)


def hms(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
