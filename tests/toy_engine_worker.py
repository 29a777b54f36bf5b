"""The toy engine's stages (tests/toy_engine.py): each a few lines of real file work.

Usage: python toy_engine_worker.py STAGE [options]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def rows(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def save_model(folder: Path, memory: dict, step: int | None = None) -> None:
    """config.json, the weights file kimi_tui.checkpoints looks for and, for a checkpoint, its trainer state."""
    write_json(folder / "config.json", {"model_type": "toy"})
    write_json(folder / "memory.json", memory)
    (folder / "model.safetensors").write_bytes(json.dumps(memory).encode())
    if step is not None:
        write_json(folder / "trainer_state.json", {"global_step": step,
                                                  "log_history": [{"step": step, "loss": 1.0 / step}]})


def main(argv: list[str]) -> int:
    stage = argv[0]
    p = argparse.ArgumentParser(prog=f"toy_engine_worker {stage}")
    for flag in ("--train", "--train-out", "--test", "--test-out", "--output", "--input", "--steps"):
        p.add_argument(flag)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--jsonl", action="append", default=[])
    args = p.parse_args(argv[1:])
    if stage == "prepare":
        for source, target in ((args.train, args.train_out), (args.test, args.test_out)):
            if source:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    elif stage == "extract":
        write_json(Path(args.output) / "clips.json", {"train": len(rows(args.train))})
    elif stage == "convert":
        save_model(Path(args.output), {})
    elif stage == "train":
        memory = {str(r["id"]): r["text"] for r in rows(args.train)}
        out = Path(args.output)
        for step in map(int, args.steps.split(",")):
            save_model(out / f"checkpoint-{step}", memory, step)
            print(f"toy: saved checkpoint-{step}", flush=True)
        save_model(out / "final", memory)
    elif stage == "export":
        shutil.copytree(args.input, args.output)
    elif stage == "transcribe":
        splits = [pair.split("=", 1) for pair in args.jsonl]
        for name, folder in (pair.split("=", 1) for pair in args.model):
            memory = json.loads((Path(folder) / "memory.json").read_text(encoding="utf-8"))
            target = Path(args.output) / name
            target.mkdir(parents=True, exist_ok=True)
            with open(target / "predictions.jsonl", "w", encoding="utf-8") as fh:
                for split, path in splits:
                    for r in rows(path):
                        fh.write(json.dumps({"model": name, "split": split, "id": str(r["id"]), "reference": r["text"],
                                             "hypothesis": memory.get(str(r["id"]), "")}, ensure_ascii=False) + "\n")
            write_json(target / "status.json", {"state": "complete"})
    else:
        print(f"toy: unknown stage {stage}", file=sys.stderr)
        return 2
    print(f"toy: {stage} done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
