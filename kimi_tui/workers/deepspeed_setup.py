"""The DeepSpeed configuration both engines' workers train with, and the one setup step a CPU needs.

One generator, so the whisper engine (the one that runs anywhere) exercises exactly the
ZeRO settings a Kimi-Audio run will use. No ``scheduler`` block, ever: DeepSpeed's WarmupLR
would replace the Trainer's schedule and hold the rate flat after warm-up (the official
config's trap). Standard library only: the kimi-audio worker runs under the user's interpreter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def deepspeed_config(stage: int, offload_optimizer: bool, offload_param: bool, cuda: bool = True) -> dict:
    """ "auto" values come from the Trainer. Without CUDA (a CPU run) communication overlap and
    pinned memory are off: gloo has neither."""
    zero: dict = {
        "stage": stage,
        "overlap_comm": cuda,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cuda}
    if stage == 3:
        zero.update({
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        })
        if offload_param:
            zero["offload_param"] = {"device": "cpu", "pin_memory": cuda}
    return {
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        # torch's AdamW unless the optimizer lives on the CPU (DeepSpeedCPUAdam, built on first use).
        "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                   "weight_decay": "auto", "torch_adam": not offload_optimizer}},
        "zero_optimization": zero,
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "steps_per_print": 1000000,
        "wall_clock_breakdown": False,
    }


def prepare_deepspeed(output: Path, stage: int, offload_optimizer: bool, offload_param: bool, cuda: bool,
                      is_main: bool) -> dict:
    """The config (also written to ``output/ds_config.json`` for the user to read), after making
    several CPU ranks visible to DeepSpeed: on a CPU the Trainer sets up plain torch.distributed,
    never deepspeed.comm, so DeepSpeed would count a world of 1 and refuse the batch size."""
    config = deepspeed_config(stage, offload_optimizer, offload_param, cuda)
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
        partial = output / "ds_config.json.partial"
        partial.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, output / "ds_config.json")
    if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    return config


def has_optimizer_state(checkpoint: Path) -> bool:
    """The Trainer's optimizer.pt, or DeepSpeed's global_stepN/ (which holds it instead)."""
    return (checkpoint / "optimizer.pt").exists() or any(
        p.is_dir() and any(p.glob("*optim_states.pt")) for p in checkpoint.glob("global_step*")
    )
