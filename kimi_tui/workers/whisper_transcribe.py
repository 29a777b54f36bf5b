"""The whisper worker's transcribe command: greedy decoding of JSONL splits, one model at a time.

Several GPUs run as child processes of the command line module (``python -m
kimi_tui.workers.whisper_worker ... --shard I/N``), so a shard's command line is the one the
engine plans plus ``--shard``; this process merges their predictions in input order.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kimi_tui.data.fingerprints import RecordedAudio
from kimi_tui.events import EventWriter
from kimi_tui.workers.gpus import shard_env
from kimi_tui.workers.runtime import WorkerError, parse_shard, say, write_model_status
from kimi_tui.workers.whisper_data import SAMPLING_RATE, load_recorded_audio, read_kimi_jsonl
from kimi_tui.workers.whisper_model import clean_hypothesis, load_model, load_support, resolve_device


def parse_pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise WorkerError(f"{option} {value!r}: expected NAME=PATH")
        if "/" in name or name in (".", ".."):
            raise WorkerError(f"{option} {value!r}: NAME must be a plain folder name")
        if name in (n for n, _ in pairs):
            raise WorkerError(f"{option}: name {name!r} given twice")
        pairs.append((name, path))
    return pairs


def greedy_generate(model, features, kind: str, max_new_tokens: int, language: str | None):
    """Token ids of a greedy decode of a batch of log-mel features."""
    import torch
    from transformers import GenerationMixin

    with torch.inference_mode():
        if kind == "tiny":
            # Whisper's own generate() wants language/task tokens a char vocab lacks.
            limit = int(model.config.max_target_positions) - 1
            return GenerationMixin.generate(
                model,
                input_features=features,
                max_new_tokens=min(max_new_tokens, limit),
                do_sample=False,
                num_beams=1,
                decoder_start_token_id=model.config.decoder_start_token_id,
                eos_token_id=model.config.eos_token_id,
                pad_token_id=model.config.pad_token_id,
            )
        limit = int(model.config.max_target_positions) - 8  # prompt tokens come first
        return model.generate(
            input_features=features,
            language=language,
            task="transcribe",
            max_new_tokens=min(max_new_tokens, limit),
            do_sample=False,
            num_beams=1,
        )


def model_problem(name: str, path: str) -> str | None:
    """Why a model folder cannot be transcribed before loading it, or None."""
    folder = Path(path)
    if not folder.exists():
        return f"{folder} does not exist (deleted after the evaluation was planned?)"
    if not (folder / "config.json").is_file():
        return f"--model {name}={path}: not a model folder (no config.json)"
    return None


def transcribe_sharded(args: argparse.Namespace, events: EventWriter, models, data) -> None:
    """One child per GPU (CUDA_VISIBLE_DEVICES=i, every N-th clip), then the shards merged in input order.

    The children share this process group (a stop reaches them) and write no events: this
    process reports the progress of all of them from their prediction files. A model a child
    could not transcribe is left out of the merge (its shard status says why); the others are merged."""
    import subprocess

    out = Path(args.output)
    argv = [a for a in sys.argv[1:]]
    children = []
    for shard in range(args.gpus):
        env = shard_env(shard)
        env.pop("KIMI_TUI_EVENTS", None)
        cmd = [sys.executable, "-m", "kimi_tui.workers.whisper_worker"] + argv + ["--shard", f"{shard}/{args.gpus}"]
        children.append(subprocess.Popen(cmd, env=env))
    say(f"transcribe: {args.gpus} shards, one per GPU")
    total = len(models) * sum(len(s) for s in data.values())
    files = [out / name / f"predictions.shard-{i}-of-{args.gpus}.jsonl" for name, _ in models for i in range(args.gpus)]
    while any(child.poll() is None for child in children):
        done = sum(sum(1 for _ in open(f, encoding="utf-8")) for f in files if f.exists())
        events.progress(done, total)
        time.sleep(1.0)
    codes = [child.returncode for child in children]
    merged = 0
    for name, _ in models:
        statuses = [out / name / f"status.shard-{shard}-of-{args.gpus}.json" for shard in range(args.gpus)]
        states = []
        for path in statuses:
            try:
                states.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                states.append({})
        if not all(s.get("state") == "complete" for s in states):
            continue  # failed or cut short: the shard files and their statuses stay as the record
        rows = []
        for shard in range(args.gpus):
            part = out / name / f"predictions.shard-{shard}-of-{args.gpus}.jsonl"
            rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines() if line.strip()]
        order: dict[tuple[str, str], int] = {}
        for split, samples in data.items():
            for sample in samples:
                order[(split, sample["id"])] = len(order)
        rows.sort(key=lambda r: order.get((r["split"], r["id"]), 0))
        with open(out / name / "predictions.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        write_model_status(out / name, (0, 1), "complete", clips=len(rows))
        for shard in range(args.gpus):
            (out / name / f"predictions.shard-{shard}-of-{args.gpus}.jsonl").unlink()
            statuses[shard].unlink(missing_ok=True)
        events.artifact("predictions", out / name / "predictions.jsonl", model=name)
        merged += len(rows)
    if any(codes):
        raise WorkerError(f"transcription shards exited with {codes}: see the lines above")
    events.progress(total, total)
    say(f"transcribe done: {merged} predictions from {args.gpus} shards -> {out}")


def cmd_transcribe(args: argparse.Namespace, events: EventWriter) -> None:
    events.emit("stage", name="transcribe")
    models = parse_pairs(args.model, "--model")
    splits = parse_pairs(args.jsonl, "--jsonl")
    data = {name: read_kimi_jsonl(path) for name, path in splits}
    args.recorded = {name: RecordedAudio.beside(path) for name, path in splits}
    if args.gpus > 1 and args.shard is None:
        transcribe_sharded(args, events, models, data)
        return
    shard, shards = parse_shard(args.shard)
    if shards > 1:
        data = {name: samples[shard::shards] for name, samples in data.items()}
    device = resolve_device(args.device)
    total = len(models) * sum(len(s) for s in data.values())
    done = 0
    events.progress(0, total)
    out = Path(args.output)
    failed: list[str] = []
    for model_name, model_path in models:
        target = out / model_name
        target.mkdir(parents=True, exist_ok=True)
        name = f"predictions.shard-{shard}-of-{shards}.jsonl" if shards > 1 else "predictions.jsonl"
        n_clips = sum(len(s) for s in data.values())
        write_model_status(target, (shard, shards), "running", path=model_path, of=n_clips)
        # One model that cannot be read (its checkpoint deleted under the evaluation, a broken
        # folder) fails alone: it is recorded with its error and the next model is transcribed.
        try:
            problem = model_problem(model_name, model_path)
            if problem:
                raise WorkerError(problem)
            written = transcribe_model(args, events, model_name, Path(model_path), data, device, target / name,
                                       done, total)
        except (WorkerError, OSError, ValueError, RuntimeError) as exc:
            if not isinstance(exc, WorkerError) and not Path(model_path).exists():
                message = f"{model_path} does not exist (deleted during the transcription?): {type(exc).__name__}: {exc}"
            else:
                message = str(exc) if isinstance(exc, WorkerError) else f"{type(exc).__name__}: {exc}"
            write_model_status(target, (shard, shards), "failed", path=model_path, error=message)
            print(f"error: {model_name}: {message}", file=sys.stderr, flush=True)
            events.error(f"transcribe {model_name}: {message}")
            failed.append(model_name)
            done += n_clips  # the progress bar moves on to the next model
            continue
        done += written
        write_model_status(target, (shard, shards), "complete", path=model_path, clips=written, of=n_clips)
        events.artifact("predictions", target / "predictions.jsonl", model=model_name)
    if failed:
        raise WorkerError(f"{', '.join(failed)} could not be transcribed (see the lines above); the other models were")
    say(f"transcribe done: {done} predictions -> {out}")


def transcribe_model(args, events: EventWriter, model_name: str, model_dir: Path, data, device: str,
                     predictions: Path, done: int, total: int) -> int:
    """Greedy decoding of every clip with one model into `predictions`; returns the clips written."""
    import torch

    model = load_model(model_dir)
    tokenizer, fe, meta = load_support(model_dir, args.base)
    kind = meta["kind"]
    language = args.language or meta.get("language") or None
    if device == "cpu" or model.dtype not in (torch.float16, torch.bfloat16):
        model = model.float()
    model = model.to(device).eval()
    expected_frames = int(model.config.max_source_positions) * 2
    if fe.nb_max_frames != expected_frames:
        raise WorkerError(
            f"{model_dir}: feature extractor gives {fe.nb_max_frames} frames, the model expects {expected_frames}"
        )
    say(f"transcribe with {model_name} ({kind}, {model_dir}) on {device}")
    started_model = time.time()
    written = 0
    with open(predictions, "w", encoding="utf-8") as fh:
        for split_name, samples in data.items():
            for start in range(0, len(samples), args.batch_size):
                batch = samples[start : start + args.batch_size]
                audios = [load_recorded_audio(s["audio"], args.recorded[split_name]) for s in batch]
                began = time.time()
                features = fe(audios, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_features"]
                features = features.to(device=device, dtype=model.dtype)
                ids = greedy_generate(model, features, kind, args.max_new_tokens, language)
                texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
                per_item = (time.time() - began) / len(batch)
                for sample, audio, text in zip(batch, audios, texts):
                    hypothesis = clean_hypothesis(text)
                    record = {
                        "model": model_name,
                        "split": split_name,
                        "id": sample["id"],
                        "audio": sample["audio"],
                        "reference": sample["text"],
                        "hypothesis": hypothesis,
                        "seconds": round(per_item, 4),
                        "audio_seconds": round(len(audio) / SAMPLING_RATE, 3),
                    }
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    fh.flush()
                    written += 1
                    events.progress(done + written, total, model=model_name, split=split_name)
                    say(f"[{done + written}/{total}] {model_name} {split_name} {sample['id']}: {hypothesis}")
    say(f"{model_name}: done in {time.time() - started_model:.1f} s -> {predictions}")
    del model
    return written
