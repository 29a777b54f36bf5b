"""Which line of the raw text a table or key stands on, so an error names kimi-tui.toml:LINE.

The TOML parser keeps no positions; a small scanner of headers and keys finds them again.
"""

from __future__ import annotations

import re
from typing import Any




_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY_PART = rf'(?:{_BARE_KEY}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?$")
_KEYVAL_RE = re.compile(rf"^\s*({_DOTTED_KEY})\s*=\s*(.*)$")
_INLINE_KEY_RE = re.compile(rf"(?:^|[{{,])\s*({_DOTTED_KEY})\s*=")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _split_key(dotted: str) -> tuple[str, ...]:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    parts = re.findall(_KEY_PART, dotted)
    out = []
    for part in parts:
        if part[:1] == '"':
            try:
                part = tomlkit.parse(f"x = {part}")["x"]
            except Exception:
                part = part[1:-1]
        elif part[:1] == "'":
            part = part[1:-1]
        out.append(str(part))
    return tuple(out)


class _LineIndex:
    """Best-effort map from key paths to 1-based line numbers in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.duplicates: list[tuple[tuple[str, ...], int]] = []
        self._headers: set[tuple[str, ...]] = set()
        table: tuple[str, ...] = ()
        closing: str | None = None  # inside a multi-line string ending with this
        depth = 0  # open brackets of a multi-line array / inline table
        # TOML breaks lines at LF (or CRLF) only; str.splitlines() would also break inside
        # strings and comments at U+2028, U+0085, \x1c... and shift every later line number.
        for lineno, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if closing is not None:
                if closing in line:
                    closing = None
                continue
            if depth > 0:
                depth = max(0, depth + self._bracket_delta(line))
                continue
            header = _HEADER_RE.match(line)
            if header:
                table = _split_key(header.group(2))
                self._record(table, lineno, is_table=True)
                continue
            keyval = _KEYVAL_RE.match(line)
            if not keyval:
                continue
            path = table + _split_key(keyval.group(1))
            for i in range(len(table) + 1, len(path)):
                self.lines.setdefault(path[:i], lineno)
            self._record(path, lineno)
            value = keyval.group(2)
            for quote in ('"""', "'''"):
                if value.lstrip().startswith(quote) and value.count(quote) == 1:
                    closing = quote
                    break
            else:
                if value.lstrip().startswith("{"):
                    stripped = _STRING_RE.sub('""', value)
                    for inner in _INLINE_KEY_RE.finditer(stripped):
                        self.lines.setdefault(path + _split_key(inner.group(1)), lineno)
                depth = max(0, self._bracket_delta(value))

    def _record(self, path: tuple[str, ...], lineno: int, is_table: bool = False) -> None:
        if path in self.lines:
            if not is_table or path in self._headers:
                self.duplicates.append((path, lineno))
        else:
            self.lines[path] = lineno
        if is_table:
            self._headers.add(path)

    @staticmethod
    def _bracket_delta(line: str) -> int:
        line = _STRING_RE.sub('""', line).split("#", 1)[0]
        return line.count("[") + line.count("{") - line.count("]") - line.count("}")

    def find(self, *paths: tuple[Any, ...]) -> int | None:
        for path in paths:
            key = tuple(str(p) for p in path if not isinstance(p, int))
            if key and key in self.lines:
                return self.lines[key]
        return None


