"""The training loss as a curve in a few terminal rows.

Whether the loss still falls is the first thing to check on a run, and a
column of numbers in the log does not show a trend at a glance. plotext draws
into text (braille dots: two points per cell across), so the curve is redrawn
only when a point arrives or the widget is resized, and long runs are thinned
to a couple of points per column first: the drawing costs the same at step 100
and at step 100,000.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

import plotext as plt

MAX_POINTS = 20_000  # kept per run; beyond that every other point is dropped (the shape stays)


def thin(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most ~2 points per column: the mean of each bucket, in step order."""
    limit = max(2, columns * 2)
    if len(points) <= limit:
        return points
    size = len(points) / limit
    out = []
    for i in range(limit):
        bucket = points[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]
        out.append((sum(p[0] for p in bucket) / len(bucket), sum(p[1] for p in bucket) / len(bucket)))
    return out


class LossPlot(Widget):
    """Loss against step for the followed run; says so when it has none."""

    DEFAULT_CSS = """
    LossPlot { color: $accent; }
    LossPlot.-empty { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.add_class("-empty")
        self.points: list[tuple[float, float]] = []
        self._cache_key: tuple | None = None
        self._cache: Text | None = None
        self.empty_text = "no loss values yet (train writes them as it logs)"

    def clear(self, empty_text: str | None = None) -> None:
        self.points = []
        if empty_text is not None:
            self.empty_text = empty_text
        self.add_class("-empty")
        self.refresh()

    def add_points(self, points: list[tuple[float, float]]) -> None:
        if not points:
            return
        self.points.extend(points)
        if len(self.points) > MAX_POINTS:
            self.points = self.points[::2]
        self.remove_class("-empty")
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if not self.points:
            return Text(self.empty_text)
        if width < 12 or height < 4:
            step, loss = self.points[-1]
            return Text(f"loss {loss:.4g} @ {step:g}")
        key = (len(self.points), self.points[-1], width, height)
        if key != self._cache_key:
            shown = thin(self.points, width)
            xs = [p[0] for p in shown]
            ys = [p[1] for p in shown]
            plt.clear_figure()
            plt.plot(xs, ys, marker="braille")
            plt.plotsize(width, height)
            plt.theme("clear")
            text = Text.from_ansi(plt.build())
            text.no_wrap = True
            self._cache_key, self._cache = key, text
        return self._cache or Text("")
