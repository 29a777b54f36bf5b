"""Worker of the ``whisper`` engine: extract, convert, train, export, transcribe.

Run as ``python -m kimi_tui.workers.whisper_worker SUBCOMMAND ...`` in a stage's
subprocess. This is the only module of kimi-tui that imports torch and
transformers, and it imports nothing from kimi_tui except ``kimi_tui.events``
(standard library only): the headless core and the TUI must stay light and must
never be slowed down or broken by the ML stack, so everything heavy happens in
this separate process. Heavy imports are done inside the subcommands, so
``--help`` and argument checks answer at once.

Subcommands (each prints human-readable lines on stdout, which goes to the run's
log, and appends events to ``$KIMI_TUI_EVENTS``):

``extract``     log-mel features of every utterance (``train.pt``/``test.pt``)
                plus the feature extractor used.
``convert``     the "base" model folder: a tiny randomly initialised Whisper
                over a character vocabulary built from the training transcripts
                (``--model tiny``) or a copy of a pretrained Whisper folder.
``train``       Hugging Face ``Trainer`` over the precomputed features; leaves
                ``checkpoint-N/`` folders and ``final/``.
``export``      a self-contained inference folder from a checkpoint or final.
``transcribe``  greedy decoding of JSONL splits with one or more models, one
                ``NAME/predictions.jsonl`` per model.

Exit status: 0 on success, 2 with a one-line ``error:`` message on bad input,
1 on an unexpected failure (traceback in the log).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from kimi_tui.data.fingerprints import AudioChangedError, RecordedAudio
from kimi_tui.events import EventWriter
from kimi_tui.workers.deepspeed_setup import prepare_deepspeed
from kimi_tui.workers.cpu_threads import limit_cpu_threads
from kimi_tui.workers.disk_full import handle_disk_full, is_disk_full
from kimi_tui.workers.gpus import end_process_group, exit_rank, one_gpu_unless_torchrun, shard_env
from kimi_tui.workers.runtime import (
    WorkerError, complete_checkpoints, inspect_sample, numbered_jsonl_samples, parse_shard, run_command, say,
    trainer_events_callback, write_model_status,
)
from kimi_tui.workers.training_guards import guard_final_model, training_guard

SAMPLING_RATE = 16000
HOP_LENGTH = 160
N_FFT = 400
MAX_CHUNK_SECONDS = 30
META_FILE = "kimi_tui_model.json"
FEATURE_EXTRACTOR_DIR = "feature_extractor"
FEATURES_FORMAT = 1

# Character vocabulary of the tiny model: these four come first, in this order.
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN]

# Recommended tiny-model defaults, measured on the 9 bundled training clips on a
# 2-core CPU: with the train defaults below (200 epochs of one batch of 9,
# lr 3e-3, linear, warmup 0.05) it memorises them (0% CER, seeds 1-4) in ~25 s.
TINY_D_MODEL = 128
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_MAX_TARGET_POSITIONS = 128

SPECIAL_TAG_RE = re.compile(r"<\|[^|>]*\|>")


# ---------------------------------------------------------------------------
# Input data
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Model folders
# ---------------------------------------------------------------------------


def read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build_char_tokenizer(texts: list[str]):
    """A transformers fast tokenizer with one token per distinct character of ``texts``.

    ids: 0 <pad>, 1 <s> (decoder start), 2 </s>, 3 <unk>, then the characters in
    sorted order. Encoding adds no special tokens; decoding joins characters
    without spaces. Round-trips through save_pretrained/AutoTokenizer offline.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted({ch for text in texts for ch in text} - set(SPECIAL_TOKENS))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        clean_up_tokenization_spaces=False,
        model_max_length=TINY_MAX_TARGET_POSITIONS,
    )


def save_tokenizer(tokenizer, folder: Path, kind: str) -> None:
    tokenizer.save_pretrained(str(folder))
    if kind != "tiny":
        return
    # transformers 5 writes "TokenizersBackend", which 4.x cannot load;
    # "PreTrainedTokenizerFast" loads in both.
    config_path = folder / "tokenizer_config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if config.get("tokenizer_class") != "PreTrainedTokenizerFast":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() and (
        (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()
    )


def has_feature_extractor(folder: Path) -> bool:
    return (folder / "preprocessor_config.json").is_file()


def support_candidates(model_dir: Path, base: str | None) -> list[Path]:
    """Folders that may hold the tokenizer/feature extractor/meta of ``model_dir``.

    The model folder itself, ``--base``, the training output's ``final/`` (for a
    checkpoint-N folder) and the base recorded in a kimi_tui_model.json.
    """
    out: list[Path] = [model_dir]
    if base:
        out.append(Path(base))
    out.append(model_dir.parent / "final")
    for folder in list(out):
        recorded = read_meta(folder).get("base")
        if recorded:
            out.append(Path(recorded))
    unique: list[Path] = []
    for folder in out:
        if folder.is_dir() and folder not in unique:
            unique.append(folder)
    return unique


def load_support(model_dir: Path, base: str | None):
    """(tokenizer, feature_extractor, meta) for a model folder, see support_candidates."""
    from transformers import AutoTokenizer, WhisperFeatureExtractor

    candidates = support_candidates(model_dir, base)
    tok_dir = next((c for c in candidates if has_tokenizer(c)), None)
    fe_dir = next((c for c in candidates if has_feature_extractor(c)), None)
    if tok_dir is None:
        raise WorkerError(f"no tokenizer in {model_dir} (pass --base BASE_DIR, the converted base model)")
    if fe_dir is None:
        raise WorkerError(f"no preprocessor_config.json in {model_dir} (pass --base BASE_DIR, the converted base model)")
    meta: dict[str, Any] = {}
    for folder in reversed(candidates):
        meta.update(read_meta(folder))
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    feature_extractor = WhisperFeatureExtractor.from_pretrained(str(fe_dir))
    if "kind" not in meta:
        meta["kind"] = "pretrained" if hasattr(tokenizer, "set_prefix_tokens") else "tiny"
    return tokenizer, feature_extractor, meta


def load_model(model_dir: Path):
    from transformers import WhisperForConditionalGeneration

    if not (model_dir / "config.json").is_file():
        raise WorkerError(f"not a model folder (no config.json): {model_dir}")
    return WhisperForConditionalGeneration.from_pretrained(str(model_dir))


def count_parameters(model) -> int:
    # Tied weights (proj_out = embed_tokens) count once.
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += int(getattr(p, "ds_numel", 0) or p.numel())  # a ZeRO-3 shard holds an empty p
    return total


def resolve_device(name: str) -> str:
    import torch

    if name == "cpu":
        return "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise WorkerError("--device cuda but no CUDA device is available")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def label_ids(tokenizer, text: str, kind: str, decoder_start_token_id: int) -> list[int]:
    """Training labels: the transcript's ids + eos (no decoder start: the model prepends it)."""
    if kind == "tiny":
        return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    # Pretrained Whisper tokenizer (prefix tokens set by the caller):
    # <|startoftranscript|><|zh|><|transcribe|><|notimestamps|> text <|endoftext|>
    ids = tokenizer(text)["input_ids"]
    if ids and ids[0] == decoder_start_token_id:
        ids = ids[1:]
    return ids


def clean_hypothesis(text: str) -> str:
    return SPECIAL_TAG_RE.sub("", text).strip()


# ---------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace, events: EventWriter) -> None:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    events.emit("stage", name="convert")
    samples = read_kimi_jsonl(args.train_jsonl)
    features_dir = Path(args.features)
    fe = load_features_extractor(features_dir)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    if args.model == "tiny":
        texts = [s["text"] for s in samples]
        if not any(texts):
            raise WorkerError(f"{args.train_jsonl}: no transcripts to build a vocabulary from")
        tokenizer = build_char_tokenizer(texts)
        vocab_size = len(tokenizer)
        longest_label = max(len(t) for t in texts) + 1
        max_target = max(TINY_MAX_TARGET_POSITIONS, 16 * math.ceil((longest_label + 1) / 16))
        frames = fe.n_samples // fe.hop_length
        if args.d_model % args.heads:
            raise WorkerError(f"--d-model {args.d_model} is not a multiple of --heads {args.heads}")
        config = WhisperConfig(
            vocab_size=vocab_size,
            num_mel_bins=int(fe.feature_size),
            d_model=args.d_model,
            encoder_layers=args.layers,
            decoder_layers=args.layers,
            encoder_attention_heads=args.heads,
            decoder_attention_heads=args.heads,
            encoder_ffn_dim=4 * args.d_model,
            decoder_ffn_dim=4 * args.d_model,
            max_source_positions=frames // 2,
            max_target_positions=max_target,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
            suppress_tokens=[],
            begin_suppress_tokens=None,
            forced_decoder_ids=None,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            apply_spec_augment=False,
            use_cache=True,
        )
        torch.manual_seed(args.seed)
        model = WhisperForConditionalGeneration(config)
        gen = model.generation_config
        gen.decoder_start_token_id = tokenizer.bos_token_id
        gen.bos_token_id = tokenizer.bos_token_id
        gen.eos_token_id = tokenizer.eos_token_id
        gen.pad_token_id = tokenizer.pad_token_id
        gen.forced_decoder_ids = None
        gen.suppress_tokens = None
        gen.begin_suppress_tokens = None
        kind = "tiny"
        say(
            f"tiny Whisper: vocab {vocab_size} ({vocab_size - len(SPECIAL_TOKENS)} characters), d_model {args.d_model}, "
            f"{args.layers}+{args.layers} layers, {args.heads} heads, {frames} input frames, "
            f"max {max_target} target tokens"
        )
    else:
        model_dir = Path(args.model)
        model = load_model(model_dir)
        from transformers import AutoTokenizer

        if not has_tokenizer(model_dir):
            raise WorkerError(f"--model {args.model}: no tokenizer files there")
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if int(fe.feature_size) != int(model.config.num_mel_bins):
            raise WorkerError(
                f"features have {fe.feature_size} mel bins but the model expects {model.config.num_mel_bins}: "
                f"run extract with --model {args.model}"
            )
        kind = "pretrained"
        vocab_size = int(model.config.vocab_size)
        say(f"pretrained Whisper from {model_dir}: vocab {vocab_size}, d_model {model.config.d_model}")

    parameters = count_parameters(model)
    model.save_pretrained(str(out))
    save_tokenizer(tokenizer, out, kind)
    fe.save_pretrained(str(out))
    meta = {
        "kind": kind,
        "vocab_size": vocab_size,
        "parameters": parameters,
        "language": args.language,
        "n_mels": int(fe.feature_size),
        "chunk_length": int(fe.chunk_length),
        "source": args.model if kind == "pretrained" else None,
        "seed": args.seed,
    }
    write_meta(out, meta)
    events.artifact("model", out, parameters=parameters, model_kind=kind)
    say(f"convert done: {kind} model with {parameters:,} parameters -> {out}")


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def build_train_dataset(payload: dict[str, Any], tokenizer, kind: str, model, language: str | None):
    import torch

    if kind != "tiny" and hasattr(tokenizer, "set_prefix_tokens"):
        tokenizer.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
    start = int(model.config.decoder_start_token_id)
    max_target = int(model.config.max_target_positions)
    items = []
    unk = 0
    for sample_id, text in zip(payload["ids"], payload["texts"]):
        labels = label_ids(tokenizer, text, kind, start)
        if len(labels) > max_target:
            raise WorkerError(f"transcript of {sample_id} is {len(labels)} tokens, more than the model's {max_target}")
        if tokenizer.unk_token_id is not None:
            unk += sum(1 for i in labels if i == tokenizer.unk_token_id)
        items.append({"input_features": payload["features"][sample_id], "labels": labels})
    if unk:
        say(f"warning: {unk} transcript character(s) are not in the vocabulary (<unk>)")

    class FeatureDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return items[index]

    return FeatureDataset()


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    features = torch.stack([item["input_features"].float() for item in batch])
    longest = max(len(item["labels"]) for item in batch)
    labels = torch.full((len(batch), longest), -100, dtype=torch.long)
    for row, item in enumerate(batch):
        labels[row, : len(item["labels"])] = torch.tensor(item["labels"], dtype=torch.long)
    return {"input_features": features, "labels": labels}


def training_arguments(**kwargs: Any):
    """TrainingArguments across transformers 4.46-5.x (warmup_ratio went away in 5)."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    ratio = kwargs.pop("warmup_ratio")
    if "warmup_ratio" in names:
        kwargs["warmup_ratio"] = ratio
    else:
        kwargs["warmup_steps"] = ratio
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in names})


def make_callback(events: EventWriter, support: dict[str, Any]):
    """The shared training events (runtime.trainer_events_callback), with this engine's log lines;
    each checkpoint folder is made self-contained (the Trainer saves the tokenizer only)."""

    def began(args, state) -> None:
        say(f"training: {state.max_steps} optimizer steps, {args.num_train_epochs:g} epochs")

    def logged(step: int, total: int, values: dict[str, Any]) -> None:
        if "loss" in values:
            say(
                f"step {step}/{total} loss {values.get('loss', float('nan')):.4f} "
                f"lr {values.get('learning_rate', 0.0):.3g} "
                f"grad_norm {float(values.get('grad_norm') or 0.0):.3g} epoch {float(values.get('epoch') or 0.0):.2f}"
            )
        elif "train_runtime" in values:
            say(f"train finished: {step} steps in {values['train_runtime']:.1f} s, "
                f"mean loss {values.get('train_loss', float('nan')):.4f}")

    def saved(folder: Path, step: int) -> None:
        if folder.is_dir():
            support["feature_extractor"].save_pretrained(str(folder))
            save_tokenizer(support["tokenizer"], folder, support["meta"]["kind"])
            write_meta(folder, {**support["meta"], "step": step})
        say(f"saved checkpoint {folder}")

    return trainer_events_callback(events, on_begin=began, on_metric=logged, on_save=saved)


def last_complete_checkpoint(output: Path) -> Path | None:
    """The highest checkpoint-N whose save finished, optimizer state included (runtime.checkpoint_complete
    with resumable=True): the Trainer's own resume_from_checkpoint=True would pick a folder cut short."""
    found = complete_checkpoints(output, resumable=True)
    return found[max(found)] if found else None


#: A training loss that fell by less than this fraction of its first logged value "did not move".
#: Why 5 %: the seed's lr 3e-6 on the tiny model went 13.47 -> 13.42 (0.4 %) and changed no
#: transcript, while a schedule that learns takes the tiny model from ~13 to below 0.1 (over 99 %),
#: and a pretrained Whisper fine-tuned on its own language falls by tens of percent; a real run
#: that falls by under 5 % is at most polishing, and worth a look at the learning rate.
FLAT_LOSS_DROP = 0.05


def flat_loss_note(losses: list[float]) -> str | None:
    """The warning for a run whose loss barely moved (first vs last logged), or None."""
    losses = [x for x in losses if math.isfinite(x)]
    if len(losses) < 2 or losses[0] <= 0:
        return None
    first, last = losses[0], losses[-1]
    drop = (first - last) / first
    if drop >= FLAT_LOSS_DROP:
        return None
    moved = f"fell by only {drop:.1%}" if drop > 0 else "did not fall"
    return (f"training loss {moved} ({first:.4g} at the first log, {last:.4g} at the last, {len(losses)} logs): "
            f"the model learned little or nothing; check train.learning_rate and train.epochs "
            f"(`python -m kimi_tui.lint` or the Config panel say what this model learns at)")


def cmd_train(args: argparse.Namespace, events: EventWriter) -> None:
    import torch
    from transformers import PrinterCallback, Trainer, set_seed

    events.emit("stage", name="train")
    base = Path(args.model)
    # Loaded before the TrainingArguments, so never inside ZeRO-3's zero.Init: transformers 5.24
    # cannot initialise Whisper's sinusoidal positions on empty shards (TypeError in sinusoids()).
    # DeepSpeed partitions the whole model when the Trainer starts; the model is small by design.
    model = load_model(base)
    tokenizer, fe, meta = load_support(base, None)
    kind = meta["kind"]
    features_dir = Path(args.features)
    payload = load_features(features_dir, "train")
    if int(payload["n_mels"]) != int(model.config.num_mel_bins):
        raise WorkerError(f"features have {payload['n_mels']} mel bins, the model expects {model.config.num_mel_bins}")
    expected_frames = int(model.config.max_source_positions) * 2
    first = next(iter(payload["features"].values()))
    if int(first.shape[-1]) != expected_frames:
        raise WorkerError(
            f"features have {first.shape[-1]} frames, the model expects {expected_frames}: "
            "extract and convert with the same --model"
        )
    if args.deepspeed and not Path(args.deepspeed).is_file():
        raise WorkerError(f"DeepSpeed config not found: {args.deepspeed}")
    device = resolve_device(args.device)
    if args.bf16 and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise WorkerError("--bf16 but this GPU does not support bfloat16")
    where = f"cuda ({torch.cuda.get_device_name(0)})" if device == "cuda" else "cpu"
    say(f"train on {where}{', bf16' if args.bf16 else ''}")

    set_seed(args.seed)
    dataset = build_train_dataset(payload, tokenizer, kind, model, meta.get("language"))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ds_config = None
    if args.zero_stage:
        ds_config = prepare_deepspeed(out, args.zero_stage, args.offload_optimizer, args.offload_param,
                                      device == "cuda", int(os.environ.get("RANK", "0")) == 0)
        say(f"DeepSpeed ZeRO-{args.zero_stage}" + (", optimizer on the CPU" if args.offload_optimizer else "")
            + (", parameters on the CPU" if args.offload_param else "") + f": {out / 'ds_config.json'}")
    resume = None
    if args.resume:
        complete = last_complete_checkpoint(out)
        if complete is not None:
            resume = str(complete)
            say(f"resuming from {complete.name}, the last complete checkpoint in {out}")
        else:
            say("--resume: no complete checkpoint in " + str(out) + ", starting from scratch")

    targs = training_arguments(
        output_dir=str(out),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler,
        logging_steps=args.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit or None,  # 0 keeps every checkpoint
        eval_strategy="no",
        report_to=[],
        seed=args.seed,
        data_seed=args.seed,
        bf16=args.bf16,
        use_cpu=device == "cpu",
        deepspeed=ds_config or args.deepspeed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        save_safetensors=True,
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and the guard), not the running mean
    )
    support = {"tokenizer": tokenizer, "feature_extractor": fe, "meta": {**meta, "base": str(base.resolve())}}
    guard = training_guard(out, resume_from=resume, say=say)  # after the events: it may set a checkpoint aside
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=dataset,
        data_collator=collate,
        processing_class=tokenizer,
        callbacks=[make_callback(events, support), guard],
    )
    # Our callback prints the log lines; the Trainer's printer would repeat them as dicts.
    trainer.remove_callback(PrinterCallback)
    say(
        f"train: {len(dataset)} utterances, batch {args.batch_size} x accumulation {args.gradient_accumulation_steps}, "
        f"lr {args.learning_rate:g} ({args.lr_scheduler}, warmup {args.warmup_ratio:g}), device {device}"
        + (", bf16" if args.bf16 else "")
    )
    started = time.time()
    final = out / "final"
    try:
        trainer.train(resume_from_checkpoint=resume)
        elapsed = time.time() - started
        guard.verdict.raise_if_tripped(WorkerError)  # stopped early: no final model
        trainer.save_model(str(final))
        guard_final_model(guard, final, WorkerError, step=trainer.state.global_step)
        if trainer.is_world_process_zero():
            save_tokenizer(tokenizer, final, kind)
            fe.save_pretrained(str(final))
            write_meta(
                final,
                {
                    **support["meta"],
                    "parameters": count_parameters(model),
                    "step": trainer.state.global_step,
                    "train_seconds": round(elapsed, 2),
                },
            )
            events.progress(trainer.state.global_step, trainer.state.max_steps, epoch=trainer.state.epoch)
            events.artifact("model", final, step=trainer.state.global_step)
    except WorkerError:
        raise
    except Exception as exc:  # torch and safetensors report a full disk as their own errors
        if is_disk_full(exc, out):
            raise WorkerError(handle_disk_full(out, exc)) from None
        raise
    say(f"train done: {trainer.state.global_step} steps in {elapsed:.1f} s -> {final}")
    if trainer.is_world_process_zero():
        flat = flat_loss_note([float(e["loss"]) for e in trainer.state.log_history if "loss" in e])
        if flat:
            say("warning: " + flat)
            events.note(flat, level="warning")


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace, events: EventWriter) -> None:
    import torch

    events.emit("stage", name="export")
    source = Path(args.input)
    out = Path(args.output)
    if out.resolve() == source.resolve():
        raise WorkerError("--output must differ from --input")
    model = load_model(source)
    tokenizer, fe, meta = load_support(source, args.base)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[args.dtype]
    model = model.to(dtype)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    save_tokenizer(tokenizer, out, meta["kind"])
    fe.save_pretrained(str(out))
    meta.update(
        {
            "vocab_size": int(model.config.vocab_size),
            "parameters": count_parameters(model),
            "dtype": args.dtype,
            "exported_from": str(source.resolve()),
        }
    )
    write_meta(out, meta)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    events.artifact("export", out, dtype=args.dtype, bytes=size)
    say(f"export done: {source} -> {out} ({args.dtype}, {size / 1e6:.1f} MB)")


# ---------------------------------------------------------------------------
# transcribe
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kimi_tui.workers.whisper_worker",
        description="Worker of the whisper engine (extract, convert, train, export, transcribe).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("extract", help="log-mel features of every utterance")
    p.add_argument("--model", required=True, help="'tiny' or a pretrained Whisper folder")
    p.add_argument("--train-jsonl", required=True)
    p.add_argument("--test-jsonl")
    p.add_argument("--output", required=True)

    p = sub.add_parser("convert", help="build the base model folder")
    p.add_argument("--model", required=True, help="'tiny' or a pretrained Whisper folder")
    p.add_argument("--train-jsonl", required=True)
    p.add_argument("--features", required=True, help="output folder of extract")
    p.add_argument("--output", required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--language", default="zh", help="transcription language (pretrained: passed to generate)")
    p.add_argument("--d-model", type=positive_int, default=TINY_D_MODEL, help="tiny only")
    p.add_argument("--layers", type=positive_int, default=TINY_LAYERS, help="tiny only: encoder and decoder layers")
    p.add_argument("--heads", type=positive_int, default=TINY_HEADS, help="tiny only")

    p = sub.add_parser("train", help="fine-tune with the Hugging Face Trainer")
    p.add_argument("--model", required=True, help="base model folder (output of convert)")
    p.add_argument("--features", required=True, help="output folder of extract")
    p.add_argument("--output", required=True)
    p.add_argument("--epochs", type=float, default=200)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--batch-size", type=positive_int, default=9)
    p.add_argument("--gradient-accumulation-steps", type=positive_int, default=1)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--lr-scheduler", default="linear")
    p.add_argument("--save-steps", type=positive_int, default=50)
    p.add_argument("--save-total-limit", type=int, default=0, help="keep at most N checkpoints; 0 keeps all")
    p.add_argument("--logging-steps", type=positive_int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--deepspeed", help="a DeepSpeed config JSON of your own (instead of --zero-stage)")
    p.add_argument("--zero-stage", type=int, choices=[0, 2, 3], default=0,
                   help="DeepSpeed ZeRO stage with kimi-tui's config (0: no DeepSpeed)")
    p.add_argument("--offload-optimizer", action="store_true", help="ZeRO: optimizer state in host RAM")
    p.add_argument("--offload-param", action="store_true", help="ZeRO-3: parameters in host RAM")
    p.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in --output")

    p = sub.add_parser("export", help="self-contained inference folder")
    p.add_argument("--input", required=True, help="checkpoint-N or final folder")
    p.add_argument("--output", required=True)
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument("--base", help="base model folder (tokenizer + feature extractor) if --input lacks them")

    p = sub.add_parser("transcribe", help="greedy decoding into NAME/predictions.jsonl")
    p.add_argument("--model", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--jsonl", action="append", required=True, metavar="SPLIT=FILE")
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--max-new-tokens", type=positive_int, default=128)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--base", help="base model folder (tokenizer + feature extractor) if a model lacks them")
    p.add_argument("--language", help="pretrained models: language (default: the model's kimi_tui_model.json)")
    p.add_argument("--gpus", type=positive_int, default=1, help="shard the clips over this many GPUs (processes)")
    p.add_argument("--shard", help=argparse.SUPPRESS)
    return parser


COMMANDS = {
    "extract": cmd_extract,
    "convert": cmd_convert,
    "train": cmd_train,
    "export": cmd_export,
    "transcribe": cmd_transcribe,
}


def quiet_libraries() -> None:
    """No tqdm bars ("Writing model shards", "Loading weights") in the run's log."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    events = EventWriter()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.command == "train":
        one_gpu_unless_torchrun()

    def body() -> None:
        try:
            threads = limit_cpu_threads()  # before torch is imported: its thread pools read the environment
        except ValueError as exc:
            raise WorkerError(str(exc)) from None
        if threads is not None and args.command == "train":
            say(f"cpu threads: {threads} (KIMI_TUI_CPU_THREADS sets another count, 0 torch's default)")
        if args.command == "train":
            for name in ("learning_rate", "epochs"):
                if getattr(args, name) <= 0:
                    raise WorkerError(f"--{name.replace('_', '-')} must be positive")
            if not 0 <= args.warmup_ratio < 1:
                raise WorkerError("--warmup-ratio must be in [0, 1)")
        quiet_libraries()
        COMMANDS[args.command](args, events)
        end_process_group()

    def failed(message: str) -> tuple[str, str]:
        return f"error: {args.command}: {message}", f"{args.command}: {message}"

    def crashed(exc: Exception) -> tuple[str, str]:
        message = f"{args.command} failed: {type(exc).__name__}: {exc}"
        return f"error: {message}", message

    return run_command(body, events, failed=failed, crashed=crashed, stopped=("", f"{args.command}: interrupted"))


if __name__ == "__main__":
    exit_rank(main())
