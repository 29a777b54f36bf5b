"""The whisper worker's train command: the Hugging Face Trainer over extract's features.

Apart from the inference path because everything here is training's own: DeepSpeed, the
loss guards, resume from the last complete checkpoint, a full disk, the flat-loss warning.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

from kimi_tui.events import EventWriter
from kimi_tui.workers.deepspeed_setup import prepare_deepspeed
from kimi_tui.workers.disk_full import handle_disk_full, is_disk_full
from kimi_tui.workers.runtime import WorkerError, complete_checkpoints, say
from kimi_tui.workers.trainer_events import trainer_events_callback
from kimi_tui.workers.training_guards import guard_final_model, training_guard
from kimi_tui.workers.whisper_data import load_features
from kimi_tui.workers.whisper_model import (
    count_parameters, label_ids, load_model, load_support, resolve_device, save_tokenizer, write_meta,
)


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
    """The shared training events (trainer_events.trainer_events_callback), with this engine's log lines;
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
