"""The DeepSpeed configuration both engines' workers train with, and the one setup step a CPU needs.

One generator, so the whisper engine (the one that runs anywhere) exercises exactly the
ZeRO settings a Kimi-Audio run will use. No ``scheduler`` block, ever: DeepSpeed's WarmupLR
would replace the Trainer's schedule and hold the rate flat after warm-up (the official
config's trap). Standard library only: the kimi-audio worker runs under the user's interpreter.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

#: How long each op's first build takes (2-core CPU: cpu_adam ~1-2 min, the shared-memory collectives ~6 s).
BUILD_TIME = {"cpu_adam": "about a minute", "fused_adam": "about a minute", "deepspeed_shm_comm": "a few seconds"}


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


def ops_it_builds(offload_optimizer: bool) -> list[str]:
    """DeepSpeed's op builders (class names) a run of :func:`deepspeed_config` loads: CPU Adam for an
    offloaded optimizer, and the shared-memory collectives its comm backend loads on the CPU accelerator
    (other accelerators have no such builder). No FusedAdam: the config asks for torch's AdamW whenever
    the optimizer stays on the GPU."""
    return (["CPUAdamBuilder"] if offload_optimizer else []) + ["ShareMemCommBuilder"]


def torch_extensions_root() -> Path:
    """Where torch's JIT loader keeps built ops (torch.utils.cpp_extension._get_build_directory's rule):
    TORCH_EXTENSIONS_DIR, else the user cache's torch_extensions/py<version>_<cuda, rocm or cpu>."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return Path(os.environ["TORCH_EXTENSIONS_DIR"])
    import torch
    from torch.utils.cpp_extension import get_default_build_root

    if torch.version.hip is not None:
        accelerator = "rocm" + torch.version.hip.replace(".", "")
    elif torch.version.cuda is not None:
        accelerator = "cu" + torch.version.cuda.replace(".", "")
    else:
        accelerator = "cpu"
    python = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    return Path(get_default_build_root()) / f"{python}_{accelerator}"


def unbuilt_ops(builder_names: list[str]) -> list[tuple[str, Path]]:
    """(op name, build folder) of each op DeepSpeed would compile now: not pre-built into this deepspeed
    install (its installed_ops, as OpBuilder.load decides) and not yet in torch's extensions cache."""
    from deepspeed.accelerator import get_accelerator
    from deepspeed.git_version_info import accelerator_name, installed_ops

    accelerator = get_accelerator()
    out = []
    for class_name in builder_names:
        builder = accelerator.create_op_builder(class_name)
        if builder is None or not builder.is_compatible(verbose=False):
            continue  # DeepSpeed skips (or refuses) an op this machine cannot build
        if installed_ops.get(builder.name, False) and accelerator_name == accelerator._name:
            continue  # pre-built (DS_BUILD_OPS=1 install): imported, never compiled
        folder = torch_extensions_root() / builder.name
        if not (folder / f"{builder.name}.so").is_file():
            out.append((builder.name, folder))
    return out


def announce_op_builds(offload_optimizer: bool) -> list[str]:
    """Log lines for the ops DeepSpeed compiles on this run's first use, printed before it starts: the
    build is silent for a minute or more and the stage would look hung."""
    lines = [f"DeepSpeed builds its {name} op on first use ({BUILD_TIME.get(name, 'a minute or more')}, once per "
             f"machine; cached in {folder}): the log is quiet until it is done"
             for name, folder in unbuilt_ops(ops_it_builds(offload_optimizer))]
    for line in lines:
        print(line, flush=True)
    return lines


def prepare_deepspeed(output: Path, stage: int, offload_optimizer: bool, offload_param: bool, cuda: bool,
                      is_main: bool) -> dict:
    """The config (also written to ``output/ds_config.json`` for the user to read), after making
    several CPU ranks visible to DeepSpeed: on a CPU the Trainer sets up plain torch.distributed,
    never deepspeed.comm, so DeepSpeed would count a world of 1 and refuse the batch size. Ops that
    DeepSpeed will compile first are announced (rank 0)."""
    config = deepspeed_config(stage, offload_optimizer, offload_param, cuda)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
        partial = output / "ds_config.json.partial"
        partial.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, output / "ds_config.json")
        announce_op_builds(offload_optimizer)
    if not cuda and world_size > 1:
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    return config
