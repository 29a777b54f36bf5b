"""The JSONL format Kimi-Audio's fine-tuning code reads, written and read here only.

Every stage that feeds the official finetune scripts goes through
:func:`write_kimi_jsonl`, so the shape (one "understanding" sample per line,
user instruction, user audio by absolute path, assistant transcript) lives in
one place. An imported JSONL row keeps its own instruction unless the user
asks otherwise ([data] instruction_for_jsonl): it is part of the data someone
made on purpose (the official demo data says "Please transcribe the spoken
content into written text."), and silently swapping it would change what the
model is trained to answer to. A top-level "id" is added so predictions can be matched back to the
transcript rows; the official loader ignores extra keys. Writes are atomic
because other processes (the TUI, a running stage) may read the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kimi_tui.errors import DataError
from kimi_tui.fsutil import atomic_write_text
from kimi_tui.data.transcripts import read_text
# The one id/audio/reference rule, kept with the workers (they cannot import kimi_tui.data).
from kimi_tui.workers.runtime import SampleShape, inspect_sample  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from kimi_tui.data.manifest import Utterance

#: The seed report's prompt, kimi-tui's default (kimi-tui.toml [data] instruction overrides it).
DEFAULT_INSTRUCTION = "请将语音内容转录为文字。"


def kimi_sample(utt_id: str, audio: str | os.PathLike[str], transcript: str, instruction: str) -> dict[str, Any]:
    """One training sample in Kimi-Audio's "understanding" format."""
    return {
        "task_type": "understanding",
        "conversation": [
            {"role": "user", "message_type": "text", "content": instruction},
            {"role": "user", "message_type": "audio", "content": os.path.abspath(os.fspath(audio))},
            {"role": "assistant", "message_type": "text", "content": transcript},
        ],
        "id": utt_id,
    }


def _dumps(obj: Any) -> str:
    # U+2028/2029 are legal in JSON but split lines for str.splitlines()-based readers.
    return json.dumps(obj, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


JsonlInstruction = Literal["keep", "override"]
#: Where a row's instruction comes from, as the prepare output and the Dataset panel say it.
OWN_INSTRUCTION = "the row's own"
CONFIG_INSTRUCTION = "[data] instruction"


def row_instruction(utterance: Utterance, instruction: str, jsonl_instruction: JsonlInstruction = "keep"
                    ) -> tuple[str, str]:
    """(the instruction written for this row, where it comes from): the row's own one (a JSONL
    row's user text) unless there is none or ``jsonl_instruction`` is "override"; else ``instruction``."""
    own = getattr(utterance, "instruction", None)
    if own is not None and jsonl_instruction == "keep":
        return own, OWN_INSTRUCTION
    return instruction, CONFIG_INSTRUCTION


def write_kimi_jsonl(utterances: Iterable[Utterance], path: str | os.PathLike[str], instruction: str,
                     jsonl_instruction: JsonlInstruction = "keep") -> int:
    """Write one Kimi sample per utterance to ``path`` atomically; returns the count.

    Each row gets :func:`row_instruction`: its own (JSONL) instruction, or ``instruction``."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be a str, not {type(instruction).__name__}")
    if jsonl_instruction not in ("keep", "override"):
        raise ValueError(f'jsonl_instruction must be "keep" or "override", not {jsonl_instruction!r}')
    lines = [_dumps(kimi_sample(u.id, u.audio, u.text, row_instruction(u, instruction, jsonl_instruction)[0]))
             for u in utterances]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def iter_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for every non-blank line, counting as editors do."""
    for i, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield i, line


def json_error(exc: json.JSONDecodeError) -> str:
    return f"{exc.msg} at column {exc.colno}"


def read_kimi_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All samples of a Kimi JSONL file as dicts; DataError naming the first bad line."""
    path = Path(path)
    decoded = read_text(path, what="JSONL file", allow_empty=True)
    samples: list[dict[str, Any]] = []
    for line_no, line in iter_lines(decoded.text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} line {line_no} is not valid JSON ({json_error(exc)}): {path}") from None
        except RecursionError:
            raise DataError(f"{path.name} line {line_no} is nested too deeply to be a sample: {path}") from None
        if not isinstance(obj, dict):
            raise DataError(
                f"{path.name} line {line_no} is a JSON {type(obj).__name__}, not an object with a "
                f'"conversation": {path}'
            )
        samples.append(obj)
    return samples
