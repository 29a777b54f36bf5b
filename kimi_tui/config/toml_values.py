"""Values written as TOML: the same spelling when the file is saved and when a message quotes one.
"""

from __future__ import annotations

import math
import re
from typing import Any

from kimi_tui.config.locator import _BARE_KEY



def format_float(value: float) -> str:
    """A float as TOML and the Config form write it (3e-6, not Python's 3e-06; nan, inf): one
    spelling, so a value typed into the form reads back as it was saved."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:  # 3e-06 -> 3e-6
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fmt_value(value: Any) -> str:
    """``value`` written as TOML."""
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value and not _CONTROL.search(value):
            return f"'{value}'"  # Windows paths read better without doubled backslashes
        return tomlkit.string(value).as_string()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_fmt_key(k)} = {_fmt_value(v)}" for k, v in value.items()) + " }"
    try:
        return tomlkit.item(value).as_string()
    except Exception:
        return str(value)


def _fmt_key(key: Any) -> str:
    """A key of an inline table as TOML writes it: bare, or quoted and escaped."""
    key = str(key)
    return key if re.fullmatch(_BARE_KEY, key) else _fmt_value(key)


def _fmt_shown(value: Any) -> str:
    """``value`` for an error message: TOML syntax, shortened."""
    text = _fmt_value(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text


