"""Whisper model folders as the whisper engine leaves them, and the commands that write them.

A folder is self-contained (weights, tokenizer, feature extractor, kimi_tui_model.json) so
export and transcribe take any checkpoint; the rules for what such a folder holds, where a
checkpoint's missing tokenizer comes from and how text is tokenised are kept here once for
convert, train, export and transcribe.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from typing import Any

from kimi_tui.events import EventWriter
from kimi_tui.workers.runtime import WorkerError, say
from kimi_tui.workers.whisper_data import has_feature_extractor, load_features_extractor, read_kimi_jsonl


META_FILE = "kimi_tui_model.json"

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
