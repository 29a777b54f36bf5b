"""One error type for everything a user can fix.

Readers of user input (CSV, JSONL, audio, kimi-tui.toml) raise KimiTuiError or a
subclass with a message that names the file, line or field and says what to do;
the CLI prints it without a traceback and the TUI shows it in a modal. Anything
else escaping is a bug in kimi-tui.
"""

from __future__ import annotations

import errno
import os


class KimiTuiError(Exception):
    """An error caused by input or state the user can fix; the message says how."""


class ConfigError(KimiTuiError):
    """kimi-tui.toml is unreadable, has unknown keys or values of the wrong type."""


class DataError(KimiTuiError):
    """A transcript file or audio folder cannot be read at all."""


class RunError(KimiTuiError):
    """A stage cannot be started, found or stopped."""


def describe_os_error(exc: OSError) -> str:
    """What went wrong with which path, and what to do: an OSError as a user reads it."""
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if isinstance(n, (str, bytes, os.PathLike))]
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        why = (f"permission denied: this user (uid {os.geteuid()}) may not read or write it, or search its "
               "folder: give it access (chmod/chown), or run kimi-tui as the owner")
    elif code == errno.EROFS:
        why = "the file system is read-only: remount it read-write, or move the project to a writable disk"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        why = "no space left on the disk: free some space there, then try again"
    elif code == errno.ENOENT:
        why = "no such file or folder: check the path"
    elif code == errno.ENOTDIR:
        why = "a part of the path is a file, not a folder: check the path"
    elif code == errno.EISDIR:
        why = "it is a folder, where a file was expected: check the path"
    elif code == errno.EEXIST:
        why = "it already exists (a file where kimi-tui needs a folder?): move it away, or pick another path"
    elif code == errno.ENAMETOOLONG:
        why = "the name is too long: pick a shorter path"
    else:
        why = f"{exc.strerror or exc}: check the path and try again"
    return f"{' -> '.join(names)}: {why}" if names else why
