"""Reading and writing kimi-tui.toml: parse and validate; save only the values that changed, in place
(tomlkit), so a user's comments and layout survive every save from the TUI.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from kimi_tui.errors import ConfigError
from kimi_tui.fsutil import atomic_write_text
from kimi_tui.config.locator import _LineIndex
from kimi_tui.config.schema import CONFIG_FILENAME, ProjectConfig, TABLE_HELP, _tables
from kimi_tui.config.toml_values import _fmt_value
from kimi_tui.config.wording import _prefix, _validate



def _parse_toml(text: str, source: str) -> Any:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        reason = re.sub(r" at line \d+ col \d+$", "", str(exc))
        raise ConfigError(f"{source}:{exc.line}:{exc.col}: invalid TOML: {reason}") from None
    except tomlkit.exceptions.TOMLKitError as exc:
        index = _LineIndex(text)
        line = index.duplicates[0][1] if index.duplicates else None
        raise ConfigError(f"{_prefix(source, line)}invalid TOML: {exc}") from None


def parse_config(text: str, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """Parse and validate the text of a kimi-tui.toml; raises ConfigError listing every problem.

    ``source`` starts every error line (pass the path the text came from).
    """
    try:
        data = tomllib.loads(text)  # fast, stdlib; tomlkit (slower) only to word an error or to save
    except tomllib.TOMLDecodeError:
        data = _parse_toml(text, source).unwrap()
    return _validate(data, source, text)


def _config_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path).expanduser()
    return path / CONFIG_FILENAME if path.is_dir() else path


def _read(path: Path) -> str:
    try:
        # bytes, not read_text: keep the user's line endings (CRLF) for a round trip
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_config(path: str | os.PathLike[str]) -> ProjectConfig:
    """Read and validate ``path`` (a kimi-tui.toml, or a folder holding one)."""
    path = _config_path(path)
    if not path.exists():
        raise ConfigError(
            f"{path}: no such file. Run `kimi-tui init` in the project folder to create one."
        )
    return parse_config(_read(path), source=str(path))


def render_default_config(config: ProjectConfig | None = None) -> str:
    """A complete kimi-tui.toml with a comment above every key, holding ``config``'s values."""
    config = config if config is not None else ProjectConfig()
    out = [
        "# kimi-tui project settings. Edit by hand or in the TUI (kimi-tui keeps your comments).",
        "# Every table and key is optional; a missing one takes the default shown here.",
    ]
    for table, section_cls in _tables().items():
        section = getattr(config, table)
        out.append("")
        for help_line in TABLE_HELP.get(table, "").splitlines():
            out.append(f"# {help_line}")
        out.append(f"[{table}]")
        for key, info in section_cls.model_fields.items():
            for help_line in (info.description or "").splitlines():
                out.append(f"# {help_line}")
            out.append(f"{key} = {_fmt_value(getattr(section, key))}")
    return "\n".join(out) + "\n"


def _same(old: Any, new: Any) -> bool:
    """Equal as config values (1 == 1.0 for a float, but true != 1)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool) and old == new
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return old == new
    return type(old) is type(new) and old == new


def _append_to_table(table: Any, key: str, item: Any) -> None:
    """Add ``key`` after the table's last key, not after trailing blank lines/comments
    that visually belong to the next table."""
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    container = getattr(table, "value", None)
    body = getattr(container, "body", None)
    last_key = None
    if body is not None:
        for k, v in body:
            if k is not None and not isinstance(v, (tomlkit.items.Whitespace, tomlkit.items.Comment)):
                last_key = k
    if last_key is not None and not isinstance(table, tomlkit.items.InlineTable):
        try:
            container._insert_after(last_key, key, item)
            return
        except Exception:  # private tomlkit API: fall back to a plain append
            pass
    table.add(key, item)


def save_config(path: str | os.PathLike[str], config: ProjectConfig) -> None:
    """Write ``config`` to ``path`` (a kimi-tui.toml, or a folder holding one), atomically.

    An existing file is edited in place: only values that differ from what it holds
    change, so the user's comments, ordering and formatting survive; keys it lacks
    are added only when their value differs from the default. A file that is not
    valid TOML raises ConfigError and is left untouched.
    """
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    path = _config_path(path)
    source = str(path)
    # Catch a config mutated into an invalid state before it reaches the disk.
    config = _validate(config.model_dump(), source, None)
    if not path.exists():
        atomic_write_text(path, render_default_config(config))
        return

    text = _read(path)
    doc = _parse_toml(text, source)
    defaults = ProjectConfig()
    changed = False
    for table_name, section_cls in _tables().items():
        section = getattr(config, table_name)
        default_section = getattr(defaults, table_name)
        table = doc.get(table_name)
        if table is not None and not isinstance(table, dict):
            del doc[table_name]  # e.g. `train = 5`: invalid anyway, replace it by a real table
            table = None
        for key in section_cls.model_fields:
            new = getattr(section, key)
            if table is not None and key in table:
                old = table[key]
                old = old.unwrap() if hasattr(old, "unwrap") else old
                if _same(old, new):
                    continue
                table[key] = tomlkit.value(_fmt_value(new))  # keeps the line's trailing comment
                changed = True
            elif not _same(getattr(default_section, key), new):
                if table is None:
                    table = tomlkit.table()
                    doc.add(table_name, table)
                    table = doc[table_name]
                _append_to_table(table, key, tomlkit.value(_fmt_value(new)))
                changed = True
    if changed:
        out = doc.as_string()
        if "\r\n" in text:  # new lines from tomlkit use \n; match the file's CRLF
            out = re.sub(r"(?<!\r)\n", "\r\n", out)
        atomic_write_text(path, out)


