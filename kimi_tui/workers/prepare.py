"""The prepare stage: transcripts + audio -> validated Kimi-format JSONL.

Runs as a stage (not in the UI process) because probing tens of thousands of
audio headers takes a while. Row problems never stop it: each becomes a
finding naming the file and line, the bad rows are left out, the rest is
written. It fails only when a whole source is unusable or nothing is left.

Both splits are read before anything is written, so a test clip that is also
a training clip (kimi_tui.data.manifest.check_leakage) is left out of the test
set instead of flattering the scores.

What it saw of every audio file (size, mtime, frames, rate) goes to
data/audio_fingerprints.json, beside the JSONL rather than in it (the official
Kimi-Audio scripts read those lines as they are): the later stages compare it
with the disk before they start, so a clip changed after prepare is named
instead of training as silence (kimi_tui/data/fingerprints.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from kimi_tui.data import write_kimi_jsonl
from kimi_tui.data.kimi_jsonl import row_instruction
from kimi_tui.data.manifest import check_leakage
from kimi_tui.data.fingerprints import Record, fingerprints_path, record_of, write_fingerprints
from kimi_tui.errors import KimiTuiError
from kimi_tui.events import EventWriter
from kimi_tui.fsutil import atomic_write_json
from kimi_tui.project import Project


def prepare(project: Project, events: EventWriter) -> int:
    d = project.config.data
    report: dict[str, dict] = {}
    recorded: dict[str, Record] = {}
    started = time.time()
    n_errors = 0
    manifests = {split: project.load_split(split) for split in ("train", "test")}
    if manifests["train"] is None:
        raise KimiTuiError("kimi-tui.toml [data]: set train_csv + train_audio, or train_jsonl")
    if manifests["test"] is not None:
        check_leakage(manifests["train"], manifests["test"])  # both read first: a test clip trained on is found
    for index, split in enumerate(("train", "test"), 1):
        manifest = manifests[split]
        if manifest is None:
            print(f"{split}: no source configured, skipped", flush=True)
            continue
        out = project.train_jsonl if split == "train" else project.test_jsonl
        count = write_kimi_jsonl(manifest.utterances, out, d.instruction, d.instruction_for_jsonl)
        recorded.update(_records(manifest))
        hours = sum(u.duration_s for u in manifest.utterances) / 3600
        print(
            f"{split}: {manifest.n_rows} rows read, {count} samples written to {out} "
            f"({hours * 60:.1f} min of audio); {len(manifest.errors)} errors, "
            f"{len(manifest.warnings)} warnings, {len(manifest.notes)} notes",
            flush=True,
        )
        for line in _instruction_lines(manifest.utterances, d.instruction, d.instruction_for_jsonl):
            print(f"  {line}", flush=True)
        for finding in manifest.findings:
            fix = f" Fix: {finding.fix}" if finding.fix else ""
            print(f"  {finding.level}: {finding.message}{fix}", flush=True)
        n_errors += len(manifest.errors)
        report[split] = manifest.to_dict()
        events.artifact("jsonl", out, split=split, samples=count)
        events.progress(index, 2, split=split)
        if split == "train" and count == 0:
            write_fingerprints(fingerprints_path(project.data_dir), recorded, started)
            atomic_write_json(project.findings_json, report)
            raise KimiTuiError("no usable training sample is left: fix the errors above and run prepare again")
    fingerprints = fingerprints_path(project.data_dir)
    write_fingerprints(fingerprints, recorded, started)
    events.artifact("fingerprints", fingerprints, files=len(recorded))
    atomic_write_json(project.findings_json, report)
    events.artifact("findings", project.findings_json, errors=n_errors)
    if n_errors:
        print(f"{n_errors} row(s) left out; see {project.findings_json}", flush=True)
    return 0


def _instruction_lines(utterances, instruction: str, mode: str) -> list[str]:
    """Which instruction the samples were written with, and where each comes from: one line per
    distinct instruction (an imported JSONL's rows keep their own unless [data] instruction_for_jsonl
    = "override")."""
    counts: dict[tuple[str, str], int] = {}
    for u in utterances:
        key = row_instruction(u, instruction, mode)
        counts[key] = counts.get(key, 0) + 1
    lines = [f"instruction ({source}, {n} sample{'' if n == 1 else 's'}): {text!r}"
             for (text, source), n in list(counts.items())[:5]]
    if len(counts) > 5:
        lines.append(f"... and {len(counts) - 5} other instructions")
    return lines


def _records(manifest) -> dict[str, Record]:
    """The fingerprint of every audio file the split's JSONL names, from the probe prepare just did
    (its stat was taken before the header was read)."""
    out: dict[str, Record] = {}
    for path, info in manifest.audio_info.items():
        if info.size is not None and info.mtime_ns is not None:
            rec = Record(info.size, info.mtime_ns, info.frames, info.sample_rate, info.channels)
        else:
            try:
                rec = record_of(path, info.frames, info.sample_rate, info.channels)
            except OSError:
                continue  # gone since the probe: the JSONL names it, and extract/train will say so
        out[os.path.abspath(path)] = rec
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kimi_tui.workers.prepare")
    parser.add_argument("--project", required=True, type=Path)
    args = parser.parse_args(argv)
    events = EventWriter()
    try:
        return prepare(Project.load(args.project), events)
    except KimiTuiError as exc:
        print(f"prepare failed: {exc}", file=sys.stderr, flush=True)
        events.error(str(exc))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
