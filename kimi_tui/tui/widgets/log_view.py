"""A run's stdout.log, live, at any output rate, in bounded memory.

Stages print a lot and for days: a line per step, tqdm bars redrawn with \\r,
Chinese text cut mid-character by a buffered write, and now and then a script
that prints 10,000 lines a second. Holding or re-rendering the whole log would
make the UI fall behind and grow without limit, so the work is split the way
toolong does it: a background thread reads only the bytes appended since its
last read (woken by inotify through watchfiles, or by a 100 ms poll where that
is unavailable), turns them into finished lines, and hands the UI one batch at
a time, never more than one in flight (while the UI is busy the thread keeps
collecting into a bounded buffer). The widget keeps the last MAX_LINES lines
and draws only the rows on screen.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
from collections import deque
from pathlib import Path

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

MAX_LINES = 10_000
TAIL_BYTES = 4 * 1024 * 1024  # how much of an existing log is shown when following starts
READ_BYTES = 8 * 1024 * 1024  # the most read per wake-up, so a huge backlog cannot stall one batch
MAX_PARTIAL = 64 * 1024  # output without a newline for this long is shown as a line of its own
POLL_S = 0.1
WATCH_DEBOUNCE_MS = 100  # the longest watchfiles groups changes while output keeps coming

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")  # \x1b stays: ANSI colour is rendered
_ERROR_WORDS = re.compile(r"\b(error|exception|traceback|failed|fatal)\b", re.I)
_WARNING_WORDS = re.compile(r"\bwarn(ing)?s?\b", re.I)


def collapse_carriage_returns(text: str) -> str:
    """A line redrawn with \\r (a progress bar) shows only its last drawing."""
    if "\r" not in text:
        return text
    for segment in reversed(text.split("\r")):
        if segment.strip():
            return segment
    return ""


def clean_line(line: str) -> str:
    line = collapse_carriage_returns(line)
    if "\t" in line:
        line = line.expandtabs()
    return _CONTROL.sub("\ufffd", line)


class LogTail:
    """The reading side (runs in the tail thread): appended bytes -> finished lines.

    Keeps the byte offset, an incremental UTF-8 decoder (a character split across
    two writes is decoded once both halves are there; invalid bytes become U+FFFD),
    and the unfinished last line, which is shown as it is until its newline comes.
    """

    def __init__(self, path: Path, max_lines: int = MAX_LINES, tail_bytes: int = TAIL_BYTES) -> None:
        self.path = path
        self.tail_bytes = tail_bytes
        self.pending: deque[str] = deque(maxlen=max_lines)
        self.reset = True
        self._restart()

    def _restart(self) -> None:
        self.offset = 0
        self.inode: int | None = None
        self.partial = ""
        self.skip_to_newline = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending.clear()
        self.posted_partial = ""
        self.width = 0

    def read(self) -> int:
        """Read what was appended (at most READ_BYTES); how many bytes that was."""
        try:
            fh = open(self.path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            return 0
        with fh:
            st = os.fstat(fh.fileno())
            if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
                self._restart()  # replaced or truncated: start over
                self.reset = True
            if self.inode is None:
                self.inode = st.st_ino
                if st.st_size > self.tail_bytes:
                    self.offset = st.st_size - self.tail_bytes
                    self.skip_to_newline = True
                    self._add([f"… {self.offset:,} earlier bytes not shown (the whole log: {self.path})"])
            if st.st_size <= self.offset:
                return 0
            fh.seek(self.offset)
            data = fh.read(READ_BYTES)
        size = len(data)
        self.offset += size
        if self.skip_to_newline:
            newline = data.find(b"\n")
            if newline < 0:
                return size
            data = data[newline + 1 :]
            self.skip_to_newline = False
        text = self.partial + self.decoder.decode(data)
        lines = text.split("\n")
        partial = lines.pop()
        # Keep only the last drawing of a redrawn line (a trailing \r still counts).
        cut = partial.rfind("\r", 0, len(partial) - 1)
        if cut >= 0:
            partial = partial[cut + 1 :]
        while len(partial) > MAX_PARTIAL:
            lines.append(partial[:MAX_PARTIAL])
            partial = partial[MAX_PARTIAL:]
        self.partial = partial
        self._add(clean_line(line) for line in lines)
        return size

    def _add(self, lines) -> None:
        lines = list(lines)[-(self.pending.maxlen or 0) :]
        if lines:
            self.pending.extend(lines)
            self.width = max(self.width, max(cell_len(line) for line in lines))

    def has_news(self) -> bool:
        return self.reset or bool(self.pending) or self.partial != self.posted_partial

    def take(self) -> tuple[list[str], str, bool, int]:
        lines = list(self.pending)
        self.pending.clear()
        reset, self.reset = self.reset, False
        self.posted_partial = self.partial
        return lines, clean_line(self.partial), reset, self.width


class LogView(ScrollView, can_focus=True):
    """The followed run's stdout.log; the last MAX_LINES lines, newest at the bottom."""

    COMPONENT_CLASSES = {"log-view--error", "log-view--warning", "log-view--placeholder"}
    DEFAULT_CSS = """
    LogView {
        background: $surface;
        & > .log-view--error { color: $text-error; }
        & > .log-view--warning { color: $text-warning; }
        & > .log-view--placeholder { color: $text-muted; text-style: italic; }
    }
    """
    BINDINGS = [
        Binding("end", "scroll_end", "Tail", show=False, id="log.tail",
                tooltip="Jump to the newest line and keep following"),
    ]

    follow_tail: reactive[bool] = reactive(True)
    """Keep the newest line in view as output arrives (scrolling up pauses it)."""

    class LinesRead(Message, bubble=False):
        """One batch from the tail thread."""

        def __init__(self, generation: int, lines: list[str], partial: str, reset: bool, width: int) -> None:
            super().__init__()
            self.generation = generation
            self.lines = lines
            self.partial = partial
            self.reset = reset
            self.width = width

    def __init__(self, max_lines: int = MAX_LINES, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.max_lines = max_lines
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._partial = ""
        self._width = 0
        self._generation = 0
        self._stop: threading.Event | None = None
        self._consumed = threading.Event()
        self.path: Path | None = None
        self._label = ""
        self._placeholder = "no run followed"

    # -- what the panel calls -------------------------------------------------

    def follow(self, path: Path | None, label: str = "") -> None:
        """Show PATH from (near) its end and keep reading what is appended; None shows nothing."""
        if path == self.path and self._stop is not None:
            return
        self._stop_tail()
        self._generation += 1
        self.path = path
        self._label = label
        self._lines.clear()
        self._partial = ""
        self._width = 0
        self._placeholder = f"waiting for output in {path}" if path else "no run followed"
        self.follow_tail = True
        self._update_size()
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._update_title()
        self.refresh()
        if path is not None:
            self._stop = threading.Event()
            self._consumed = threading.Event()
            self._consumed.set()
            self._tail(path, self._generation, self._stop, self._consumed)

    @property
    def lines(self) -> list[str]:
        """The finished lines held now (the unfinished last one is `partial`)."""
        return list(self._lines)

    @property
    def partial(self) -> str:
        return self._partial

    @property
    def line_count(self) -> int:
        return len(self._lines) + (1 if self._partial else 0)

    # -- the tail thread --------------------------------------------------------

    @work(thread=True, name="log tail", exit_on_error=False, group="log-tail")
    def _tail(self, path: Path, generation: int, stop: threading.Event, consumed: threading.Event) -> None:
        tail = LogTail(path, self.max_lines)

        def pump() -> None:
            for _ in range(4):  # a backlog is read in a few chunks; the buffer keeps only the newest lines
                if tail.read() < READ_BYTES or stop.is_set():
                    break
            if tail.has_news() and consumed.is_set() and not stop.is_set():
                consumed.clear()
                self.post_message(self.LinesRead(generation, *tail.take()))

        pump()
        try:
            from watchfiles import watch

            # The run directory, not the file: stdout.log may not exist yet. Timeouts
            # yield too, so held-back lines go out and a missed event costs 0.5 s.
            for _changes in watch(
                path.parent, watch_filter=None, recursive=False, stop_event=stop,
                debounce=WATCH_DEBOUNCE_MS, step=20, rust_timeout=500, yield_on_timeout=True,
                raise_interrupt=False,
            ):
                pump()
            return
        except Exception:  # no inotify (limits, some network filesystems), no folder yet: poll
            pass
        while not stop.wait(POLL_S):
            pump()

    def _stop_tail(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    def on_unmount(self) -> None:
        self._stop_tail()

    def on_log_view_lines_read(self, message: LinesRead) -> None:
        if message.generation != self._generation:
            return
        try:
            if message.reset:
                self._lines.clear()
                self._width = 0
            before = len(self._lines)
            self._lines.extend(message.lines)
            dropped = before + len(message.lines) - len(self._lines)
            self._partial = message.partial
            self._width = max(self._width, message.width, cell_len(message.partial))
            self._update_size()
            if self.follow_tail:
                self.scroll_end(animate=False, immediate=True, x_axis=False)
            elif dropped:  # keep the lines being read in place while older ones fall off
                self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
            self.refresh()
        finally:
            self._consumed.set()

    # -- scrolling and follow-tail ----------------------------------------------

    def _update_size(self) -> None:
        self.virtual_size = Size(self._width, self.line_count)

    def _update_title(self) -> None:
        if self.path is None:
            self.border_title = "log"
            return
        mode = "following" if self.follow_tail else "paused (End follows)"
        self.border_title = f"{self._label or self.path.parent.name} · {self.path.name} · {mode}"

    def watch_follow_tail(self, follow: bool) -> None:
        self._update_title()
        if follow and self.is_mounted:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self, _event: events.Resize) -> None:
        # Batches that came while the tab was hidden scrolled a zero-height view.
        if self.follow_tail:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    def on_show(self, _event: events.Show) -> None:
        if self.follow_tail:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    def action_scroll_up(self) -> None:
        self.follow_tail = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow_tail = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow_tail = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.follow_tail = True

    def on_mouse_scroll_up(self, _event: events.MouseScrollUp) -> None:
        self.follow_tail = False

    # -- drawing: only the rows on screen ----------------------------------------

    def _line_at(self, index: int) -> str | None:
        if 0 <= index < len(self._lines):
            return self._lines[index]
        if index == len(self._lines) and self._partial:
            return self._partial
        return None

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        index = scroll_y + y
        line = self._line_at(index)
        if line is None:
            if index == 0 and self.line_count == 0:
                text = Text(self._placeholder, style=base + self.get_component_rich_style("log-view--placeholder"))
                return Strip(text.render(self.app.console)).crop_extend(0, width, base)
            return Strip.blank(width, base)
        style = base + self._line_style(line)
        if "\x1b" in line:
            text = Text.from_ansi(line, no_wrap=True)
            text.stylize_before(style)
        else:
            text = Text(line, style=style, no_wrap=True)
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _line_style(self, line: str) -> Style:
        if _ERROR_WORDS.search(line):
            return self.get_component_rich_style("log-view--error", partial=True)
        if _WARNING_WORDS.search(line):
            return self.get_component_rich_style("log-view--warning", partial=True)
        return Style()
