"""The project's settings file, kimi-tui.toml: one typed, validated source of truth.

The package's modules, by concern: schema (the tables and their fields), locator (the line a key
stands on), wording (pydantic's errors in the user's words), toml_values (one TOML spelling for
saving and for messages), files (load and the comment-keeping save), form (typed text into a
validated config). Everything else imports from here.

Why it is built this way:

* Users edit the file by hand *and* through the TUI, so saving must not destroy
  their comments or layout: tomlkit lets us change only the values that
  changed, in place.
* A typo in a hand-edited file must never silently fall back to a default and
  burn hours of GPU time on the wrong settings: unknown keys and wrong types are
  errors (pydantic, ``extra="forbid"``, strict types so ``epochs = true`` is not
  quietly read as 1).
* Users fix what they can read: pydantic's own messages are translated into
  ``kimi-tui.toml:12: [train] unknown key 'epoch': did you mean 'epochs'?`` —
  file, line, table.key, what was expected — and every problem is reported at
  once, so one edit-run cycle fixes them all.
"""

from __future__ import annotations

from kimi_tui.config.files import load_config, parse_config, render_default_config, save_config
from kimi_tui.config.form import set_field
from kimi_tui.config.schema import (
    CONFIG_FILENAME,
    TABLE_HELP,
    DataSection,
    DeepSpeedSection,
    EngineSection,
    EvalSection,
    KimiAudioSection,
    ProjectConfig,
    ProjectSection,
    TrainSection,
    _tables,
    resolve_path,
)
from kimi_tui.config.toml_values import format_float

__all__ = [
    "CONFIG_FILENAME",
    "TABLE_HELP",
    "ProjectSection",
    "DataSection",
    "EngineSection",
    "TrainSection",
    "DeepSpeedSection",
    "KimiAudioSection",
    "EvalSection",
    "ProjectConfig",
    "parse_config",
    "load_config",
    "save_config",
    "render_default_config",
    "set_field",
    "resolve_path",
    "format_float",
]
