"""The whisper worker's input side: Kimi JSONL samples, decoded audio and the extract command.

Convert, train and transcribe all read samples and clips, and none of that needs a model, so it
lives apart from the model code. A sample's id, clip and reference follow runtime.inspect_sample,
the rule prepare and the scorer read JSONL by; a clip is checked against what prepare recorded,
so a file truncated since is named instead of trained on as silence.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from kimi_tui.data.fingerprints import AudioChangedError, RecordedAudio
from kimi_tui.events import EventWriter
from kimi_tui.workers.runtime import WorkerError, inspect_sample, numbered_jsonl_samples, say


SAMPLING_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400
MAX_CHUNK_SECONDS = 30
FEATURE_EXTRACTOR_DIR = "feature_extractor"
FEATURES_FORMAT = 1


def read_kimi_jsonl(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Samples of a Kimi-Audio JSONL file as dicts with id, audio (absolute path), text.

    The id, audio and reference follow runtime.inspect_sample (the rule prepare and the scorer
    use): the first audio message is the clip, the last assistant text message the reference
    ("" when there is none). A relative audio path is resolved against the JSONL file's folder.
    """
    jsonl = Path(path)
    if not jsonl.is_file():
        raise WorkerError(f"JSONL file not found: {jsonl}")
    samples: list[dict[str, str]] = []
    seen: set[str] = set()
    for lineno, record in numbered_jsonl_samples(jsonl):
        shape = inspect_sample(record)
        where = f"{jsonl}:{lineno}"
        if not shape.audios:
            raise WorkerError(f"{where}: no audio message in the conversation")
        audio_path = Path(shape.audios[0])
        if not audio_path.is_absolute():
            audio_path = (jsonl.parent / audio_path).resolve()
        if not audio_path.is_file():
            raise WorkerError(f"{where}: audio file not found: {audio_path}")
        sample_id = shape.key or audio_path.stem
        if sample_id in seen:
            raise WorkerError(f"{where}: duplicate id {sample_id!r}")
        seen.add(sample_id)
        samples.append({"id": sample_id, "audio": str(audio_path), "text": (shape.transcript or "").strip()})
    if not samples:
        raise WorkerError(f"{jsonl}: no samples")
    return samples


def load_recorded_audio(path: str, recorded: RecordedAudio) -> Any:
    """A clip as prepare recorded it: one truncated or replaced since (a 100-byte WAV decodes to a
    silent 0.00 s clip) stops the stage naming the file, instead of training on silence."""
    audio = load_audio(path)
    try:
        recorded.check_decoded(path, len(audio), SAMPLING_RATE)
    except AudioChangedError as exc:
        raise WorkerError(str(exc)) from None
    return audio


def load_audio(path: str) -> Any:
    """Mono float32 numpy array at 16 kHz (soundfile + torchaudio resampling)."""
    import numpy as np
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types
        raise WorkerError(f"cannot read audio {path}: {exc}") from None
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != SAMPLING_RATE:
        import torch
        import torchaudio.functional as AF

        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), rate, SAMPLING_RATE).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_seconds(path: str) -> float:
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception as exc:
        raise WorkerError(f"cannot read audio {path}: {exc}") from None
    return info.frames / float(info.samplerate)


def has_feature_extractor(folder: Path) -> bool:
    return (folder / "preprocessor_config.json").is_file()


def make_tiny_feature_extractor(chunk_length: int):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=80,
        sampling_rate=SAMPLING_RATE,
        hop_length=HOP_LENGTH,
        chunk_length=chunk_length,
        n_fft=N_FFT,
        padding_value=0.0,
        return_attention_mask=False,
    )


def tiny_chunk_length(longest_seconds: float) -> int:
    return int(min(MAX_CHUNK_SECONDS, math.ceil(longest_seconds) + 1))


def cmd_extract(args: argparse.Namespace, events: EventWriter) -> None:
    events.emit("stage", name="extract")
    splits = {"train": read_kimi_jsonl(args.train_jsonl)}
    if args.test_jsonl:
        splits["test"] = read_kimi_jsonl(args.test_jsonl)

    import torch
    from transformers import WhisperFeatureExtractor

    durations = {name: [audio_seconds(s["audio"]) for s in samples] for name, samples in splits.items()}

    if args.model == "tiny":
        longest = max(durations["train"])
        chunk = tiny_chunk_length(longest)
        fe = make_tiny_feature_extractor(chunk)
        say(f"tiny feature extractor: 80 mel bins, chunk {chunk} s (longest training clip {longest:.2f} s)")
    else:
        model_dir = Path(args.model)
        if not has_feature_extractor(model_dir):
            raise WorkerError(f"--model {args.model}: not 'tiny' and no preprocessor_config.json there")
        fe = WhisperFeatureExtractor.from_pretrained(str(model_dir))
        say(f"feature extractor of {model_dir}: {fe.feature_size} mel bins, chunk {fe.chunk_length} s")

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(s) for s in splits.values())
    done = 0
    events.progress(0, total)
    started = time.time()
    recorded = RecordedAudio.beside(args.train_jsonl)  # prepare writes both splits' record there
    for name, samples in splits.items():
        features: dict[str, Any] = {}
        truncated = 0
        for sample, seconds in zip(samples, durations[name]):
            audio = load_recorded_audio(sample["audio"], recorded)
            if len(audio) > fe.n_samples:
                truncated += 1
            mel = fe(audio, sampling_rate=SAMPLING_RATE, return_tensors="np")["input_features"][0]
            features[sample["id"]] = torch.from_numpy(mel).to(torch.float16)
            done += 1
            events.progress(done, total, split=name)
            say(f"[{done}/{total}] {name} {sample['id']} {seconds:.2f} s -> {tuple(mel.shape)}")
        if truncated:
            message = f"{truncated} {name} clip(s) longer than {fe.chunk_length} s were truncated"
            say("warning: " + message)
            events.note(message)
        payload = {
            "format": FEATURES_FORMAT,
            "ids": [s["id"] for s in samples],
            "texts": [s["text"] for s in samples],
            "audio": [s["audio"] for s in samples],
            "durations": durations[name],
            "features": features,
            "n_mels": int(fe.feature_size),
            "chunk_length": int(fe.chunk_length),
            "sampling_rate": SAMPLING_RATE,
        }
        path = out / f"{name}.pt"
        torch.save(payload, path)
        events.artifact("features", path, split=name, count=len(samples))
        say(f"saved {len(samples)} {name} features to {path}")
    fe_dir = out / FEATURE_EXTRACTOR_DIR
    fe.save_pretrained(str(fe_dir))
    (out / "features.json").write_text(
        json.dumps(
            {
                "model": args.model,
                "n_mels": int(fe.feature_size),
                "chunk_length": int(fe.chunk_length),
                "splits": {name: len(s) for name, s in splits.items()},
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    events.artifact("feature_extractor", fe_dir)
    say(f"extract done: {total} utterances in {time.time() - started:.1f} s -> {out}")


def load_features(features_dir: Path, split: str) -> dict[str, Any]:
    import torch

    path = features_dir / f"{split}.pt"
    if not path.is_file():
        raise WorkerError(f"no {split} features: {path} (run extract first)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FEATURES_FORMAT:
        raise WorkerError(f"{path}: not a features file written by this worker")
    return payload


def load_features_extractor(features_dir: Path):
    from transformers import WhisperFeatureExtractor

    fe_dir = features_dir / FEATURE_EXTRACTOR_DIR
    if not has_feature_extractor(fe_dir):
        raise WorkerError(f"no feature extractor in {fe_dir} (run extract first)")
    return WhisperFeatureExtractor.from_pretrained(str(fe_dir))
