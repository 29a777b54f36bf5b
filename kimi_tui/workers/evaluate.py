"""The evaluate stage: run the engine's transcription, then score every model on every split.

Transcription is the engine's (a child process in this run's process group, so
a stop reaches it); scoring is kimi-tui's own, identical for every engine, so
numbers from Whisper and Kimi-Audio runs are comparable. Utterances the engine
did not transcribe count as empty hypotheses (all deletions), never dropped.

Usage: python -m kimi_tui.workers.evaluate --output DIR [--train-jsonl F] -- TRANSCRIBE_COMMAND...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from kimi_tui.evaluate import score_corpus, score_utterance
from kimi_tui.events import EventWriter
from kimi_tui.fsutil import atomic_write_json, atomic_write_text

SMALL_DATA = 100


def _references(transcribe_argv: list[str]) -> dict[str, dict[str, str]]:
    """split -> id -> reference, from the --jsonl SPLIT=FILE arguments of the transcribe command."""
    refs: dict[str, dict[str, str]] = {}
    for flag, value in zip(transcribe_argv, transcribe_argv[1:]):
        if flag != "--jsonl":
            continue
        split, _, path = value.partition("=")
        table = refs.setdefault(split, {})
        with open(path, encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                sample = json.loads(line)
                texts = [m["content"] for m in sample["conversation"] if m.get("role") == "assistant"]
                audio = [m["content"] for m in sample["conversation"] if m.get("message_type") == "audio"]
                utt_id = sample.get("id") or (Path(audio[0]).stem if audio else f"line{line_no}")
                table[utt_id] = texts[-1] if texts else ""
    return refs


def _models(transcribe_argv: list[str]) -> list[str]:
    return [v.partition("=")[0] for f, v in zip(transcribe_argv, transcribe_argv[1:]) if f == "--model"]


def _read_predictions(path: Path) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a killed transcriber
    return rows


def score_models(output: Path, models: list[str], refs: dict[str, dict[str, str]]) -> dict:
    results: dict[str, dict] = {}
    for model in models:
        preds = _read_predictions(output / model / "predictions.jsonl")
        per_split: dict[str, dict] = {}
        utterances = []
        for split, table in refs.items():
            hyps = {p["id"]: p.get("hypothesis", "") for p in preds if p.get("split") == split}
            scores = [score_utterance(i, ref, hyps.get(i)) for i, ref in table.items()]
            missing = sum(1 for i in table if i not in hyps)
            per_split[split] = score_corpus(scores, n_missing=missing)
            utterances += [dict(s.to_dict(), split=split) for s in scores]
        atomic_write_text(
            output / model / "scores.jsonl",
            "".join(json.dumps(u, ensure_ascii=False) + "\n" for u in utterances),
        )
        results[model] = per_split
    return results


def render_report(metrics: dict, n_train: int | None) -> str:
    splits = sorted({s for per in metrics["models"].values() for s in per}, key=lambda s: (s != "test", s))
    lines = [
        "# Evaluation",
        "",
        f"Normaliser: {metrics['normaliser']}. CER is pooled: (S + D + I) / N over the split; "
        "similarity = mean of max(0, 1 - CER) per utterance; missing or empty hypotheses count as all deletions.",
        "",
    ]
    header = "| model | " + " | ".join(f"{s} CER | {s} exact | {s} similarity | {s} N utts (chars)" for s in splits) + " |"
    lines += [header, "|" + "---|" * (1 + 4 * len(splits))]
    for model, per in metrics["models"].items():
        cells = []
        for s in splits:
            m = per.get(s)
            if not m:
                cells += ["-"] * 4
                continue
            cer = "-" if m["cer"] is None else f"{m['cer'] * 100:.1f}% (S{m['sub']} D{m['del']} I{m['ins']})"
            cells += [cer, f"{m['exact_match'] * 100:.0f}%", f"{m['similarity'] * 100:.1f}%", f"{m['n_utts']} ({m['n_ref_chars']})"]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines.append("")
    for note in metrics["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def notes_for(metrics: dict, n_train: int | None) -> list[str]:
    notes = []
    models = list(metrics["models"])
    trained = [m for m in models if m != "base"]
    if n_train is not None and n_train < SMALL_DATA:
        notes.append(
            f"Only {n_train} training utterances: too few to learn to transcribe new sentences. A model "
            "can memorise them (see the train CER), but expect the test CER to stay high. "
            "The seed report reached the same conclusion with nine clips: collect hundreds of hours, "
            "or at least hundreds of utterances, before reading the test CER as a measure of quality."
        )
    for model, per in metrics["models"].items():
        for split, m in per.items():
            if m.get("cer") is not None and m["cer"] > 1:
                notes.append(
                    f"{model} on {split}: CER above 100% means more errors than reference characters: "
                    f"{m['ins']} of the {m['sub'] + m['del'] + m['ins']} errors are insertions and "
                    f"{m['n_hyp_over_2x_ref']} of {m['n_utts']} hypotheses are over twice their reference's "
                    "length: the model does not stop (an untrained model never emits end-of-sentence and "
                    "runs to the max_new_tokens limit)."
                )
    if "base" in models and trained:
        last = trained[-1]
        for split in ("train", "test"):
            b = metrics["models"]["base"].get(split, {}).get("cer")
            t = metrics["models"][last].get(split, {}).get("cer")
            if b is not None and t is not None:
                notes.append(f"{split}: CER {b * 100:.1f}% for the base model -> {t * 100:.1f}% for {last}.")
    return notes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        print("usage: python -m kimi_tui.workers.evaluate --output DIR [--train-jsonl F] -- TRANSCRIBE...", file=sys.stderr)
        return 2
    split_at = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m kimi_tui.workers.evaluate")
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--train-jsonl", type=Path)
    args = parser.parse_args(argv[:split_at])
    transcribe = argv[split_at + 1 :]
    events = EventWriter()
    args.output.mkdir(parents=True, exist_ok=True)
    print("evaluate: " + " ".join(transcribe[:3]) + " ...", flush=True)
    code = subprocess.call(transcribe)
    if code != 0:
        print(f"evaluate: transcription failed with exit code {code}", flush=True)
        events.error(f"transcription failed with exit code {code}")
        return code
    refs = _references(transcribe)
    models = _models(transcribe)
    n_train = None
    if args.train_jsonl and args.train_jsonl.exists():
        with open(args.train_jsonl, encoding="utf-8") as fh:
            n_train = sum(1 for line in fh if line.strip())
    from kimi_tui.evaluate import NORMALISER_NAME, NORMALISER_VERSION

    metrics = {
        "normaliser": f"{NORMALISER_NAME} v{NORMALISER_VERSION}",
        "n_train_utterances": n_train,
        "models": score_models(args.output, models, refs),
    }
    metrics["notes"] = notes_for(metrics, n_train)
    atomic_write_json(args.output / "metrics.json", metrics)
    report = render_report(metrics, n_train)
    atomic_write_text(args.output / "report.md", report)
    print(report, flush=True)
    events.artifact("metrics", args.output / "metrics.json")
    events.artifact("report", args.output / "report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
