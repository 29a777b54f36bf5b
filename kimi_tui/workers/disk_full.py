"""What a worker says when the disk fills up while it saves a checkpoint.

A full ZeRO-3 checkpoint of Kimi-Audio carries ~125 GB of optimizer state, so a disk
running out mid-save is a night-long run's most likely end. The Trainer then leaves a
half-written checkpoint-N behind; resuming from it would crash or, worse, load a
partial state. This module removes only that half-written folder (it cannot be
used and holds the space the user needs back), leaves every complete checkpoint
alone, and turns the failure into a message that says where, how much is free,
which checkpoints are intact and the command that continues. Standard library only:
the kimi-audio engine runs it under the user's own interpreter.

A real full disk rarely arrives as OSError(ENOSPC): torch's zip writer reports
"basic_ios::clear: iostream error" / "unexpected pos" / "PytorchStreamWriter failed
writing file", its C++ stream having dropped the errno, and safetensors its own
error type. So a disk counts as full when the error chain names a full disk, or when
it shows a write failure and the file system being written really has (almost) no
space left: the file system, not the wording, is the evidence.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path
from typing import Iterator

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# The text of a full disk kept by writers that lost the errno (safetensors: "... (os error 28)").
DISK_FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded|file too large|os error (28|122|27)\b", re.I)
# The text of a failed write from torch's C++ writers and safetensors' Rust one.
WRITE_FAILURE_TEXT = re.compile(
    r"iostream error|unexpected pos|failed writing|write\(\)|error while serializing|i/o error|short write", re.I)
WRITE_FAILURE_ERRNOS = {errno.EIO}  # what some network and FUSE file systems return when full
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
           "pytorch_model.bin.index.json", "adapter_model.safetensors")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it or was being handled, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [current.__cause__, current.__context__]


def _names_full_disk(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    return bool(DISK_FULL_TEXT.search(str(exc)))


def _is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in WRITE_FAILURE_ERRNOS:
        return True
    return bool(WRITE_FAILURE_TEXT.search(str(exc)))


def free_bytes(where: str | os.PathLike[str] | int) -> tuple[int, int] | None:
    """(free to an unprivileged writer, size) of the file system holding ``where`` (a path, or
    an open file descriptor), or None."""
    if isinstance(where, int):
        candidates: tuple = (where,)
    else:
        path = Path(where)
        candidates = (path, *path.parents)  # the half-written folder may already be gone
    for candidate in candidates:
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return None


def nearly_full(where: str | os.PathLike[str] | int) -> bool:
    """Almost no space left: under 1% of the file system, at least 256 KiB (an eighth of a tiny
    one), at most 64 MiB.

    A failed write fills the disk to its last block before it fails, so right after it the
    free space is about zero; a disk that failed for another reason keeps its free space."""
    usage = free_bytes(where)
    if usage is None:
        return False
    free, total = usage
    return free <= min(64 << 20, max(min(256 << 10, total // 8), total // 100))


def is_disk_full(exc: BaseException, where: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``exc`` is the disk running out: said so in its chain, or (given ``where``, the
    folder being written) a write failure while that file system is (almost) full."""
    chain = list(_chain(exc))
    if any(_names_full_disk(e) for e in chain):
        return True
    return where is not None and any(_is_write_failure(e) for e in chain) and nearly_full(where)


def describe(exc: BaseException) -> str:
    """The failure in a few words: the OS's own ones when an errno survived."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS | WRITE_FAILURE_ERRNOS and e.strerror:
            return e.strerror
    for e in _chain(exc):
        match = DISK_FULL_TEXT.search(str(e))
        if match:
            return "No space left on device" if match.group(0).lower().startswith(("no space", "os error 28")) \
                else match.group(0)
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    first = first if len(first) <= 160 else first[:157] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def checkpoint_complete(folder: Path) -> bool:
    """The Trainer writes trainer_state.json last: without it (or without weights) the save was cut."""
    has_weights = any((folder / name).exists() for name in WEIGHTS) or any(folder.glob("global_step*"))
    return has_weights and (folder / "trainer_state.json").is_file()


def _step(folder: Path) -> int:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def handle_disk_full(output: Path, exc: BaseException) -> str:
    """Remove the half-written checkpoints under ``output`` and describe the situation."""
    folders = sorted((p for p in output.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0), key=_step)
    complete = [p for p in folders if checkpoint_complete(p)]
    removed = []
    for folder in folders:
        if folder not in complete:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    usage = free_bytes(output)
    free = f"{usage[0] / 1e6:,.0f} MB free now" if usage is not None else "free space unknown"
    parts = [f"the disk holding {output} is full ({describe(exc)}; {free}) while saving a checkpoint."]
    if removed:
        parts.append(f"The half-written {', '.join(removed)} was removed.")
    if complete:
        parts.append(f"Complete and intact: {', '.join(p.name for p in complete)}. Free space there (or lower "
                     f"save_total_limit), then `kimi-tui run train --resume` continues from {complete[-1].name}.")
    else:
        parts.append("No checkpoint was complete yet. Free space there, then start the train stage again.")
    return " ".join(parts)
