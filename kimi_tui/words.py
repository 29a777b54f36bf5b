"""Counts as a reader says them ("1 row", "2 clips", "12,000 rows"): one helper, so no panel or
command writes "1 rows" or falls back to "row(s)". Headless: the CLI and the TUI both use it."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 row', '2 rows', '1,204 clips'; MANY for a word whose plural is not WORD + 's'."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
