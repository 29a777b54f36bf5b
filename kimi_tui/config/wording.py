"""pydantic's validation errors in the user's words: file, line, [table] key, what was expected,
and "did you mean" for a near name; every problem at once, so one edit fixes them all.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args, get_origin

from pydantic import ValidationError

from kimi_tui.errors import ConfigError
from kimi_tui.config.locator import _LineIndex
from kimi_tui.config.schema import ProjectConfig, _CUSTOM, _tables
from kimi_tui.config.toml_values import _fmt_shown, _fmt_value, format_float



def _prefix(source: str, line: int | None) -> str:
    return f"{source}:{line}: " if line else f"{source}: "


def _suggest(word: str, choices: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _field_annotation(table: str, key: str) -> Any:
    section = _tables().get(table)
    if section is None or key not in section.model_fields:
        return None
    return section.model_fields[key].annotation


def _kind(annotation: Any) -> str:
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string in quotes"
    origin = get_origin(annotation)
    if origin is list:
        return "a list"
    if origin is Literal:
        return "one of " + ", ".join(_fmt_value(a) for a in get_args(annotation))
    return "a different kind of value"


def _example(table: str, key: str) -> str | None:
    section = _tables().get(table)
    if section is None or key not in section.model_fields:
        return None
    info = section.model_fields[key]
    if info.annotation is bool:
        return None
    if info.examples:
        return _fmt_value(info.examples[0])
    if info.default in ("", None):
        return None
    return _fmt_value(info.default)


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return ()


def _bound(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format_float(value) if isinstance(value, float) else str(value)


def _problem(err: dict[str, Any]) -> str:
    """The part of the message after ``[table] key = value: ``."""
    loc = err["loc"]
    etype = err["type"]
    ctx = err.get("ctx") or {}
    table, key = str(loc[0]), str(loc[1])
    annotation = _field_annotation(table, key)
    if len(loc) > 2 and get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if etype == _CUSTOM:
        return err["msg"]
    if etype == "literal_error":
        values = _literal_values(annotation)
        if values:
            return "allowed values are " + ", ".join(_fmt_value(v) for v in values)
        return f"allowed values are {ctx.get('expected', '')}"
    if etype == "greater_than_equal":
        return f"must be at least {_bound(ctx['ge'])}"
    if etype == "greater_than":
        return f"must be greater than {_bound(ctx['gt'])}"
    if etype == "less_than_equal":
        return f"must be at most {_bound(ctx['le'])}"
    if etype == "less_than":
        return f"must be less than {_bound(ctx['lt'])}"
    if etype == "finite_number":
        return "must be a finite number"
    if etype.endswith("_type") or etype.endswith("_parsing") or etype == "int_from_float":
        text = f"expected {_kind(annotation)}"
        example = _example(table, key) if len(loc) == 2 else None
        if example is not None:
            text += f" (e.g. {example})"
        return text
    msg = err.get("msg", "invalid value")
    return msg[:1].lower() + msg[1:]


def _describe(err: dict[str, Any], source: str, index: _LineIndex | None) -> tuple[int | None, str]:
    loc = err["loc"]
    etype = err["type"]
    tables = _tables()
    line = index.find(loc, loc[:1]) if index else None

    if len(loc) == 1:
        name = str(loc[0])
        if etype == "extra_forbidden":
            if not isinstance(err.get("input"), dict):
                homes = [t for t, section in tables.items() if name in section.model_fields]
                text = f"unknown top-level key '{name}'"
                if homes:
                    text += f": did you mean to put it under [{homes[0]}]?"
                else:
                    text += f": settings belong in a table ({', '.join(f'[{t}]' for t in tables)})"
                return line, _prefix(source, line) + text
            guess = _suggest(name, list(tables))
            text = f"unknown table [{name}]"
            if guess:
                text += f": did you mean [{guess}]?"
            else:
                text += f"; valid tables are {', '.join(f'[{t}]' for t in tables)}"
            return line, _prefix(source, line) + text
        return line, _prefix(source, line) + (
            f"[{name}] = {_fmt_shown(err.get('input'))}: expected a table of settings "
            f"(a [{name}] header followed by key = value lines)"
        )

    table, key = str(loc[0]), str(loc[1])
    if etype == "extra_forbidden" and len(loc) == 2:
        valid = list(tables[table].model_fields) if table in tables else []
        guess = _suggest(key, valid)
        text = f"[{table}] unknown key '{key}'"
        if guess:
            text += f": did you mean '{guess}'?"
        else:
            text += f"; valid keys are {', '.join(valid)}"
        return line, _prefix(source, line) + text

    shown_key = key + "".join(f"[{p}]" for p in loc[2:] if isinstance(p, int))
    text = f"[{table}] {shown_key} = {_fmt_shown(err.get('input'))}: {_problem(err)}"
    return line, _prefix(source, line) + text


def _translate(exc: ValidationError, source: str, text: str | None) -> ConfigError:
    index = _LineIndex(text) if text is not None else None
    found: list[tuple[int | None, int, str]] = []
    seen: set[str] = set()
    for order, err in enumerate(exc.errors()):
        # Union members (e.g. list[str] of checkpoints) report their own loc suffixes like
        # 'list[str]'; drop those so the message shows the field as the user wrote it.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
        err = {**err, "loc": loc}
        line, message = _describe(err, source, index)
        if message not in seen:
            seen.add(message)
            found.append((line, order, message))
    found.sort(key=lambda item: (item[0] is None, item[0] or 0, item[1]))
    return ConfigError("\n".join(message for _, _, message in found))


def _validate(data: Any, source: str, text: str | None) -> ProjectConfig:
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, source, text) from None


