"""A table that draws only the rows on screen, so a 100,000-row data set opens at once.

Why not Textual's DataTable: it creates a row object and measures every cell of
every row when rows are added, so filling it with 100,000 utterances takes
seconds, and re-filling it on every keystroke of a search is out of the
question (benchmarks/dataset_panel.py measures both). The rows shown here are
read-only views of data the panel already holds, so this table needs only the
number of rows and a function that formats row ``i``; it renders the twenty or
so visible lines on demand through the Line API (``ScrollView.render_line``),
with a header that stays put, a cursor row, and column widths counted in
terminal cells (``rich.cells``) so Chinese transcripts (two cells a character)
line up and are cut at a character boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | tuple[str, str]  # text, or (text, kind) to colour one cell ("error", "warning", "note")
RowRenderer = Callable[[int], tuple[Sequence[Cell], str]]  # row index -> (cells, row kind or "")
KINDS = ("error", "warning", "note", "excluded", "muted")


class Column(NamedTuple):
    label: str
    width: int = 0  # in terminal cells; 0 = the flexible column, which takes the width left over
    justify: Literal["left", "right"] = "left"


def fit(text: str, width: int, justify: str = "left") -> str:
    """``text`` cut or padded to exactly ``width`` cells; a cut is marked with an ellipsis."""
    if width <= 0:
        return ""
    if text.isascii():
        size = len(text)
        if size > width:
            return text[: width - 1] + "…"
    else:
        if "\n" in text or "\t" in text:
            text = " ".join(text.split())
        size = cell_len(text)
        if size > width:
            return set_cell_size(text, width - 1) + "…"
    pad = " " * (width - size)
    return pad + text if justify == "right" else text + pad


def column_width(values: Sequence[str], *, minimum: int, maximum: int, sample: int = 20000) -> int:
    """Widest of ``values`` in cells, between minimum and maximum (long lists: a spread-out sample)."""
    if len(values) > sample:
        step = len(values) // sample
        values = values[::step]
    widest = minimum
    for value in values:
        size = len(value) if value.isascii() else cell_len(value)
        if size > widest:
            widest = size
            if widest >= maximum:
                return maximum
    return widest


class UtteranceTable(ScrollView, can_focus=True, inherit_bindings=False):
    """Rows 0..count-1 drawn by a callback; line 0 of the widget is the column header."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False, tooltip="Cursor to the previous row"),
        Binding("down", "cursor_down", "Down", show=False, tooltip="Cursor to the next row"),
        Binding("pageup", "page_up", "Page up", show=False, tooltip="Cursor one screen up"),
        Binding("pagedown", "page_down", "Page down", show=False, tooltip="Cursor one screen down"),
        Binding("home", "first", "Home", show=False, tooltip="Cursor to the first row"),
        Binding("end", "last", "End", show=False, tooltip="Cursor to the last row"),
        Binding("enter", "select", "Open", show=False, tooltip="Open the row under the cursor"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "utterance-table--header",
        "utterance-table--cursor",
        "utterance-table--cursor-blurred",
        "utterance-table--empty",
        *(f"utterance-table--{kind}" for kind in KINDS),
    }

    DEFAULT_CSS = """
    UtteranceTable {
        height: 1fr;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        background: $surface;
    }
    UtteranceTable > .utterance-table--header { text-style: bold; background: $panel; color: $text; }
    UtteranceTable > .utterance-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    UtteranceTable > .utterance-table--cursor-blurred { background: $block-cursor-blurred-background; }
    UtteranceTable > .utterance-table--empty { color: $text-muted; text-style: italic; }
    UtteranceTable > .utterance-table--error { color: $text-error; }
    UtteranceTable > .utterance-table--warning { color: $text-warning; }
    UtteranceTable > .utterance-table--note { color: $text-muted; }
    UtteranceTable > .utterance-table--excluded { color: $text-error; text-style: italic; }
    UtteranceTable > .utterance-table--muted { color: $text-muted; }
    """

    class _RowMessage(Message):
        def __init__(self, table: "UtteranceTable", row: int) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> "UtteranceTable":
            return self.table

    class Highlighted(_RowMessage):
        """The cursor moved to ``row`` (-1: the table is empty)."""

    class Selected(_RowMessage):
        """Enter (or a double click) on ``row``."""

    def __init__(self, columns: Sequence[Column] = (), *, empty_text: str = "no rows", name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.columns: list[Column] = list(columns)
        self.empty_text = empty_text
        self.row_count = 0
        self.cursor_row = 0
        self._renderer: RowRenderer | None = None
        self._generation = 0  # bumped whenever rows or columns change: keys the line cache
        self._cache: LRUCache[tuple, Strip] = LRUCache(1024)
        self._widths_cache: tuple[int, int, list[int]] | None = None

    # ------------------------------------------------------------------ data

    def set_columns(self, columns: Sequence[Column]) -> None:
        self.columns = list(columns)
        self._invalidate()

    def set_rows(self, count: int, renderer: RowRenderer, *, cursor: int = 0) -> None:
        """Show ``count`` rows drawn by ``renderer``; the cursor goes to ``cursor`` (clamped)."""
        self.row_count = count
        self._renderer = renderer
        self.virtual_size = Size(0, count + 1)
        self._invalidate()
        self.cursor_row = max(0, min(cursor, count - 1))
        self._scroll_to_cursor(center=True)
        self.post_message(self.Highlighted(self, self.cursor_row if count else -1))

    def refresh_rows(self) -> None:
        """Redraw every row (the data behind the renderer changed in place)."""
        self._invalidate()

    def _invalidate(self) -> None:
        self._generation += 1
        self._widths_cache = None
        self._cache.clear()
        self.refresh()

    # ------------------------------------------------------------------ cursor

    @property
    def data_height(self) -> int:
        """How many rows fit under the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def move_cursor(self, row: int, *, center: bool = False) -> None:
        if not self.row_count:
            return
        row = max(0, min(row, self.row_count - 1))
        old = self.cursor_row
        self.cursor_row = row
        if old != row:
            self.refresh_line(old + 1)
            self.refresh_line(row + 1)
        self._scroll_to_cursor(center=center)
        if old != row:
            self.post_message(self.Highlighted(self, row))

    def _scroll_to_cursor(self, *, center: bool = False) -> None:
        if not self.scrollable_content_region.height:
            return  # not laid out yet; on_resize scrolls once it is
        top = round(self.scroll_y)
        visible = self.data_height
        row = self.cursor_row
        if center and not (top <= row < top + visible):
            target = row - visible // 2
        elif row < top:
            target = row
        elif row >= top + visible:
            target = row - visible + 1
        else:
            return
        # force: right after set_rows the scrollbar (which gates scrolling) is not updated yet
        self.scroll_to(y=max(0, target), animate=False, force=True)

    def on_resize(self, _event: events.Resize) -> None:
        self._widths_cache = None
        self._scroll_to_cursor()

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self.data_height)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self.data_height)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.row_count - 1)

    def action_select(self) -> None:
        if self.row_count:
            self.post_message(self.Selected(self, self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1 or not self.row_count:
            return
        row = round(self.scroll_y) + offset.y - 1
        if row < self.row_count:
            self.move_cursor(row)
            if event.chain >= 2:
                self.action_select()

    def on_focus(self, _event: events.Focus) -> None:
        self.refresh()

    def on_blur(self, _event: events.Blur) -> None:
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()

    # ------------------------------------------------------------------ drawing

    def _widths(self, width: int) -> list[int]:
        """Column widths for a line of ``width`` cells: fixed columns as given, the flexible one takes the rest."""
        if self._widths_cache is not None and self._widths_cache[:2] == (width, self._generation):
            return self._widths_cache[2]
        gaps = len(self.columns) + 1  # one space before each column and at the end
        fixed = sum(c.width for c in self.columns)
        flexible = sum(1 for c in self.columns if not c.width)
        room = max(0, width - fixed - gaps)
        widths = [c.width or max(6, room // max(1, flexible)) for c in self.columns]
        overflow = sum(widths) + gaps - width
        if overflow > 0:  # a narrow window: shrink the widest column first
            widest = max(range(len(widths)), key=widths.__getitem__)
            widths[widest] = max(1, widths[widest] - overflow)
        self._widths_cache = (width, self._generation, widths)
        return widths

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        if y == 0:
            return self._cached(("header", width), lambda: self._render_header(width, base))
        row = round(self.scroll_y) + y - 1
        if not self.row_count:
            if y == 1:
                style = base + self.get_component_rich_style("utterance-table--empty")
                return Strip([Segment(fit(" " + self.empty_text, width), style)], width)
            return Strip.blank(width, base)
        if row >= self.row_count:
            return Strip.blank(width, base)
        focused = self.has_focus
        cursor = row == self.cursor_row
        key = (row, cursor, focused, width)
        return self._cached(key, lambda: self._render_row(row, width, base, cursor, focused))

    def _cached(self, key: tuple, make: Callable[[], Strip]) -> Strip:
        key = (*key, self._generation)
        strip = self._cache.get(key)
        if strip is None:
            strip = make()
            self._cache[key] = strip
        return strip

    def _render_header(self, width: int, base: Style) -> Strip:
        style = base + self.get_component_rich_style("utterance-table--header")
        widths = self._widths(width)
        text = " " + " ".join(fit(c.label, w, c.justify) for c, w in zip(self.columns, widths)) + " "
        return Strip([Segment(fit(text, width), style)], width)

    def _render_row(self, row: int, width: int, base: Style, cursor: bool, focused: bool) -> Strip:
        assert self._renderer is not None
        cells, kind = self._renderer(row)
        row_style = base
        if kind:
            row_style += self.get_component_rich_style(f"utterance-table--{kind}")
        if cursor:
            name = "utterance-table--cursor" if focused else "utterance-table--cursor-blurred"
            row_style += self.get_component_rich_style(name)
        segments = [Segment(" ", row_style)]
        used = 1
        for column, column_width_, cell in zip(self.columns, self._widths(width), cells):
            if isinstance(cell, tuple):
                text, cell_kind = cell
                style = row_style
                if cell_kind and not cursor:
                    style = row_style + self.get_component_rich_style(f"utterance-table--{cell_kind}")
            else:
                text, style = cell, row_style
            segments.append(Segment(fit(text, column_width_, column.justify), style))
            segments.append(Segment(" ", row_style))
            used += column_width_ + 1
        if used < width:
            segments.append(Segment(" " * (width - used), row_style))
        return Strip(segments).crop_extend(0, width, row_style)
