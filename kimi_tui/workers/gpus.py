"""Which GPUs a worker process gets, the same way in both engines' workers.

Outside torchrun the HF Trainer wraps the model in DataParallel over every visible GPU,
so "one GPU" must be made true by the environment; and a shard of N must take the
shard-th of the GPUs the user made visible, not always 0..N-1. Standard library only:
the kimi-audio worker runs under the user's own interpreter.
"""

from __future__ import annotations

import os
import sys


def _visible() -> list[str]:
    return [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]


def one_gpu_unless_torchrun() -> None:
    """train.num_gpus = 1 means one: the first of the visible GPUs (CUDA_VISIBLE_DEVICES kept as given)."""
    if "LOCAL_RANK" in os.environ:
        return
    visible = _visible()
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[0] if visible else "0"


def shard_env(shard: int) -> dict[str, str]:
    """The environment of shard ``shard``: the shard-th visible GPU (all of them when none is set)."""
    visible = _visible()
    return dict(os.environ, CUDA_VISIBLE_DEVICES=visible[shard % len(visible)] if visible else str(shard))


def end_process_group() -> None:
    """Leave torchrun's process group before the interpreter exits.

    A rank that exits with its gloo/NCCL group still alive can die in the C++ destructors
    ("terminate called without an active exception", SIGABRT) after its work is done, and
    torchrun then reports the whole finished run as failed (seen in CI with two CPU ranks).
    The barrier first, so no rank tears down while another is still saving the final model.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "nccl":  # name the rank's GPU, or torch warns into every log
            dist.barrier(device_ids=[sys.modules["torch"].cuda.current_device()])
        else:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def exit_rank(code: int) -> None:
    """End a torchrun rank without running C++ static destructors.

    Even with the process group destroyed, a CPU rank under DeepSpeed still aborted now and then
    in its teardown ("terminate called without an active exception", 1 exit in 2 with ZeRO-3 on
    two gloo ranks) after its work was saved, and torchrun then marks the finished run failed.
    Everything of ours is flushed first; outside torchrun the interpreter exits normally.
    """
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
