"""What every stage worker shares, importable with nothing but the standard library.

The kimi-audio worker runs in the user's Kimi-Audio interpreter, which has neither kimi-tui nor its
dependencies: the engine copies this file next to it (``worker_files``). So the rules both workers
must agree on live here once, and the headless core imports them from here too: how a Kimi JSONL
sample yields its id, audio and reference (prepare's checks, the scorer's text reader and both
transcribers read it alike, so a reference never goes missing between them), which checkpoint-N
folders are complete, how a command's failure becomes an exit code. It imports nothing but the
standard library, even lazily (the core imports it; the import contracts forbid a path from the
TUI to transformers): the Trainer's events are in workers/trainer_events.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WorkerError(Exception):
    """A problem the user can fix: one line (no traceback), exit status 2."""


#: Exit statuses of a worker command: done, an unexpected failure (traceback in the log), bad input, stopped.
EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


def is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def say(message: str) -> None:
    """A log line, from torchrun's rank 0 only: every rank would print the same line (errors are not said)."""
    if is_rank_zero():
        print(message, flush=True)


#: How a command says a failure: (the line printed on stderr, the error event's message).
Said = tuple[str, str]


def run_command(body: Callable[[], int | None], events: Any, *, failed: Callable[[str], Said],
                crashed: Callable[[Exception], Said] | None = None, stopped: Said = ("", "")) -> int:
    """Run one worker command, turning what it raises into an exit status, a stderr line and an event.

    WorkerError -> 2, said as ``failed(message)``; KeyboardInterrupt -> 130, said as ``stopped``
    (an empty part is not said); any other exception -> 1 with its traceback in the log, said as
    ``crashed(exc)``, or propagated where ``crashed`` is None. ``body`` returns the exit status (None: 0)."""
    try:
        code = body()
        return EXIT_OK if code is None else code
    except WorkerError as exc:
        _say_failure(events, failed(str(exc)))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _say_failure(events, stopped)
        return EXIT_STOPPED
    except Exception as exc:
        if crashed is None:
            raise
        traceback.print_exc()
        _say_failure(events, crashed(exc))
        return EXIT_CRASH


def _say_failure(events: Any, said: Said) -> None:
    line, event = said
    if line:
        print(line, file=sys.stderr, flush=True)
    if event:
        events.error(event)


def atomic_write(path: Path, text: str) -> None:
    """``text`` to ``path`` via a temporary file and a rename, so a reader never sees half of it.
    (kimi_tui.fsutil is the core's richer copy: it names a full disk and takes a directory fd.)"""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_model_status(target: Path, shard: tuple[int, int], state: str, **extra: Any) -> None:
    """<model>/status.json (status.shard-I-of-N.json per GPU): the transcriber's word on one model, so
    a reader tells a model that failed (and why) from one cut short (kimi_tui.evaluate.state)."""
    index, shards = shard
    name = f"status.shard-{index}-of-{shards}.json" if shards > 1 else "status.json"
    atomic_write(target / name, json.dumps({"state": state, "updated": time.time(), **extra},
                                           ensure_ascii=False, indent=2, default=str) + "\n")


def parse_shard(text: str | None) -> tuple[int, int]:
    """``--shard I/N`` as (I, N); (0, 1) without one."""
    if not text:
        return 0, 1
    index, _, count = text.partition("/")
    return int(index), int(count)


# ---------------------------------------------------------------------------
# Kimi JSONL samples: the one rule for id, audio and reference
# ---------------------------------------------------------------------------


@dataclass
class SampleShape:
    """What :func:`inspect_sample` found in one decoded JSONL sample."""

    sample_id: str | None = None  # the top-level "id"; see :func:`sample_key` for the fallback
    audios: list[str] = field(default_factory=list)
    transcript: str | None = None  # the last assistant text message
    instruction: str | None = None  # the user text message(s), joined by newlines; None if there is none
    problems: list[str] = field(default_factory=list)  # what is missing or of the wrong type

    @property
    def key(self) -> str | None:
        """The sample's id: its own "id", else the file name (no suffix) of its first audio."""
        if self.sample_id:
            return self.sample_id
        return Path(self.audios[0]).stem if self.audios else None


def inspect_sample(obj: Any) -> SampleShape:
    """Pull the id, audio path(s) and transcript out of one Kimi sample, listing what's wrong.

    The audio is every ``message_type == "audio"`` message (the first one is the clip), the reference
    the last assistant message of ``message_type == "text"`` (an assistant audio message is not one)."""
    shape = SampleShape()
    if not isinstance(obj, dict):
        shape.problems.append(f'is a JSON {type(obj).__name__}, not an object with a "conversation" list')
        return shape
    raw_id = obj.get("id")
    if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id).strip():
        shape.sample_id = str(raw_id).strip()
    conv = obj.get("conversation")
    if not isinstance(conv, list):
        what = "has no" if conv is None else f"has a {type(conv).__name__} instead of a"
        shape.problems.append(f'{what} "conversation" list')
        return shape
    texts: list[Any] = []
    prompts: list[str] = []
    for i, msg in enumerate(conv):
        if not isinstance(msg, dict):
            shape.problems.append(f"conversation[{i}] is not an object")
            continue
        kind = msg.get("message_type")
        if kind == "audio":
            content = msg.get("content")
            if isinstance(content, str) and "\x00" in content:
                # No file system takes a NUL in a path (os calls raise ValueError on it): the line is
                # damaged or was written by a broken exporter, whatever the rest of the path says.
                shape.problems.append(f'conversation[{i}] is an audio message whose file path {content!r} '
                                      'contains a NUL character (\\u0000), which no file name can hold')
            elif isinstance(content, str) and content.strip():
                shape.audios.append(content.strip())
            else:
                shape.problems.append(f'conversation[{i}] is an audio message without a file path in "content"')
        elif kind == "text" and msg.get("role") == "assistant":
            texts.append(msg.get("content"))
        elif kind == "text" and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str) and content.strip():
                prompts.append(content)
    if prompts:
        shape.instruction = "\n".join(prompts)
    if not shape.audios and not any("audio message" in p for p in shape.problems):
        shape.problems.append('has no audio message (message_type "audio" with the file path in "content")')
    if not texts:
        shape.problems.append('has no assistant text message (role "assistant", message_type "text") with the transcript')
    elif not isinstance(texts[-1], str):
        shape.problems.append('has an assistant text message whose "content" is not a string')
    else:
        shape.transcript = texts[-1]
    return shape


def read_jsonl_samples(path: Path) -> list[dict]:
    """The decoded samples of a Kimi JSONL file; WorkerError naming a line that is not a sample."""
    return [sample for _, sample in numbered_jsonl_samples(path)]


def numbered_jsonl_samples(path: Path) -> list[tuple[int, dict]]:
    """(line number, sample) for every non-blank line of a Kimi JSONL file (see read_jsonl_samples)."""
    samples = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except ValueError as exc:
                raise WorkerError(f"{path}:{lineno}: not valid JSON ({exc})") from None
            if not isinstance(sample, dict) or not isinstance(sample.get("conversation"), list):
                raise WorkerError(f"{path}:{lineno}: no \"conversation\" list")
            samples.append((lineno, sample))
    return samples


# ---------------------------------------------------------------------------
# Checkpoints: which checkpoint-N folders are complete
# ---------------------------------------------------------------------------

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
#: Written by the Trainer after the weights and the optimizer state: a save cut short lacks it.
TRAINER_STATE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json", "adapter_model.safetensors")
#: DeepSpeed's own layout: global_stepN/ holds the (sharded) weights and optimizer state.
DEEPSPEED_STEP_GLOB = "global_step*"


def has_optimizer_state(checkpoint: Path) -> bool:
    """The Trainer's optimizer.pt, or DeepSpeed's global_stepN/ (which holds it instead)."""
    return (checkpoint / "optimizer.pt").exists() or any(
        p.is_dir() and any(p.glob("*optim_states.pt")) for p in checkpoint.glob(DEEPSPEED_STEP_GLOB)
    )


def checkpoint_complete(folder: Path, *, resumable: bool = False) -> bool:
    """Whether a checkpoint-N folder's save finished, by stat only: trainer_state.json and weights
    (one of WEIGHT_FILES, or DeepSpeed's global_stepN/); ``resumable`` also wants the optimizer state.

    kimi_tui.checkpoints.inspect_checkpoint is the reading form of the same rule (it opens the files
    and says why a folder is not complete); this one is for hot paths and for the workers."""
    if not CHECKPOINT_RE.match(folder.name) or not (folder / TRAINER_STATE).is_file():
        return False
    try:
        weights = any((folder / w).exists() for w in WEIGHT_FILES) or any(folder.glob(DEEPSPEED_STEP_GLOB))
    except OSError:
        return False
    return weights and (not resumable or has_optimizer_state(folder))


def complete_checkpoints(training_dir: Path, *, resumable: bool = False) -> dict[int, Path]:
    """{step: folder} of the complete checkpoint-N folders in ``training_dir`` ({} when it cannot be listed)."""
    try:
        entries = list(training_dir.iterdir())
    except OSError:
        return {}
    found = {}
    for entry in entries:
        match = CHECKPOINT_RE.match(entry.name)
        if match and checkpoint_complete(entry, resumable=resumable):
            found[int(match.group(1))] = entry
    return found
