"""Crash-safe file writes.

Config, status and manifests are read by other processes (the TUI, a second
CLI) while a run is going; a reader must see the old file or the new one, never
half of one, and a power cut must not leave an empty kimi-tui.toml.

A full disk is the one write failure a user meets often (checkpoints fill it), so
it leaves here as DiskFullError: still an OSError for code that handles those, and
a KimiTuiError whose message names the file and says to free space, so the CLI and
the TUI print it as one line instead of a traceback.

Writes can also go through a directory file descriptor (``dir_fd``): the
supervisor keeps its run folder open that way, so its last status lands in the
folder even after the user moved the project while the run went on.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from kimi_tui.errors import KimiTuiError
from kimi_tui.workers.disk_full import free_bytes, is_disk_full


class DiskFullError(KimiTuiError, OSError):
    """Writing ``filename`` failed because its disk (or quota) is full."""

    def __str__(self) -> str:
        usage = free_bytes(Path(self.filename).parent) if self.filename else None
        free = f"{usage[0] / 1e6:,.1f} MB free" if usage is not None else "free space unknown"
        return (f"cannot write {self.filename}: the disk holding it is full ({self.strerror}; {free}). "
                "Free space on that disk, then try again.")


def disk_full_error(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` as a DiskFullError naming ``path`` when it is a full disk, else ``exc`` itself."""
    if isinstance(exc, DiskFullError) or not is_disk_full(exc):
        return exc
    return DiskFullError(exc.errno, exc.strerror or "No space left on device", os.fspath(path))


def _raise_as_disk_full(exc: OSError, path: str | os.PathLike[str]) -> None:
    error = disk_full_error(exc, path)
    if error is exc:
        raise exc
    raise error from exc


def _write_file_at(dir_fd: int | None, name: str, data: bytes, mode: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, dir_fd: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename. With ``dir_fd``, ``path``
    is a plain file name inside that open directory."""
    path = Path(path)
    if dir_fd is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _raise_as_disk_full(exc, path)
        folder_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        name = path.name
    else:
        if path.name != str(path):
            raise ValueError(f"with dir_fd, {path} must be a file name")
        folder_fd = dir_fd
        name = path.name
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        try:
            mode = os.stat(name, dir_fd=folder_fd).st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        try:
            _write_file_at(folder_fd, tmp, data, mode)
            os.chmod(tmp, mode, dir_fd=folder_fd)  # the umask may have narrowed it
            os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        except BaseException as exc:
            try:
                os.unlink(tmp, dir_fd=folder_fd)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError):
                _raise_as_disk_full(exc, path)
            raise
        try:
            os.fsync(folder_fd)
        except OSError:
            pass
    finally:
        if folder_fd != dir_fd:
            os.close(folder_fd)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, dir_fd: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), dir_fd=dir_fd)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, dir_fd: int | None = None) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n", dir_fd=dir_fd)
