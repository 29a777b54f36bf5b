"""Finding and probing audio files without decoding them.

Ids in transcript files are written loosely: with or without ".wav", as a path
relative to the audio folder, as a bare file name, with Windows backslashes, or
as an absolute path from someone else's machine. The index below resolves all
of these against one walk of the audio folder and reports ambiguity instead of
guessing. Probing reads only the header (soundfile.info), so validating tens of
thousands of clips takes seconds and never loads audio into memory.
"""

from __future__ import annotations

import os
import shlex
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from kimi_tui.errors import DataError

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {"wav", "flac", "mp3", "ogg", "opus", "m4a", "aac", "wma", "aiff", "aif"}
)

#: Formats that libsndfile may not read (mp3 before 1.1, never m4a/aac/wma).
_NEEDS_CONVERSION = frozenset({"mp3", "m4a", "aac", "wma", "opus"})


@dataclass
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str
    #: Frames the WAV header announces when the file holds fewer (a cut-short copy), else None.
    declared_frames: int | None = None
    #: stat() of the file taken just before the header was read (prepare records it: data/fingerprints.py).
    size: int | None = None
    mtime_ns: int | None = None


class AudioReadError(DataError):
    """An audio file that soundfile cannot open; ``reason`` is libsndfile's words."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot read audio file {path}: {reason}")
        self.path = path
        self.reason = reason


def probe_audio(path: str | os.PathLike[str]) -> AudioInfo:
    """Header information of one audio file (soundfile.info, no decoding).

    Raises AudioReadError (a DataError) if the file is missing or not audio
    that this libsndfile can read.
    """
    try:
        st = os.stat(path)  # before the read: a change during the probe shows as a stat difference later
    except (OSError, ValueError, TypeError):
        st = None
    try:
        info = soundfile.info(os.fspath(path))
    except Exception as exc:  # LibsndfileError, TypeError on odd paths, OSError, ...
        reason = getattr(exc, "error_string", None) or str(exc).strip() or type(exc).__name__
        try:
            if os.path.getsize(path) == 0:
                reason = "the file is empty (0 bytes)"
        except (OSError, ValueError, TypeError):
            pass
        raise AudioReadError(os.fspath(path), str(reason).strip().rstrip(".")) from None
    sr = int(info.samplerate or 0)
    frames = int(info.frames or 0)
    if frames < 0:  # libsndfile reports SF_COUNT_MAX when it cannot tell
        frames = 0
    channels = int(info.channels or 0)
    declared = None
    if str(info.format) in ("WAV", "WAVEX") and frames > 0:
        announced = _wav_announced_frames(path)
        if announced is not None and announced > frames:
            declared = announced
    return AudioInfo(
        sample_rate=sr,
        channels=channels,
        frames=frames,
        duration_s=frames / sr if sr > 0 else 0.0,
        format=str(info.format),
        subtype=str(info.subtype),
        declared_frames=declared,
        size=st.st_size if st is not None else None,
        mtime_ns=st.st_mtime_ns if st is not None else None,
    )


#: WAVE format tags whose "data" size divided by the block alignment is a frame count.
_FRAME_FORMATS = frozenset({0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE})  # PCM, float, A-law, mu-law, extensible


def _wav_announced_frames(path: str | os.PathLike[str]) -> int | None:
    """Frames the RIFF/WAVE header announces (the "data" chunk size), or None when unknown.

    libsndfile quietly reads what is there when a copy was cut short; comparing with the
    header is the only way to notice that the clip no longer matches its transcript.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            block_align = 0
            pos = 12
            for _ in range(64):  # a handful of chunks (fmt, LIST, fact...) precede "data"
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                size = struct.unpack(order + "I", chunk[4:])[0]
                if chunk[:4] == b"fmt ":
                    fmt = f.read(16)
                    if len(fmt) < 16:
                        return None
                    tag, _channels, _rate, _bps, block_align = struct.unpack(order + "HHIIH", fmt[:14])
                    if tag not in _FRAME_FORMATS:
                        return None
                elif chunk[:4] == b"data":
                    # 0 and 0xFFFFFFFF: written by streaming tools that did not know the length
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                pos += 8 + size + (size & 1)
    except (OSError, ValueError, TypeError, struct.error):
        return None
    return None


def convert_hint(path: str) -> str:
    """A command that turns ``path`` into 16 kHz mono WAV."""
    src = Path(path)
    dst = src.with_suffix(".wav") if src.suffix.lower() != ".wav" else src.with_name(src.stem + "_16k.wav")
    return (
        f"convert it to 16 kHz mono WAV, e.g. ffmpeg -i {shlex.quote(str(src))} -ar 16000 -ac 1 "
        f"{shlex.quote(str(dst))} (or sox {shlex.quote(str(src))} -r 16000 -c 1 {shlex.quote(str(dst))}), "
        "then point the row at the .wav file"
    )


def unreadable_fix(path: str) -> str:
    if audio_ext(path) in _NEEDS_CONVERSION:
        return f"This audio library (libsndfile {soundfile.__libsndfile_version__}) cannot read it; " + convert_hint(path)
    return "The file is damaged or not audio: re-export it, or " + convert_hint(path)


def audio_ext(name: str) -> str | None:
    """The audio extension of ``name`` in lower case, or None."""
    _, dot, ext = name.rpartition(".")
    ext = ext.lower()
    return ext if dot and ext in AUDIO_EXTENSIONS else None


def strip_audio_ext(name: str) -> str:
    ext = audio_ext(name)
    return name[: -len(ext) - 1] if ext else name


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


@dataclass
class Resolution:
    """Outcome of looking up one id: a path, several candidates, or nothing."""

    path: str | None = None
    candidates: list[str] = field(default_factory=list)  # >1 when ambiguous
    looked_for: str = ""
    note: str = ""  # set when the match needed a guess the user should know about

    @property
    def found(self) -> bool:
        return self.path is not None

    @property
    def ambiguous(self) -> bool:
        return self.path is None and len(self.candidates) > 1


class AudioIndex:
    """All audio files under ``root`` (recursively), indexed for :meth:`resolve`."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.path.abspath(os.fspath(root))
        self.files: list[str] = []
        self._by_rel: dict[str, list[str]] = {}
        self._by_rel_stem: dict[str, list[str]] = {}
        self._by_name: dict[str, list[str]] = {}
        self._by_stem: dict[str, list[str]] = {}
        self._lower: dict[str, dict[str, list[str]]] = {"name": {}, "stem": {}}
        self._walk()

    def _walk(self) -> None:
        visited: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in visited:  # symlink loop or a second link to the same folder
                dirnames[:] = []
                continue
            visited.add(real)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
            for name in sorted(filenames):
                if name.startswith(".") or not audio_ext(name):  # "._x.wav" are macOS resource forks
                    continue
                full = os.path.join(dirpath, name)
                if not os.path.isfile(full):
                    continue
                self._add(full)

    def _add(self, full: str) -> None:
        self.files.append(full)
        rel = _nfc(os.path.relpath(full, self.root).replace(os.sep, "/"))
        name = rel.rsplit("/", 1)[-1]
        keys = {"rel": rel, "rel_stem": strip_audio_ext(rel), "name": name, "stem": strip_audio_ext(name)}
        maps = {"rel": self._by_rel, "rel_stem": self._by_rel_stem, "name": self._by_name, "stem": self._by_stem}
        for kind, key in keys.items():
            maps[kind].setdefault(key, []).append(full)
            if kind in self._lower:
                self._lower[kind].setdefault(key.lower(), []).append(full)

    def __len__(self) -> int:
        return len(self.files)

    def resolve(self, ref: str, *, base_dirs: tuple[str, ...] = ()) -> Resolution:
        """Find the audio file for an id / path as written in a transcript file.

        Tried in order: an absolute path as is; the path relative to the audio
        folder (with or without extension); relative to each of ``base_dirs``;
        the file name; the stem; then the same ignoring case. A match in more
        than one place is returned as ambiguous rather than guessed.
        """
        raw = ref.strip()
        r = _nfc(raw.replace("\\", "/"))
        while r.startswith("./"):
            r = r[2:]
        name = r.rstrip("/").rsplit("/", 1)[-1]
        stem = strip_audio_ext(name)
        has_ext = audio_ext(name) is not None
        looked_for = f"{r} and {stem}.*" if has_ext else f"{r}.* and {r}"
        res = Resolution(looked_for=looked_for)
        if not name:
            return res

        if os.path.isabs(raw) or os.path.isabs(r):
            if _isfile(raw):
                return Resolution(path=os.path.abspath(raw), looked_for=raw)
            res.looked_for = f"{raw}, then {name} in the audio folder"
            found = self._lookup(name, stem, has_ext, res)
            if found.found:
                found.note = f"{raw} does not exist; using {found.path} from the audio folder instead"
            return found

        hit = self._by_rel.get(r)
        if hit and len(hit) == 1:
            return Resolution(path=hit[0], looked_for=looked_for)
        if not has_ext:
            hit = self._by_rel_stem.get(r)
            if hit:
                return _one_or_ambiguous(hit, looked_for)
        for base in base_dirs:
            p = os.path.join(base, r)
            if _isfile(p) and audio_ext(p):
                return Resolution(path=os.path.abspath(p), looked_for=looked_for)
        found = self._lookup(name, stem, has_ext, res)
        if found.found and "/" in r and not found.note:
            found.note = f"{r} is not under the audio folder; using {found.path} (same file name)"
        return found

    def _lookup(self, name: str, stem: str, has_ext: bool, res: Resolution) -> Resolution:
        looked_for = res.looked_for
        for exact in (True, False):
            def get(kind: str, key: str) -> list[str] | None:
                if exact:
                    return {"name": self._by_name, "stem": self._by_stem}[kind].get(key)
                return self._lower[kind].get(key.lower())

            if has_ext:
                hit = get("name", name)
                if hit:
                    return _one_or_ambiguous(hit, looked_for)
            hit = get("stem", stem)
            if hit:
                out = _one_or_ambiguous(hit, looked_for)
                if out.found and has_ext and os.path.basename(out.path or "") != name:
                    out.note = f"{name} is not in the audio folder; using {out.path} (same name, other extension)"
                return out
        return res


def _one_or_ambiguous(hits: list[str], looked_for: str) -> Resolution:
    if len(hits) == 1:
        return Resolution(path=hits[0], looked_for=looked_for)
    return Resolution(candidates=sorted(hits), looked_for=looked_for)


def _isfile(p: str) -> bool:
    try:
        return os.path.isfile(p)
    except (OSError, ValueError):
        return False
