"""Typed text from the Config panel's form (or doctor's options) into a validated config:
set_field coerces "1e-5", "yes", "[a, b]" by the field's annotation and re-validates.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from kimi_tui.errors import ConfigError
from kimi_tui.config.schema import CONFIG_FILENAME, ProjectConfig, _tables
from kimi_tui.config.wording import _suggest, _validate


_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


_FAIL = object()


def _coerce(annotation: Any, raw: str) -> Any:
    """Turn form text into the field's type, as far as it goes; on failure return ``raw``
    unchanged so validation reports it in the usual words."""
    value = _coerce_or_fail(annotation, raw)
    return raw if value is _FAIL else value


def _coerce_or_fail(annotation: Any, raw: str) -> Any:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    text = raw.strip()
    if annotation is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return _FAIL
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            as_float = float(text)  # "1e3" -> 1000
        except ValueError:
            return _FAIL
        return int(as_float) if as_float.is_integer() else _FAIL
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            return _FAIL
    if annotation is str:
        return raw
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        for choice in args:
            if isinstance(choice, str) and choice.lower() == text.lower():
                return choice
            if isinstance(choice, int) and text == str(choice):
                return choice
        return _FAIL
    if origin is list:
        if text.startswith("["):
            try:
                value = tomlkit.value(text).unwrap()
            except Exception:
                return _FAIL
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            return _FAIL
        return [_coerce(args[0], v) if isinstance(v, str) else v for v in value]
    if origin in (Union, types.UnionType):
        # Literal members first: "auto" must stay "auto", not become a list or fail as int.
        ordered = sorted(args, key=lambda a: get_origin(a) is not Literal)
        for member in ordered:
            value = _coerce_or_fail(member, raw)
            if value is not _FAIL:
                return value
        return _FAIL
    return _FAIL


def set_field(config: ProjectConfig, dotted: str, raw: Any, *, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """A copy of ``config`` with ``table.key`` set to ``raw``, validated.

    A string is read the way a user types it in a form ("20" -> 20, "true" -> True,
    "3e-6" -> 3e-6, "auto" stays "auto", "test, train" -> ["test", "train"]); any
    other value is used as is. Raises ConfigError (message prefixed by ``source``).
    """
    tables = _tables()
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        homes = [f"{t}.{dotted.strip()}" for t, s in tables.items() if dotted.strip() in s.model_fields]
        hint = f": did you mean '{homes[0]}'?" if homes else " (e.g. 'train.epochs')"
        raise ConfigError(f"{source}: '{dotted}' is not a setting name of the form table.key{hint}")
    table, key = parts
    if table not in tables:
        guess = _suggest(table, list(tables))
        hint = f": did you mean [{guess}]?" if guess else f"; valid tables are {', '.join(f'[{t}]' for t in tables)}"
        raise ConfigError(f"{source}: unknown table [{table}]{hint}")
    fields = tables[table].model_fields
    if key not in fields:
        guess = _suggest(key, list(fields))
        hint = f": did you mean '{guess}'?" if guess else f"; valid keys are {', '.join(fields)}"
        raise ConfigError(f"{source}: [{table}] unknown key '{key}'{hint}")
    value = _coerce(fields[key].annotation, raw) if isinstance(raw, str) else raw
    data = config.model_dump()
    data[table][key] = value
    return _validate(data, source, None)
