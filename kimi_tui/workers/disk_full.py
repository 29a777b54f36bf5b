"""What a worker says when the disk fills up while it saves a checkpoint.

A full ZeRO-3 checkpoint of Kimi-Audio carries ~125 GB of optimizer state, so a disk
running out mid-save is a night-long run's most likely end. The Trainer then leaves a
half-written checkpoint-N behind; resuming from it would crash or, worse, load a
partial state. This module removes only that half-written folder (it cannot be
used and holds the space the user needs back), leaves every complete checkpoint
alone, and turns the OSError into a message that says where, how much is free,
which checkpoints are intact and the command that continues. Standard library only:
the kimi-audio engine runs it under the user's own interpreter.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
           "pytorch_model.bin.index.json", "adapter_model.safetensors")


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def checkpoint_complete(folder: Path) -> bool:
    """The Trainer writes trainer_state.json last: without it (or without weights) the save was cut."""
    has_weights = any((folder / name).exists() for name in WEIGHTS) or any(folder.glob("global_step*"))
    return has_weights and (folder / "trainer_state.json").is_file()


def _step(folder: Path) -> int:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def handle_disk_full(output: Path, exc: OSError) -> str:
    """Remove the half-written checkpoints under ``output`` and describe the situation."""
    folders = sorted((p for p in output.glob("checkpoint-*") if p.is_dir() and _step(p) >= 0), key=_step)
    complete = [p for p in folders if checkpoint_complete(p)]
    removed = []
    for folder in folders:
        if folder not in complete:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    try:
        free_mb = shutil.disk_usage(output).free / 1e6
        free = f"{free_mb:,.0f} MB free now"
    except OSError:
        free = "free space unknown"
    parts = [f"the disk holding {output} is full ({exc.strerror or exc}; {free}) while saving a checkpoint."]
    if removed:
        parts.append(f"The half-written {', '.join(removed)} was removed.")
    if complete:
        parts.append(f"Complete and intact: {', '.join(p.name for p in complete)}. Free space there (or lower "
                     f"save_total_limit), then `kimi-tui run train --resume` continues from {complete[-1].name}.")
    else:
        parts.append("No checkpoint was complete yet. Free space there, then start the train stage again.")
    return " ".join(parts)
