"""Turning a transcript file plus an audio folder into the samples a run will use.

Fine-tuning jobs are long and expensive, so every problem with the data is
found here, before a GPU is touched, and reported row by row: a bad row
becomes a :class:`Finding` that names the file, line, id and audio file and
says what to do, and the rest of the data still imports. Only a source that is
unusable as a whole (missing, undecodable, no id/transcript columns) raises
:class:`~kimi_tui.errors.DataError`. Everything is read from headers only, so a
validation pass over a large corpus is cheap enough to run on every start.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kimi_tui.data.audio import (
    AudioIndex,
    AudioInfo,
    AudioReadError,
    Resolution,
    probe_audio,
    strip_audio_ext,
    unreadable_fix,
)
from kimi_tui.data.kimi_jsonl import inspect_sample, iter_lines, json_error
from kimi_tui.data.transcripts import (
    ID_COLUMN_NAMES,
    PATH_COLUMN_NAMES,
    TEXT_COLUMN_NAMES,
    Row,
    Table,
    column_by_name,
    describe_columns,
    find_column,
    normalize_column_name,
    read_table,
    read_text,
)
from kimi_tui.errors import DataError
from kimi_tui.levels import LEVEL_ORDER, Level

TARGET_SAMPLE_RATE = 16000
#: No clip's transcript is this long; a longer one is a quote left open or a mixed-up column.
MAX_TRANSCRIPT_CHARS = 100_000


@dataclass
class Finding:
    """One problem (or remark) about one row; ``error`` rows are left out."""

    level: Level
    code: str
    message: str
    source: str
    line: int | None
    utt_id: str | None
    audio: str | None
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Utterance:
    id: str
    text: str
    audio: str  # absolute path
    source: str
    line: int
    duration_s: float
    sample_rate: int
    channels: int
    frames: int
    #: The row's own instruction (a JSONL's user text message); None for a CSV row or a JSONL row
    #: without one. Which instruction prepare writes: kimi_jsonl.row_instruction.
    instruction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Manifest:
    split: str
    utterances: list[Utterance]
    findings: list[Finding]
    n_rows: int
    #: The probe of every audio file an utterance uses (stat included): what prepare records.
    audio_info: dict[str, AudioInfo] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "note"]

    @property
    def total_duration_s(self) -> float:
        return sum(u.duration_s for u in self.utterances)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "n_rows": self.n_rows,
            "n_utterances": len(self.utterances),
            "total_duration_s": round(self.total_duration_s, 3),
            "counts": {
                "error": len(self.errors),
                "warning": len(self.warnings),
                "note": len(self.notes),
            },
            "utterances": [u.to_dict() for u in self.utterances],
            "findings": [f.to_dict() for f in self.findings],
        }


# --------------------------------------------------------------------------- checks


def _where(source: Path, line: int | None, utt_id: str | None) -> str:
    where = source.name if line is None else f"{source.name} line {line}"
    return where + (f" (id {utt_id})" if utt_id else "")


def _finding(level: Level, code: str, source: Path, line: int | None, utt_id: str | None, audio: str | None,
             message: str, fix: str = "") -> Finding:
    return Finding(level, code, f"{_where(source, line, utt_id)}: {message}", str(source), line, utt_id or None,
                   audio, fix)


class _Checker:
    """Applies the per-sample checks shared by CSV and JSONL sources."""

    def __init__(self, source: Path, max_duration_s: float | None, index: AudioIndex | None = None,
                 base_dirs: tuple[str, ...] = ()):
        self.source = source
        self.max_duration_s = max_duration_s if max_duration_s and max_duration_s > 0 else None
        self.index = index
        self.base_dirs = base_dirs
        self.findings: list[Finding] = []
        self.utterances: list[Utterance] = []
        self._ids: dict[str, int] = {}
        self._audio_users: dict[str, tuple[int, str]] = {}
        self._probes: dict[str, AudioInfo | DataError] = {}
        #: Only look the audio files up (init's check): no header is read, no Utterance is kept.
        self.paths_only = False
        self.found_paths: list[str] = []

    def add(self, level: Level, code: str, line: int | None, utt_id: str | None, audio: str | None,
            message: str, fix: str = "") -> None:
        self.findings.append(_finding(level, code, self.source, line, utt_id, audio, message, fix))

    def _probe(self, path: str) -> AudioInfo | DataError:
        if path not in self._probes:
            try:
                self._probes[path] = probe_audio(path)
            except DataError as exc:
                self._probes[path] = exc
        return self._probes[path]

    def check(self, line: int, utt_id: str, text: str, *, audio_ref: str | None = None,
              audio_path: str | None = None, tried: tuple[_Base, ...] = (),
              instruction: str | None = None) -> None:
        """Check one sample; keep it as an Utterance unless an error was found.

        ``tried``: for a JSONL's relative path (``audio_ref``) not found under any base, the bases
        it was looked up in (``audio_path`` is then its path under the first)."""
        n_errors = sum(1 for f in self.findings if f.level == "error")
        uid = utt_id or None

        if not utt_id:
            self.add("error", "empty_id", line, None, None, "the id is empty",
                     "Fill in the id (the audio file name) or delete the row.")
        elif utt_id in self._ids:
            first = self._ids[utt_id]
            self.add("error", "duplicate_id", line, uid, None,
                     f"the id {utt_id} already appears on line {first}; this row is skipped",
                     f"Give every row its own id, or delete the repeated row (line {first} is kept).")
        else:
            self._ids[utt_id] = line

        if not text.strip():
            self.add("error", "empty_transcript", line, uid, None, "the transcript is empty",
                     "Fill in the transcript or delete the row; a clip without text cannot be trained on.")
        elif len(text) > MAX_TRANSCRIPT_CHARS:
            self.add("error", "transcript_too_long", line, uid, None,
                     f"the transcript is {len(text):,} characters long (starting {_clip(text)}), more than any "
                     "clip can hold; this row is skipped",
                     f"Check for a double quote (\") on line {line} that is not closed; otherwise cut the "
                     "transcript down to the words spoken in the clip.")

        path = self._locate(line, uid, audio_ref, audio_path, tried)
        info = None
        if path is not None and self.paths_only:
            self.found_paths.append(path)
        elif path is not None:
            info = self._check_audio(line, uid, path)
            if path in self._audio_users:
                other_line, other_id = self._audio_users[path]
                self.add("warning", "duplicate_audio", line, uid, path,
                         f"audio file {path} is also used by line {other_line} (id {other_id})",
                         "Check the two rows for a copy-paste mistake; each clip is normally listed once.")
            else:
                self._audio_users[path] = (line, utt_id)

        if info is not None and sum(1 for f in self.findings if f.level == "error") == n_errors:
            assert path is not None
            self.utterances.append(Utterance(
                id=utt_id, text=text.strip(), audio=path, source=str(self.source), line=line,
                duration_s=info.duration_s, sample_rate=info.sample_rate, channels=info.channels,
                frames=info.frames, instruction=instruction,
            ))

    def _locate(self, line: int, uid: str | None, ref: str | None, path: str | None,
                tried: tuple[_Base, ...] = ()) -> str | None:
        if path is not None:  # JSONL: already a path
            if os.path.isfile(path):
                return path
            if tried:
                self.add("error", "missing_audio", line, uid, path,
                         f"audio file {ref} (a relative path) is not found in {_bases_text(tried)}",
                         "Correct the path in the JSONL, or write it as an absolute path; a relative path is "
                         "looked up in those folders, in that order. Data made for the official Kimi-Audio "
                         "scripts names its audio relative to the checkout root (they run there): use the JSONL "
                         "where it lies in its checkout, or, in a kimi-audio project, set [kimi_audio] checkout "
                         "in kimi-tui.toml to that checkout.")
            else:
                self.add("error", "missing_audio", line, uid, path, f"audio file {path} does not exist",
                         "Correct the audio path in the JSONL, or put the file back at that path.")
            return None
        if not ref:
            return None
        assert self.index is not None
        try:
            res = self.index.resolve(ref, base_dirs=self.base_dirs)
        except (OSError, ValueError):
            res = Resolution(looked_for=ref)
        if res.ambiguous:
            listing = ", ".join(res.candidates)
            self.add("error", "ambiguous_audio", line, uid, None,
                     f"{len(res.candidates)} audio files match {ref!r}: {listing}; cannot tell which one is meant",
                     "Write the path relative to the audio folder in the id column (for example "
                     f"{os.path.relpath(res.candidates[0], self.index.root)}), or remove the extra copy.")
            return None
        if not res.found:
            self.add("error", "missing_audio", line, uid, None,
                     f"no audio file found for this id in {self.index.root} (looked for {res.looked_for})",
                     "Check the id for typos, copy the audio file into the audio folder, or point "
                     "data.train_audio (data.test_audio for the test set) in kimi-tui.toml at the folder that has it.")
            return None
        assert res.path is not None
        if res.note:
            self.add("note", "audio_path_guessed", line, uid, res.path, res.note,
                     "Nothing to do if this is the right file; otherwise fix the id / path.")
        return res.path

    def _check_audio(self, line: int, uid: str | None, path: str) -> AudioInfo | None:
        info = self._probe(path)
        if isinstance(info, DataError):
            reason = info.reason if isinstance(info, AudioReadError) else str(info)
            self.add("error", "unreadable_audio", line, uid, path,
                     f"cannot read audio file {path} ({reason})", unreadable_fix(path))
            return None
        if info.frames == 0 or info.sample_rate <= 0:
            self.add("error", "empty_audio", line, uid, path, f"audio file {path} contains no audio (0 samples)",
                     "Re-export the clip, or delete the row.")
            return None
        if info.declared_frames:
            self.add("warning", "truncated_audio", line, uid, path,
                     f"audio file {path} is cut short: its header announces "
                     f"{info.declared_frames / info.sample_rate:.2f} s but it holds only {info.duration_s:.3f} s",
                     "The file was probably copied or exported incompletely; copy or export it again so the "
                     "audio matches the transcript, or delete the row.")
        if self.max_duration_s is not None and info.duration_s > self.max_duration_s:
            self.add("error", "too_long", line, uid, path,
                     f"audio file {path} is {info.duration_s:.1f} s long, over the {self.max_duration_s:g} s limit",
                     f"Split the clip into pieces shorter than {self.max_duration_s:g} s, each with its own "
                     "transcript (or raise data.max_duration_s if your model accepts longer input).")
        if info.channels > 1:
            self.add("note", "stereo", line, uid, path,
                     f"audio file {path} has {info.channels} channels; it is mixed down to mono at load",
                     "Nothing to do; converting once to mono (ffmpeg -ac 1) saves that work on every epoch.")
        if info.sample_rate != TARGET_SAMPLE_RATE:
            self.add("note", "resampled", line, uid, path,
                     f"audio file {path} is {info.sample_rate} Hz; it is resampled to 16 kHz at load",
                     "Nothing to do; converting once to 16 kHz (ffmpeg -ar 16000) saves that work on every epoch.")
        return info

    def used_audio(self) -> dict[str, AudioInfo]:
        out: dict[str, AudioInfo] = {}
        for u in self.utterances:
            info = self._probes.get(u.audio)
            if isinstance(info, AudioInfo):
                out[u.audio] = info
        return out

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (f.line or 0, LEVEL_ORDER[f.level]))


# --------------------------------------------------------------------------- CSV


@dataclass
class _Layout:
    has_header: bool
    id_idx: int
    text_idx: int
    audio_idx: int | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)  # (code, message)


def _looks_like_audio_ids(values: list[str], index: AudioIndex, base_dirs: tuple[str, ...]) -> bool:
    values = [v for v in values if v.strip()][:50]
    if not values:
        return False
    hits = 0
    for v in values:
        try:
            res = index.resolve(v, base_dirs=base_dirs)
        except (OSError, ValueError):
            continue
        hits += res.found or res.ambiguous
    return hits * 2 >= len(values)


def _detect_layout(table: Table, index: AudioIndex, id_column: str | None, text_column: str | None,
                   base_dirs: tuple[str, ...]) -> _Layout:
    header = [c.strip() for c in table.rows[0].cells]
    src = table.path
    cols = describe_columns(header)
    set_both = "set data.id_column and data.text_column in kimi-tui.toml"

    def values(idx: int) -> list[str]:
        return [r.cells[idx] for r in table.rows[1:51] if len(r.cells) > idx]

    if id_column is not None or text_column is not None:
        id_idx = column_by_name(header, id_column, setting="data.id_column", source=src) if id_column else None
        text_idx = (column_by_name(header, text_column, setting="data.text_column", source=src)
                    if text_column else None)
        if id_idx is None:
            id_idx = find_column(header, ID_COLUMN_NAMES, exclude={text_idx})
        if text_idx is None:
            text_idx = find_column(header, TEXT_COLUMN_NAMES, exclude={id_idx})
        notes: list[tuple[str, str]] = []
        if len(header) == 2 and (id_idx is None) != (text_idx is None):
            if id_idx is None:
                id_idx = 1 - text_idx  # type: ignore[operator]
            else:
                text_idx = 1 - id_idx
            notes.append(("column_guess", f"using column {header[id_idx]!r} as the id and "
                                          f"{header[text_idx]!r} as the transcript"))
        if id_idx is None:
            raise DataError(f"{src.name}: no id column found among the columns {cols}; set data.id_column in kimi-tui.toml")
        if text_idx is None:
            raise DataError(
                f"{src.name}: no transcript column found among the columns {cols}; set data.text_column in kimi-tui.toml"
            )
        if id_idx == text_idx:
            raise DataError(f"{src.name}: data.id_column and data.text_column both name column {header[id_idx]!r}")
        return _with_audio_column(_Layout(True, id_idx, text_idx, notes=notes), header)

    id_idx = find_column(header, ID_COLUMN_NAMES)
    text_idx = find_column(header, TEXT_COLUMN_NAMES, exclude={id_idx} if id_idx is not None else set())
    if id_idx is not None and text_idx is not None:
        layout = _with_audio_column(_Layout(True, id_idx, text_idx), header)
        other = find_column(header, TEXT_COLUMN_NAMES, exclude={id_idx, text_idx, layout.audio_idx})
        if other is not None:
            layout.notes.append(("column_choice", f"using column {header[text_idx]!r} as the transcript; column "
                                                  f"{header[other]!r} looks like one too (set data.text_column to "
                                                  "use it instead)"))
        return layout

    if len(header) == 2:
        if id_idx is None and text_idx is None and _looks_like_audio_ids([header[0]], index, base_dirs):
            return _Layout(False, 0, 1, notes=[(
                "no_header",
                f"the file has no header row (its first cell {header[0]!r} is an audio file), so the first column "
                "is read as the id and the second as the transcript",
            )])
        if id_idx is None:
            t_idx = 1 if text_idx is None else text_idx
            i_idx = 1 - t_idx
            ids = values(i_idx)
            if _looks_like_audio_ids(ids, index, base_dirs):
                if text_idx is None and i_idx == 0 and _same_shape(header[0], ids):
                    return _Layout(False, 0, 1, notes=[(
                        "no_header",
                        f"the file has no header row (its first cell {header[0]!r} looks like the ids below it), "
                        "so the first column is read as the id and the second as the transcript",
                    )])
                return _Layout(True, i_idx, t_idx, notes=[(
                    "column_guess",
                    f"no id column name recognised, but the values of column {header[i_idx]!r} match audio files, "
                    f"so it is read as the id and {header[t_idx]!r} as the transcript",
                )])
        else:
            text_idx = 1 - id_idx
            return _Layout(True, id_idx, text_idx, notes=[(
                "column_guess", f"no transcript column name recognised; reading column {header[text_idx]!r} as the transcript",
            )])

    missing = " and ".join(
        what for what, idx in (("an id column", id_idx), ("a transcript column", text_idx)) if idx is None
    )
    raise DataError(
        f"{src.name}: cannot find {missing}; the columns found are {cols}. "
        f"Rename the header (e.g. id,text) or {set_both} (for example id_column = {header[0]!r})."
    )


def _clip(text: str, limit: int = 60) -> str:
    """``repr(text)``, shortened for a message: a row can hold megabytes."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _same_shape(cell: str, ids: list[str]) -> bool:
    """True if ``cell`` looks like one of ``ids`` with other digits ("utt_0010" vs "utt_0001")."""
    def shape(v: str) -> str:
        return re.sub(r"\d", "0", strip_audio_ext(v.strip()))
    return bool(re.search(r"\d", cell)) and shape(cell) in {shape(v) for v in ids}


def _with_audio_column(layout: _Layout, header: list[str]) -> _Layout:
    """Use a separate path/file column for the audio lookup when the id column is a plain id."""
    path_names = {normalize_column_name(n) for n in PATH_COLUMN_NAMES}
    if normalize_column_name(header[layout.id_idx]) in path_names:
        return layout
    idx = find_column(header, PATH_COLUMN_NAMES, exclude={layout.id_idx, layout.text_idx})
    if idx is not None:
        layout.audio_idx = idx
        layout.notes.append(("audio_column", f"audio files are looked up through column {header[idx]!r}; "
                                             f"column {header[layout.id_idx]!r} is the id"))
    return layout


def _load_csv(split: str, csv_path: Path, audio_dir: Path | None, id_column: str | None,
              text_column: str | None, encoding: str, max_duration_s: float | None,
              paths_only: bool = False) -> Manifest:
    if csv_path.suffix.lower() in (".jsonl", ".json"):
        raise DataError(f"{csv_path} is a JSONL file; set it as data.train_jsonl (or data.test_jsonl) in kimi-tui.toml, not as the CSV")
    audio_root = audio_dir if audio_dir is not None else csv_path.parent
    table = read_table(csv_path, encoding)
    if not audio_root.exists():
        raise DataError(f"audio folder {audio_root} does not exist; set data.train_audio (data.test_audio for the test set) in kimi-tui.toml")
    if not audio_root.is_dir():
        raise DataError(f"audio folder {audio_root} is a file, not a folder; set data.train_audio (data.test_audio for the test set) in kimi-tui.toml")
    index = AudioIndex(audio_root)
    base_dirs = (str(csv_path.parent),) if csv_path.parent != audio_root else ()
    layout = _detect_layout(table, index, id_column, text_column, base_dirs)

    checker = _Checker(csv_path, max_duration_s, index, base_dirs)
    checker.paths_only = paths_only
    for code, msg in layout.notes:
        checker.add("note", code, 1, None, None, msg,
                    "Set data.id_column / data.text_column in kimi-tui.toml if this is wrong.")

    header_cells = table.rows[0].cells
    rows = table.rows[1:] if layout.has_header else table.rows
    if not rows:
        raise DataError(f"{csv_path} has a header ({describe_columns(header_cells)}) but no data rows")
    ncols = len(header_cells)
    needed = max(layout.id_idx, layout.text_idx, layout.audio_idx or 0) + 1
    delim = {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}[table.delimiter]
    for row in rows:
        _check_csv_row(checker, row, layout, ncols, needed, table.delimiter, delim)

    n_missing = sum(1 for f in checker.findings if f.code == "missing_audio")
    if len(index) == 0 and n_missing:
        checker.add("warning", "no_audio_files", None, None, None,
                    f"the audio folder {audio_root} contains no audio files "
                    f"(looked for .wav, .flac, .mp3, .ogg, .opus, .m4a, .aac, .wma, .aiff)",
                    "Point data.train_audio (data.test_audio for the test set) in kimi-tui.toml at the folder with the audio.")

    if len(index) and n_missing >= 2 and n_missing == len(rows):
        examples = ", ".join(os.path.relpath(p, index.root) for p in index.files[:3])
        checker.add("warning", "no_audio_matched", None, None, None,
                    f"none of the {len(rows)} ids matched a file in the audio folder {audio_root} "
                    f"(it has {len(index)} audio files, e.g. {examples})",
                    "Check that data.train_audio (data.test_audio for the test set) is the folder for this split and that the id column holds the "
                    "audio file names.")
    return Manifest(split, checker.utterances, checker.sorted_findings(), len(rows), checker.used_audio())


def _check_csv_row(checker: _Checker, row: Row, layout: _Layout, ncols: int, needed: int, sep: str,
                   delim: str) -> None:
    cells = list(row.cells)
    while len(cells) > ncols and not cells[-1].strip():
        cells.pop()  # trailing empty cells from spreadsheets
    guess_id = cells[layout.id_idx].strip() if len(cells) > layout.id_idx else None
    if len(cells) > ncols:
        if ncols == 2 and layout.id_idx == 0 and layout.text_idx == 1:
            cells = [cells[0], sep.join(cells[1:])]
            checker.add("warning", "unquoted_delimiter", row.line, guess_id, None,
                        f"the row has {len(row.cells)} fields but the header has 2, so everything after the "
                        f"id was read as the transcript: {_clip(cells[1])}",
                        f"Put transcripts that contain {delim} in double quotes.")
        else:
            checker.add("error", "bad_row", row.line, guess_id, None,
                        f"the row has {len(cells)} fields but the header has {ncols} (fields are separated by "
                        f"{delim}); this row is skipped",
                        f"Put values that contain {delim} in double quotes.")
            return
    if len(cells) < needed:
        checker.add("error", "bad_row", row.line, guess_id, None,
                    f"the row has {len(cells)} field(s) but needs {needed} (fields are separated by {delim}); "
                    "this row is skipped",
                    "Fill in the missing id / transcript, or delete the row.")
        return
    if row.end_line > row.line:
        checker.add("warning", "multiline_row", row.line, guess_id, None,
                    f"this row runs over lines {row.line}-{row.end_line} because a quoted value contains line "
                    "breaks",
                    f"If that is not intended, a double quote (\") on line {row.line} is probably not closed.")
    utt_id = cells[layout.id_idx].strip()
    ref = utt_id
    if layout.audio_idx is not None and cells[layout.audio_idx].strip():
        ref = cells[layout.audio_idx].strip()
    checker.check(row.line, utt_id, cells[layout.text_idx], audio_ref=ref)


# --------------------------------------------------------------------------- JSONL


@dataclass(frozen=True)
class _Base:
    """A folder a JSONL's relative audio paths may start from, and how to name it to the user."""

    path: str
    what: str


def _bases_text(bases: tuple[_Base, ...]) -> str:
    parts = [f"{b.what} {b.path}" for b in bases]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def is_kimi_checkout(folder: str | os.PathLike[str]) -> bool:
    """A Kimi-Audio checkout root: finetune_codes/ plus kimia_infer/ or finetune.py."""
    folder = os.fspath(folder)
    return os.path.isdir(os.path.join(folder, "finetune_codes")) and (
        os.path.isdir(os.path.join(folder, "kimia_infer")) or os.path.isfile(os.path.join(folder, "finetune.py")))


def find_kimi_checkout(start: str | os.PathLike[str]) -> Path | None:
    """The Kimi-Audio checkout root holding ``start`` (or ``start`` itself), walking up; None if none."""
    folder = os.path.abspath(os.fspath(start))
    while True:
        if is_kimi_checkout(folder):
            return Path(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def jsonl_audio_bases(jsonl_path: str | os.PathLike[str], *, checkout: str | os.PathLike[str] | None = None,
                      cwd: str | os.PathLike[str] | None = None, cwd_what: str = "the current folder"
                      ) -> tuple[_Base, ...]:
    """Where a JSONL's relative audio paths are looked up, in order, the way the data's own tools
    would read them: the official Kimi-Audio scripts run in the checkout root and write paths relative
    to it ("finetune_codes/demo_data/.../x.flac"), so the configured checkout (``checkout``: a
    kimi-audio project's [kimi_audio] checkout) comes first, then a checkout root the JSONL lies in,
    then the JSONL's folder (a hand-made file next to its audio), then the current folder."""
    folder = Path(os.path.abspath(os.fspath(jsonl_path))).parent
    found = find_kimi_checkout(folder)
    candidates = []
    if checkout is not None and str(checkout).strip():
        candidates.append((os.path.abspath(os.path.expanduser(os.fspath(checkout))),
                           "the Kimi-Audio checkout ([kimi_audio] checkout)"))
    if found is not None:
        candidates.append((str(found), "the Kimi-Audio checkout root above the JSONL"))
    candidates.append((str(folder), "the JSONL's folder"))
    candidates.append((os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd()), cwd_what))
    out: list[_Base] = []
    seen: set[str] = set()
    for path, what in candidates:
        key = os.path.normcase(os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            out.append(_Base(path, what))
    return tuple(out)


def _load_jsonl(split: str, jsonl_path: Path, encoding: str, max_duration_s: float | None,
                bases: tuple[_Base, ...], paths_only: bool = False) -> Manifest:
    decoded = read_text(jsonl_path, encoding, what="JSONL file")
    lines = list(iter_lines(decoded.text))
    checker = _Checker(jsonl_path, max_duration_s)
    checker.paths_only = paths_only
    used: dict[_Base, list[str]] = {}  # base -> the relative paths read from it
    n_json = 0
    for line_no, line in lines:
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            why = json_error(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            checker.add("error", "bad_json", line_no, None, None, f"the line is not valid JSON ({why}); it is skipped",
                        "Correct or delete the line; every line must be one JSON object.")
            continue
        n_json += 1
        shape = inspect_sample(obj)
        if shape.problems:
            checker.add("error", "bad_sample", line_no, shape.sample_id, None,
                        "the sample " + "; ".join(shape.problems),
                        'Each line needs a "conversation" list with one user audio message and one assistant text '
                        "message (the Kimi-Audio understanding format).")
            continue
        if len(shape.audios) > 1:
            checker.add("error", "multiple_audio", line_no, shape.sample_id, None,
                        f"the sample has {len(shape.audios)} audio messages ({', '.join(shape.audios)}); Kimi-Audio "
                        "takes exactly one audio per sample and fails an assertion otherwise",
                        "Split it into one sample per audio file.")
            continue
        ref = shape.audios[0]
        audio = os.path.expanduser(ref)
        tried: tuple[_Base, ...] = ()
        if os.path.isabs(audio):
            path = os.path.abspath(audio)
        else:
            for base in bases:
                path = os.path.abspath(os.path.join(base.path, audio))
                if os.path.isfile(path):
                    used.setdefault(base, []).append(ref)
                    break
            else:
                path = os.path.abspath(os.path.join(bases[0].path, audio))
                tried = bases
        utt_id = shape.sample_id or strip_audio_ext(os.path.basename(path))
        checker.check(line_no, utt_id, shape.transcript or "", audio_ref=ref, audio_path=path, tried=tried,
                      instruction=shape.instruction)

    if lines and n_json == 0:
        raise DataError(
            f"no line of {jsonl_path} is JSON (line {lines[0][0]}: {lines[0][1][:60]!r}); if it is a CSV, "
            "set it as data.train_csv (or data.test_csv, with its audio folder) in kimi-tui.toml instead"
        )
    order = ", then ".join(b.what for b in bases)
    for base, refs in used.items():
        n = len(refs)
        checker.add("note", "audio_base", None, None, None,
                    f"{n:,} relative audio path{'' if n == 1 else 's'} (e.g. {refs[0]}) read from {base.what} "
                    f"{base.path}",
                    f"Nothing to do if these are the right files. A relative path is looked up in {order}; "
                    "write absolute paths in the JSONL to choose the files yourself.")
    findings = checker.sorted_findings()
    findings.sort(key=lambda f: f.line is not None)  # the notes about the whole file first
    return Manifest(split, checker.utterances, findings, len(lines), checker.used_audio())


# --------------------------------------------------------------------------- train/test leakage

#: Bytes read to tell same-sized files apart before hashing them whole.
_HEAD_BYTES = 64 * 1024


def _digest(path: str, limit: int | None) -> str | None:
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            if limit is not None:
                h.update(f.read(limit))
            else:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _size(manifest: Manifest, path: str) -> int | None:
    info = manifest.audio_info.get(path)
    if info is not None and info.size is not None:
        return info.size
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _same_content(train: Manifest, test: Manifest, train_paths: dict[str, Utterance],
                  test_paths: dict[str, Utterance]) -> dict[str, str]:
    """test path -> a train path with the same bytes. Only files whose size occurs in both splits
    are read (their first 64 KiB, then whole only when those agree), so a 100k-file corpus costs
    a few stats, not a read of every clip."""
    by_size: dict[int, list[str]] = {}
    for path in train_paths:
        size = _size(train, path)
        if size is not None:
            by_size.setdefault(size, []).append(path)
    test_sizes = {path: _size(test, path) for path in test_paths}
    wanted = {size for size in test_sizes.values() if size in by_size}
    by_head: dict[tuple[int, str], list[str]] = {}
    for size in wanted:
        for other in by_size[size]:
            head = _digest(other, _HEAD_BYTES)
            if head is not None:
                by_head.setdefault((size, head), []).append(other)
    wholes: dict[str, str | None] = {}

    def whole(path: str) -> str | None:
        if path not in wholes:
            wholes[path] = _digest(path, None)
        return wholes[path]

    out: dict[str, str] = {}
    for path, size in test_sizes.items():
        if size not in wanted:
            continue
        head = _digest(path, _HEAD_BYTES)
        for other in by_head.get((size, head), ()) if head is not None else ():
            if size <= _HEAD_BYTES or (whole(path) is not None and whole(other) == whole(path)):
                out[path] = other
                break
    return out


def check_leakage(train: Manifest, test: Manifest) -> None:
    """Add findings to ``test`` for the clips and ids it shares with ``train``.

    A test clip that is also a training clip (the same file, by resolved path or by content) is an
    error and is left out of the test set: the model has heard it, so it would flatter the scores.
    The same id with different audio is a warning only: nothing breaks and the clips may be
    unrelated, but it is worth a look. ``train`` is not changed.
    """
    def key(path: str) -> tuple[int, int] | str:
        # The file itself (device, inode): one stat, and a symlink or hard link to a training clip is
        # the same clip. realpath would cost a stat per path component, seconds on 100k clips.
        try:
            st = os.stat(path)
        except OSError:
            return os.path.normcase(os.path.abspath(path))
        return (st.st_dev, st.st_ino)

    train_paths: dict[str, Utterance] = {}
    train_keys: dict[tuple[int, int] | str, Utterance] = {}
    for u in train.utterances:
        train_paths.setdefault(u.audio, u)
        train_keys.setdefault(key(u.audio), u)
    train_ids = {u.id: u for u in reversed(train.utterances)}
    test_paths = {u.audio: u for u in reversed(test.utterances) if key(u.audio) not in train_keys}
    same_bytes = _same_content(train, test, train_paths, test_paths) if test_paths else {}
    src_name = lambda u: Path(u.source).name  # noqa: E731
    keep: list[Utterance] = []
    added: list[Finding] = []
    why_error = ("A clip the model was trained on tells nothing about new speech and flatters the test "
                 "scores, so this is an error: the row is left out of the test set (training keeps it). "
                 "Remove the clip from one of the two files.")
    for u in test.utterances:
        t = train_keys.get(key(u.audio))
        how = f"is also in the training set ({src_name(t)} line {t.line}, id {t.id})" if t is not None else ""
        if t is None and u.audio in same_bytes:
            t = train_paths[same_bytes[u.audio]]
            how = (f"has the same content as {t.audio} of the training set ({src_name(t)} line {t.line}, "
                   f"id {t.id})")
        if t is not None:
            added.append(_finding("error", "train_test_audio", Path(u.source), u.line, u.id, u.audio,
                                  f"audio file {u.audio} {how}; the row is left out of the test set", why_error))
            continue
        keep.append(u)
        t = train_ids.get(u.id)
        if t is not None:
            added.append(_finding(
                "warning", "train_test_id", Path(u.source), u.line, u.id, u.audio,
                f"the id {u.id} is also in the training set ({src_name(t)} line {t.line}, audio {t.audio}), "
                "with different audio",
                "A warning, not an error: the audio files differ, so the row stays in the test set. Check that "
                "it is not the same recording exported twice; give each split its own ids (e.g. a train_/test_ "
                "prefix) to make the split unambiguous."))
    if not added:
        return
    test.utterances[:] = keep
    kept = {u.audio for u in keep}
    for path in [p for p in test.audio_info if p not in kept]:
        del test.audio_info[path]
    test.findings[:] = sorted([*test.findings, *added], key=lambda f: (
        f.line is not None, f.line or 0, LEVEL_ORDER[f.level]))


# --------------------------------------------------------------------------- API


def _abs(p: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(p))))


def load_split(split: str, *, csv_path: str | os.PathLike[str] | None = None,
               audio_dir: str | os.PathLike[str] | None = None, jsonl_path: str | os.PathLike[str] | None = None,
               id_column: str | None = None, text_column: str | None = None, encoding: str = "auto",
               max_duration_s: float | None = 30.0, checkout: str | os.PathLike[str] | None = None,
               cwd: str | os.PathLike[str] | None = None, cwd_what: str = "the current folder",
               paths_only: bool = False) -> Manifest:
    """Read one split (train/dev/test) and validate every sample.

    Give either ``csv_path`` (+ ``audio_dir``, default: the CSV's folder) or
    ``jsonl_path`` (a Kimi-format file). Row problems become findings on the
    returned Manifest; DataError only when the source cannot be used at all.
    A JSONL's relative audio paths are looked up as :func:`jsonl_audio_bases` says
    (``checkout``: a configured Kimi-Audio checkout; ``cwd``: the current folder, default
    os.getcwd(); ``cwd_what``: how to name it). ``paths_only``: only look the audio files up (no header read, no
    utterance kept): the missing ones become findings, as in a full read.
    """
    if csv_path is not None and jsonl_path is not None:
        raise DataError(f"split {split!r}: give either a CSV file or a JSONL file, not both")
    if jsonl_path is not None:
        path = _abs(jsonl_path)
        return _load_jsonl(split, path, encoding, max_duration_s, jsonl_audio_bases(path, checkout=checkout, cwd=cwd, cwd_what=cwd_what),
                           paths_only)
    if csv_path is None:
        raise DataError(f"split {split!r}: no transcript file given; set data.{split}_csv (and data.{split}_audio) "
                        f"or data.{split}_jsonl in kimi-tui.toml")
    return _load_csv(split, _abs(csv_path), _abs(audio_dir) if audio_dir is not None else None,
                     id_column, text_column, encoding, max_duration_s, paths_only)
