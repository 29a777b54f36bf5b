"""What prepare saw of every audio file, so later stages notice when the audio changed under them.

Prepare checks each clip once (readable, not empty, not cut short, matches its
transcript row) and writes the JSONL; training and evaluation then read the
clips again, hours or days later. A WAV truncated or replaced in between used
to go unnoticed: a 100-byte file became a silent 0.00 s clip in training. So
prepare records size, mtime_ns, frames, sample rate and channels of every file
in data/audio_fingerprints.json (a side file: the JSONL lines the official
Kimi-Audio scripts read stay exactly as they are), and the plans of extract,
train and evaluate compare before they start (:func:`require_unchanged`).

The common path is one stat() per file, no audio read: fast enough for 100k
clips on every start. Only a file whose size or mtime differs has its header
re-read; a file that was merely touched (same size, same frames) is accepted
and its new mtime recorded, so the header is not re-read next time.

Workers check the clips they decode too (:class:`RecordedAudio`), which catches
a change during a run. This module is standard library only at import time:
the kimi-audio worker runs it under the user's Kimi-Audio interpreter, which
has none of kimi-tui's dependencies (see WORKER_FILES in engines/kimi_audio.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

try:  # kimi-tui's interpreter: a user-fixable DataError, shown without a traceback
    from kimi_tui.errors import DataError as _Base
except ImportError:  # the kimi-audio worker's copy, without kimi_tui.errors next to it
    _Base = Exception  # type: ignore[misc,assignment]

FILENAME = "audio_fingerprints.json"
VERSION = 1
COLUMNS = ("size", "mtime_ns", "frames", "sample_rate", "channels")
#: Changed files named in one message; the rest are counted.
MAX_LISTED = 10
#: A decoded clip this far from what prepare recorded is another clip (resampling moves a sample or two).
DURATION_SLACK_S = 0.1
DURATION_SLACK_RATIO = 0.01
RERUN = "kimi-tui run prepare"


class AudioChangedError(_Base):
    """Audio files differ from what prepare recorded; the message names each and what to do."""


@dataclass
class Record:
    size: int
    mtime_ns: int
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate > 0 else 0.0

    def row(self) -> list[int]:
        return [self.size, self.mtime_ns, self.frames, self.sample_rate, self.channels]


@dataclass
class Change:
    path: str
    what: str  # "size 100 bytes, was 96,044; 0.00 s long, was 3.00 s"


def fingerprints_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / FILENAME


def beside(jsonl: str | os.PathLike[str]) -> Path:
    """The fingerprint file prepare wrote next to a prepared JSONL (data/train.jsonl -> data/...)."""
    return Path(jsonl).parent / FILENAME


# --------------------------------------------------------------------------- writing (prepare)


def _render(files: dict[str, Record], recorded_at: float) -> str:
    """One file per line: readable, and diffable, even for 100k clips."""
    head = {
        "version": VERSION,
        "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(recorded_at)),
        "recorded_at_unix": round(recorded_at, 3),
        "columns": list(COLUMNS),
    }
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "files": {']
    items = sorted(files.items())
    for i, (path, rec) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"  {json.dumps(path, ensure_ascii=False)}: {json.dumps(rec.row())}{comma}")
    lines.append("}}")
    return "\n".join(lines) + "\n"


def write_fingerprints(path: str | os.PathLike[str], files: dict[str, Record], recorded_at: float | None = None) -> None:
    from kimi_tui.fsutil import atomic_write_text  # not needed (nor copied) in the worker

    atomic_write_text(path, _render(files, time.time() if recorded_at is None else recorded_at))


def record_of(path: str, frames: int, sample_rate: int, channels: int, stat: os.stat_result | None = None) -> Record:
    """A Record from a probe's numbers; ``stat`` should be taken *before* the probe, so a change during
    the probe shows as a stat difference next time (and gets the header re-read)."""
    st = stat if stat is not None else os.stat(path)
    return Record(int(st.st_size), int(st.st_mtime_ns), int(frames), int(sample_rate), int(channels))


# --------------------------------------------------------------------------- reading


@dataclass
class Fingerprints:
    path: Path
    files: dict[str, Record]
    recorded_at: str
    recorded_at_unix: float

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Fingerprints | None":
        """The recorded fingerprints, or None when prepare wrote none (an older kimi-tui, or not run).

        A file that exists but cannot be used raises AudioChangedError: silently
        skipping the check is what this file exists to prevent.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AudioChangedError(f"cannot read {path} ({_why(exc)}); run prepare again ({RERUN})") from None
        try:
            obj = json.loads(text)
            columns = obj["columns"]
            index = [columns.index(c) for c in COLUMNS]
            files = {p: Record(*(int(row[i]) for i in index)) for p, row in obj["files"].items()}
            return cls(path, files, str(obj.get("recorded_at", "?")), float(obj.get("recorded_at_unix", 0.0)))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise AudioChangedError(
                f"{path} is damaged ({type(exc).__name__}: {exc}); run prepare again ({RERUN})") from None

    def get(self, audio: str) -> Record | None:
        rec = self.files.get(audio)
        if rec is None:
            rec = self.files.get(os.path.abspath(audio))
        return rec

    def changes(self) -> tuple[list[Change], dict[str, Record]]:
        """(files that differ, files that were touched only: their new records).

        stat() each file; only when size or mtime differ is the header read.
        """
        changed: list[Change] = []
        touched: dict[str, Record] = {}
        for path, rec in self.files.items():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                changed.append(Change(path, "missing (deleted, moved or renamed)"))
                continue
            except OSError as exc:
                changed.append(Change(path, f"cannot be read: {_why(exc)}"))
                continue
            if st.st_size == rec.size and st.st_mtime_ns == rec.mtime_ns:
                continue
            what = _compare(path, rec, st)
            if what:
                changed.append(Change(path, what))
            else:
                touched[path] = Record(int(st.st_size), int(st.st_mtime_ns), rec.frames, rec.sample_rate, rec.channels)
        return changed, touched


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _compare(path: str, rec: Record, st: os.stat_result) -> str:
    """What differs from the record, read from the header; "" when only the mtime moved."""
    from kimi_tui.data.audio import probe_audio  # soundfile: kimi-tui's interpreter only

    parts = []
    if st.st_size != rec.size:
        parts.append(f"size {st.st_size:,} bytes, was {rec.size:,}")
    try:
        info = probe_audio(path)
    except Exception as exc:  # AudioReadError (a DataError) for a damaged file
        parts.append(f"not readable audio any more ({getattr(exc, 'reason', None) or exc})")
        return "; ".join(parts)
    if info.frames != rec.frames:
        parts.append(f"{info.duration_s:.2f} s long ({info.frames:,} frames), was {rec.duration_s:.2f} s "
                     f"({rec.frames:,} frames)")
    if info.sample_rate != rec.sample_rate:
        parts.append(f"{info.sample_rate} Hz, was {rec.sample_rate} Hz")
    if info.channels != rec.channels:
        parts.append(f"{info.channels} channel(s), was {rec.channels}")
    return "; ".join(parts)


def describe(changes: list[Change], recorded_at: str) -> str:
    n = len(changes)
    head = (f"{n} audio file{'s' if n != 1 else ''} changed after prepare checked {'them' if n != 1 else 'it'} "
            f"(recorded by prepare at {recorded_at}); the prepared JSONL no longer matches the audio on disk:")
    lines = [f"  {c.path}: {c.what}" for c in changes[:MAX_LISTED]]
    if n > MAX_LISTED:
        lines.append(f"  ... and {n - MAX_LISTED:,} more")
    fix = (f"Run prepare again ({RERUN}) so every clip is checked and recorded as it is now, "
           "or put the original files back.")
    return "\n".join([head, *lines, fix])


def require_unchanged(data_dir: str | os.PathLike[str]) -> None:
    """Refuse (AudioChangedError) when any audio file prepare recorded differs from what is on disk.

    Called by the plans of the stages that read the audio after prepare. Files
    that were only touched get their new mtime recorded (best effort).
    """
    fp = Fingerprints.load(fingerprints_path(data_dir))
    if fp is None:
        return
    changed, touched = fp.changes()
    if touched:
        fp.files.update(touched)
        try:
            write_fingerprints(fp.path, fp.files, fp.recorded_at_unix or None)
        except OSError:
            pass  # a read-only data folder: the headers are re-read next time, no harm
    if changed:
        raise AudioChangedError(describe(changed, fp.recorded_at))


# --------------------------------------------------------------------------- workers


class RecordedAudio:
    """The worker-side check: a decoded clip must be about as long as prepare recorded.

    ``RecordedAudio.beside(jsonl)`` reads the fingerprint file next to the
    prepared JSONL (none: only the empty-clip check applies). Call
    :meth:`check_decoded` with the number of samples the worker decoded.
    """

    def __init__(self, fingerprints: Fingerprints | None = None):
        self.fingerprints = fingerprints

    @classmethod
    def beside(cls, jsonl: str | os.PathLike[str]) -> "RecordedAudio":
        return cls(Fingerprints.load(beside(jsonl)))

    def check_decoded(self, path: str, samples: int, sample_rate: int) -> None:
        """Raise AudioChangedError when the clip decoded empty or far from the recorded duration."""
        rec = self.fingerprints.get(path) if self.fingerprints is not None else None
        when = f" (recorded by prepare at {self.fingerprints.recorded_at})" if self.fingerprints else ""
        if samples <= 0 or sample_rate <= 0:
            was = f", but prepare recorded {rec.duration_s:.2f} s{when}" if rec is not None else ""
            raise AudioChangedError(
                f"audio file {path} decoded to 0 samples (an empty or damaged file){was}. It was changed after "
                f"prepare checked it: copy the original back, or run prepare again ({RERUN}).")
        if rec is None:
            return
        seconds = samples / sample_rate
        want = rec.duration_s
        if abs(seconds - want) > max(DURATION_SLACK_S, DURATION_SLACK_RATIO * want):
            raise AudioChangedError(
                f"audio file {path} decoded to {seconds:.2f} s but prepare recorded {want:.2f} s{when}: the file "
                f"was changed after prepare checked it, so it may no longer match its transcript. Copy the "
                f"original back, or run prepare again ({RERUN}).")
