"""One error type for everything a user can fix.

Readers of user input (CSV, JSONL, audio, kimi-tui.toml) raise KimiTuiError or a
subclass with a message that names the file, line or field and says what to do;
the CLI prints it without a traceback and the TUI shows it in a modal. Anything
else escaping is a bug in kimi-tui.
"""

from __future__ import annotations


class KimiTuiError(Exception):
    """An error caused by input or state the user can fix; the message says how."""


class ConfigError(KimiTuiError):
    """kimi-tui.toml is unreadable, has unknown keys or values of the wrong type."""


class DataError(KimiTuiError):
    """A transcript file or audio folder cannot be read at all."""


class RunError(KimiTuiError):
    """A stage cannot be started, found or stopped."""
