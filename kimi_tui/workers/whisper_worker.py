"""Worker of the ``whisper`` engine: extract, convert, train, export, transcribe.

Run as ``python -m kimi_tui.workers.whisper_worker SUBCOMMAND ...`` in a stage's
subprocess; this module is its command line, the commands live along their seams in
``whisper_data`` (JSONL, audio, extract), ``whisper_model`` (model folders, tokenizer,
convert, export), ``whisper_train`` and ``whisper_transcribe``. They are the only
modules of the whisper engine that import torch and transformers, and they import
only standard-library parts of kimi_tui: the headless core and the TUI must stay
light and must never be slowed down or broken by the ML stack, so everything heavy
happens in this separate process. Heavy imports are done inside the subcommands, so
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
import os

from kimi_tui.events import EventWriter
from kimi_tui.workers.cpu_threads import limit_cpu_threads
from kimi_tui.workers.gpus import end_process_group, exit_rank, one_gpu_unless_torchrun
from kimi_tui.workers.runtime import WorkerError, run_command, say
from kimi_tui.workers.whisper_data import (  # noqa: F401  (some re-exported)
    cmd_extract, has_feature_extractor, read_kimi_jsonl,
)
from kimi_tui.workers.whisper_model import (  # noqa: F401  (some re-exported)
    TINY_D_MODEL, TINY_HEADS, TINY_LAYERS, TINY_MAX_TARGET_POSITIONS, build_char_tokenizer, cmd_convert,
    cmd_export, has_tokenizer,
)
from kimi_tui.workers.whisper_train import (  # noqa: F401  (some re-exported)
    cmd_train, flat_loss_note, last_complete_checkpoint, make_callback,
)
from kimi_tui.workers.whisper_transcribe import cmd_transcribe


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
