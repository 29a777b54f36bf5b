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
from kimi_tui.evaluate.state import FORMAT, evaluation_state, folder_identity
from kimi_tui.events import EventWriter
from kimi_tui.fsutil import atomic_write_json, atomic_write_text


def _pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [tuple(v.split("=", 1)) for f, v in zip(argv, argv[1:]) if f == flag]  # type: ignore[misc]


def write_references(output: Path, transcribe: list[str]) -> tuple[list[str], dict[str, int]]:
    """references.jsonl from the Kimi-format JSONL files the transcriber reads; returns the splits
    and the clips of each."""
    lines = []
    splits = []
    clips: dict[str, int] = {}
    for split, path in _pairs(transcribe, "--jsonl"):
        splits.append(split)
        table, _ = read_id_text(path)  # Kimi format: the sample's id (else its audio's stem) and the assistant text
        clips[split] = len(table)
        lines += [json.dumps({"split": split, "id": i, "reference": r}, ensure_ascii=False) + "\n" for i, r in table.items()]
    atomic_write_text(output / "references.jsonl", "".join(lines))
    return splits, clips


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
    splits, clips = write_references(args.output, transcribe)
    models = _pairs(transcribe, "--model")
    # The plan goes down before transcription: every reader can then tell a model that has not
    # (or never will have) its predictions from one that has them all (kimi_tui.evaluate.state).
    plan = {
        "format": FORMAT,
        "models": [name for name, _ in models],
        "model_paths": dict(models),
        "model_present": {name: Path(path).exists() for name, path in models},
        "model_ids": {name: folder_identity(path) for name, path in models},
        "splits": splits,
        "clips": clips,
        "n_train_utterances": n_train,
        "created": time.time(),
    }
    atomic_write_json(args.output / "evaluation.json", plan)
    for name, path in models:
        if not plan["model_present"][name]:  # gone between the plan and now: say so, transcribe the rest
            print(f"evaluate: {name}: {path} does not exist", flush=True)
    print("evaluate: " + " ".join(transcribe[:3]) + " ...", flush=True)
    code = subprocess.call(transcribe)  # a stop (SIGINT to the group) ends here: the run says "stopped"
    atomic_write_json(args.output / "evaluation.json", {**plan, "finished": time.time(), "transcriber_exit": code})
    state = evaluation_state(args.output)
    for m in state.models:
        if m.state == "failed":
            print(f"evaluate: {m.name} failed: {m.error}", flush=True)
            events.error(f"{m.name}: {m.error}")
    unfinished = [m for m in state.models if m.state in ("partial", "pending", "running")]
    if unfinished or not any(m.state == "complete" for m in state.models):
        # Nothing to score, or models a resume can still finish: no metrics.json (the mark of the end).
        message = f"transcription failed with exit code {code}" if code else "transcription left models unfinished"
        print(f"evaluate: {message}: {state.missing()}", flush=True)
        events.error(f"{message}: {state.missing()}")
        return code or 1
    normaliser = Normaliser(NormaliserOptions(numbers=args.numbers, fillers=args.fillers, mixed=args.mixed))
    report = build_report(load_evaluation(args.output, state=state), normaliser, resamples=args.resamples)
    atomic_write_json(args.output / "metrics.json", report)
    markdown = render_markdown(report)
    atomic_write_text(args.output / "report.md", markdown)
    print(markdown, flush=True)
    events.artifact("metrics", args.output / "metrics.json")
    events.artifact("report", args.output / "report.md")
    if not state.complete:
        print(f"evaluate: {state.state}: {state.missing()} (the report scores the complete models only)", flush=True)
        return code or 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
