"""One utterance: its reference against each model's hypothesis, aligned character by character.

An error rate says how much is wrong; the alignment says what: which characters a checkpoint
substitutes (气 -> 汽), drops or invents. Three choices make it readable in an 80-column terminal:

* Columns are padded by display width (``kimi_tui.evaluate.align.display_cells``: a CJK character
  takes two cells, a Latin letter one), so the reference and hypothesis lines stay aligned;
  adjacent Latin letters and digits are not spaced apart, so ``iphone`` still reads as a word.
* The text is wrapped at the widget's own width, at the moment Rich renders it, with each
  reference line kept above its hypothesis line, so a long (or runaway) hypothesis wraps into
  pairs of aligned lines instead of being cut by the terminal.
* Every error is marked twice, so it survives a terminal (or tmux) without colour: a substitution
  is reversed (and yellow), a missing character is a ``*`` on the side that lacks it (red for a
  deletion, green for an insertion).

What is aligned is the normalised text (the same strings the CER counts), never the raw output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from kimi_tui.evaluate.align import DEL, EQUAL, INS, SUB, Cell, display_cells
from kimi_tui.evaluate.metric_table import pct
from kimi_tui.evaluate.metrics import UtteranceScore

STYLE_SUB = "bold reverse yellow"
STYLE_DEL = "bold red"
STYLE_INS = "bold green"
STYLE_GUTTER = "dim"
STYLE_LABEL = {"A": "bold cyan", "B": "bold magenta"}
GAP = "*"
GUTTER_REF = "R "
GUTTER_HYP = "H "

_OP_STYLE = {SUB: STYLE_SUB, DEL: STYLE_DEL, INS: STYLE_INS}


@dataclass(frozen=True)
class AlignedModel:
    """One model's hypothesis for the utterance; `role` is "A", "B" or "" (another model)."""

    name: str
    score: UtteranceScore
    role: str = ""


@dataclass(frozen=True)
class UtteranceAlignment:
    id: str
    reference: str
    models: list[AlignedModel] = field(default_factory=list)


def _wordish(cell: Cell) -> bool:
    """A one-cell column of ASCII letters/digits (or a gap), which needs no space next to its kind."""
    if cell.width != 1:
        return False
    chars = (cell.ref + cell.hyp).replace(GAP, "").strip()
    return all(ch.isascii() and (ch.isalnum() or ch in "%'") for ch in chars)


def wrap_cells(cells: list[Cell], width: int) -> list[list[tuple[str, Cell]]]:
    """Cells split into lines of at most `width` cells; each cell paired with the separator before it."""
    lines: list[list[tuple[str, Cell]]] = []
    line: list[tuple[str, Cell]] = []
    used = 0
    prev: Cell | None = None
    for cell in cells:
        sep = "" if prev is None or (_wordish(prev) and _wordish(cell)) else " "
        if line and used + len(sep) + cell.width > width:
            lines.append(line)
            line, used, sep = [], 0, ""
        line.append((sep, cell))
        used += len(sep) + cell.width
        prev = cell
    if line:
        lines.append(line)
    return lines


def aligned_lines(score: UtteranceScore, width: int) -> list[tuple[Text, Text]]:
    """(reference line, hypothesis line) pairs, wrapped to `width` cells including the gutter."""
    body = max(width - len(GUTTER_REF), 2)
    out = []
    for line in wrap_cells(display_cells(score.columns(), gap=GAP), body):
        ref = Text()
        hyp = Text()
        ref.append(GUTTER_REF, style=STYLE_GUTTER)
        hyp.append(GUTTER_HYP, style=STYLE_GUTTER)
        for sep, cell in line:
            style = _OP_STYLE.get(cell.op, "")
            ref.append(sep)
            hyp.append(sep)
            # A deletion marks the reference character it lost, an insertion the character it added;
            # the `*` placeholder on the other side carries the same colour.
            ref.append(cell.ref, style=style if cell.op != EQUAL else "")
            hyp.append(cell.hyp, style=style if cell.op != EQUAL else "")
        out.append((ref, hyp))
    return out


def render_alignment(utterance: UtteranceAlignment | None, width: int, empty: str = "") -> Text:
    """The whole view as one Text, every line at most `width` cells (headers may wrap)."""
    if utterance is None:
        return Text(empty, style="dim")
    width = max(width, 8)
    lines: list[Text] = []
    head = Text()
    head.append(utterance.id, style="bold")
    head.append("  ")
    head.append(utterance.reference or "(empty reference)")
    lines.append(head)
    for model in utterance.models:
        s = model.score
        label = Text()
        if model.role:
            label.append(f"{model.role} ", style=STYLE_LABEL.get(model.role[0], "bold"))
        label.append(model.name, style="bold" if model.role else "")
        label.append(f" CER {pct(s.cer)}", style="bold" if s.errors else "green")
        if s.missing:
            detail = Text(" no hypothesis", style=STYLE_DEL)
        elif s.errors:
            detail = Text(f" S{s.sub} D{s.dele} I{s.ins}", style="dim")
        else:
            detail = Text(" exact", style="green")
        if label.cell_len + detail.cell_len <= width or s.missing:
            label.append_text(detail)  # the counts are dropped when they would wrap: the lines below show them
        lines.append(label)
        pairs = aligned_lines(s, width)
        if not pairs:
            lines.append(Text(f"{GUTTER_REF}(both empty)", style="dim"))
        for ref, hyp in pairs:
            lines.append(ref)
            lines.append(hyp)
    return Text("\n").join(lines)


class _Alignment:
    """A Rich renderable that lays itself out at the width it is given."""

    def __init__(self, utterance: UtteranceAlignment | None, empty: str) -> None:
        self.utterance = utterance
        self.empty = empty

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield render_alignment(self.utterance, options.max_width, self.empty)


class AlignmentView(VerticalScroll):
    """Scrollable (focus it and use the arrow keys) alignment of one utterance."""

    def __init__(self, empty: str = "Select an utterance to see its alignment.", **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty = empty
        self.utterance: UtteranceAlignment | None = None

    def compose(self) -> ComposeResult:
        yield Static(_Alignment(None, self.empty), classes="alignment-body")

    def show(self, utterance: UtteranceAlignment | None, empty: str | None = None) -> None:
        if empty is not None:
            self.empty = empty
        same = utterance is not None and self.utterance is not None and utterance.id == self.utterance.id
        self.utterance = utterance
        if self.is_mounted:
            self.query_one(".alignment-body", Static).update(_Alignment(utterance, self.empty))
            if not same:  # a re-scored utterance keeps its scroll position; another one starts at the top
                self.scroll_home(animate=False)

    def text(self, width: int | None = None) -> Text:
        """What the view shows, at `width` cells (default: its current width)."""
        return render_alignment(self.utterance, width or max(self.scrollable_content_region.width, 8), self.empty)

