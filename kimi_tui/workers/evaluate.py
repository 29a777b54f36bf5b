"""The evaluate stage: run the engine's transcription, then score every model on every split.

Transcription is the engine's (a child process in this run's process group, so
a stop reaches it); scoring is kimi-tui's own (kimi_tui.evaluate), identical for
every engine, so Whisper and Kimi-Audio numbers are comparable. The references
are written into the evaluation folder before transcription starts, so the
folder is self-contained and `kimi-tui report` can re-score it at any time.

Usage: python -m kimi_tui.workers.evaluate --output DIR [--train-jsonl F] [scoring options] -- TRANSCRIBE...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from kimi_tui.evaluate.normalise import Normaliser, NormaliserOptions
from kimi_tui.evaluate.textfile import read_id_text
from kimi_tui.evaluate.report import build_report, load_evaluation, render_markdown
from kimi_tui.events import EventWriter
from kimi_tui.fsutil import atomic_write_json, atomic_write_text


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [tuple(v.split("=", 1)) for f, v in zip(argv, argv[1:]) if f == flag]  # type: ignore[misc]


def write_references(output: Path, transcribe: list[str]) -> list[str]:
    """references.jsonl from the Kimi-format JSONL files the transcriber reads; returns the splits."""
    lines = []
    splits = []
    for split, path in _pairs(transcribe, "--jsonl"):
        splits.append(split)
        table, _ = read_id_text(path)  # Kimi format: the sample's id (else its audio's stem) and the assistant text
        lines += [json.dumps({"split": split, "id": i, "reference": r}, ensure_ascii=False) + "\n" for i, r in table.items()]
    atomic_write_text(output / "references.jsonl", "".join(lines))
    return splits


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: python -m kimi_tui.workers.evaluate --output DIR [options] -- TRANSCRIBE...", file=sys.stderr)
        return 2
    split_at = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m kimi_tui.workers.evaluate")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--train-jsonl", type=Path)
    parser.add_argument("--numbers", action="store_true", help="normalise numbers before scoring")
    parser.add_argument("--fillers", action="store_true", help="drop fillers and erhua before scoring")
    parser.add_argument("--mixed", action="store_true", help="also score CJK characters + Latin words")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv[:split_at])
    transcribe = argv[split_at + 1 :]
    events = EventWriter()
    args.output.mkdir(parents=True, exist_ok=True)
    n_train = None
    if args.train_jsonl and args.train_jsonl.exists():
        with open(args.train_jsonl, encoding="utf-8") as fh:
            n_train = sum(1 for line in fh if line.strip())
    splits = write_references(args.output, transcribe)
    atomic_write_json(args.output / "evaluation.json", {
        "models": [name for name, _ in _pairs(transcribe, "--model")],
        "model_paths": dict(_pairs(transcribe, "--model")),
        "splits": splits,
        "n_train_utterances": n_train,
        "created": time.time(),
    })
    print("evaluate: " + " ".join(transcribe[:3]) + " ...", flush=True)
    code = subprocess.call(transcribe)
    if code != 0:
        print(f"evaluate: transcription failed with exit code {code}", flush=True)
        events.error(f"transcription failed with exit code {code}")
        return code
    normaliser = Normaliser(NormaliserOptions(numbers=args.numbers, fillers=args.fillers, mixed=args.mixed))
    report = build_report(load_evaluation(args.output), normaliser, resamples=args.resamples)
    atomic_write_json(args.output / "metrics.json", report)
    markdown = render_markdown(report)
    atomic_write_text(args.output / "report.md", markdown)
    print(markdown, flush=True)
    events.artifact("metrics", args.output / "metrics.json")
    events.artifact("report", args.output / "report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
