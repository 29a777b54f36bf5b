"""Data ingest and validation: transcript files + audio folders -> checked samples.

Headless on purpose (no textual/torch import): the CLI, the TUI and the
training workers all validate data through this package, and it must stay
cheap to import. See manifest.load_split for the entry point.
"""

from kimi_tui.data.audio import AUDIO_EXTENSIONS, AudioIndex, AudioInfo, probe_audio
from kimi_tui.data.kimi_jsonl import DEFAULT_INSTRUCTION, kimi_sample, read_kimi_jsonl, write_kimi_jsonl
from kimi_tui.data.manifest import Finding, Manifest, Utterance, check_leakage, load_split
from kimi_tui.data.transcripts import AUTO_ENCODINGS, ID_COLUMN_NAMES, TEXT_COLUMN_NAMES

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUTO_ENCODINGS",
    "DEFAULT_INSTRUCTION",
    "ID_COLUMN_NAMES",
    "TEXT_COLUMN_NAMES",
    "AudioIndex",
    "AudioInfo",
    "Finding",
    "Manifest",
    "Utterance",
    "check_leakage",
    "kimi_sample",
    "load_split",
    "probe_audio",
    "read_kimi_jsonl",
    "write_kimi_jsonl",
]
