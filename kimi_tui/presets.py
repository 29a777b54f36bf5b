"""Named starting points for the training settings, as partial configs.

Why presets: the right schedule depends mostly on how much data there is and
whether the model starts from scratch or from a pretrained checkpoint, and the
wrong one fails quietly (nothing saved, over-fitting, no learning). A preset
writes the few settings that matter for one situation we have measured or
documented, and leaves everything else (data paths, model folder, device) alone.

Presets are applied through :func:`kimi_tui.config.set_field`, so each value is
validated exactly like one typed into the form, and applying one never saves:
the Config panel shows the result and the user saves it (or not).
"""

from __future__ import annotations

from typing import Any

from kimi_tui.config import ProjectConfig, set_field
from kimi_tui.errors import ConfigError
from kimi_tui.project import TINY_SCHEDULE

__all__ = ["PRESETS", "apply_preset", "preset_changes"]

#: name -> (what it is for, {"table.key": value})
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny-cpu-sample": (
        "The bundled sample's schedule: a tiny model built from the transcripts memorises the nine "
        "sample clips to 0% training CER in about 20 s on a 2-core CPU. For trying the pipeline.",
        {
            "engine.name": "whisper",  # the tiny model is the whisper engine's; kimi-audio trains in bf16 only
            "engine.model": "tiny",
            **{f"train.{key}": value for key, value in TINY_SCHEDULE.items()},
            "train.save_steps": "auto",
            "train.eval_ratio": 0.0,
            "train.num_gpus": 1,
            "train.bf16": False,
        },
    ),
    "seed-small-data": (
        "The seed report's small-data table (9 clips): no hold-out, 10 epochs, accumulation 4, "
        "lr 3e-6, weight decay 0.01, warm-up 0.1, a checkpoint every 5 steps, batch 1, one GPU "
        "(8 GPUs hung in NCCL on 9 samples).",
        {
            "train.eval_ratio": 0.0,
            "train.epochs": 10,
            "train.gradient_accumulation_steps": 4,
            "train.learning_rate": 3e-6,
            "train.weight_decay": 0.01,
            "train.warmup_ratio": 0.1,
            "train.save_steps": 5,
            "train.batch_size": 1,
            "train.num_gpus": 1,
        },
    ),
    "kimi-audio-lora-1gpu": (
        "Kimi-Audio on one 80 GB GPU: LoRA r=8 on the language model's attention (base frozen in bf16), "
        "kimi-tui's batching: 8 clips per forward x accumulation 1 (the optimizer step of the official 1 x 8), "
        "Whisper features once per clip, lr 1e-4, bf16, no DeepSpeed. Measured at full size on an H200: "
        "batched LoRA 25.8x the official micro-batch 1 (batch 48: 96.6 against 3.75 samples/s, 71 GiB), "
        "without the ~280 GB of host RAM of the seed's offload fix.",
        {
            "engine.name": "kimi-audio",
            "kimi_audio.method": "lora",
            "kimi_audio.lora_rank": 8,
            "kimi_audio.batching": "kimi-tui",
            "train.batch_size": 8,
            "train.gradient_accumulation_steps": 1,
            "train.learning_rate": 1e-4,
            "train.warmup_ratio": 0.05,
            "train.lr_scheduler": "cosine",
            "train.bf16": True,
            "train.num_gpus": 1,
            "train.save_steps": "auto",
            "deepspeed.enabled": False,
            "data.max_duration_s": 30.0,
        },
    ),
    "kimi-audio-zero3-8gpu": (
        "Full fine-tuning of Kimi-Audio on 8 x 80 GB GPUs: DeepSpeed ZeRO-3 without offload (~26 GB of model "
        "states per GPU), micro batch 1 x accumulation 2, lr 1e-5, bf16. Needs hundreds of samples per GPU; "
        "each checkpoint carries ~125 GB of optimizer state, so keep at most 3.",
        {
            "engine.name": "kimi-audio",
            "kimi_audio.method": "full",
            "train.batch_size": 1,
            "train.gradient_accumulation_steps": 2,
            "train.learning_rate": 1e-5,
            "train.warmup_ratio": 0.03,
            "train.lr_scheduler": "cosine",
            "train.bf16": True,
            "train.num_gpus": 8,
            "train.save_steps": "auto",
            "train.save_total_limit": 3,
            "deepspeed.enabled": True,
            "deepspeed.stage": 3,
            "deepspeed.offload_optimizer": False,
            "deepspeed.offload_param": False,
            "data.max_duration_s": 30.0,
        },
    ),
    "whisper-small-finetune": (
        "Fine-tuning a pretrained Whisper (e.g. whisper-small) on hundreds of clips or more: lr 1e-5, "
        "3 epochs, batch 8, warm-up 0.1, checkpoints spread over the run. Set engine.model to the "
        "local model folder.",
        {
            "train.learning_rate": 1e-5,
            "train.epochs": 3,
            "train.batch_size": 8,
            "train.gradient_accumulation_steps": 1,
            "train.warmup_ratio": 0.1,
            "train.lr_scheduler": "linear",
            "train.save_steps": "auto",
        },
    ),
}


def _get(config: ProjectConfig, dotted: str) -> Any:
    table, key = dotted.split(".", 1)
    return getattr(getattr(config, table), key)


def _preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f": did you mean {close[0]!r}?" if close else f"; presets are {', '.join(PRESETS)}"
        raise ConfigError(f"unknown preset {name!r}{hint}")
    return PRESETS[name][1]


def apply_preset(config: ProjectConfig, name: str) -> ProjectConfig:
    """A copy of ``config`` with the preset's settings; raises ConfigError for an unknown name."""
    for dotted, value in _preset(name).items():
        config = set_field(config, dotted, value, source=f"preset {name}")
    return config


def preset_changes(config: ProjectConfig, name: str) -> list[tuple[str, Any, Any]]:
    """(table.key, current, preset) for every setting the preset would change."""
    changes = []
    for dotted, value in _preset(name).items():
        current = _get(config, dotted)
        if current != value:
            changes.append((dotted, current, value))
    return changes
