"""What each DeepSpeed setup costs, against plain DDP measured in the same run on the same GPUs.

Usage: python benchmarks/deepspeed_stages.py [--gpus 2] [--epochs 100] [--device cuda|cpu]

The seed's last failure was the CPU-offload fix being too slow to use. This trains the sample
project (whisper engine, the same ZeRO config the kimi-audio engine generates) four ways with
train.num_gpus = --gpus: DDP (no DeepSpeed), ZeRO-2, ZeRO-3, ZeRO-3 with optimizer and
parameter offload; NVML is sampled every 0.25 s. Per setup it prints the Trainer's runtime,
the stage's wall time (start, saves, exit), peak GPU memory per GPU, the final mean loss, and
each time as a ratio to DDP. On the tiny model memory savings are invisible; the ratios show
what the communication and the offload traffic cost per step.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gpu_sampling import GpuSampler  # noqa: E402
from multi_gpu import KIMI, configure  # noqa: E402

from kimi_tui.gpu import read_gpus  # noqa: E402

SETUPS = {
    "DDP": {"deepspeed.enabled": False},
    "ZeRO-2": {"deepspeed.enabled": True, "deepspeed.stage": 2, "deepspeed.offload_optimizer": False,
               "deepspeed.offload_param": False},
    "ZeRO-3": {"deepspeed.enabled": True, "deepspeed.stage": 3, "deepspeed.offload_optimizer": False,
               "deepspeed.offload_param": False},
    "ZeRO-3 + offload": {"deepspeed.enabled": True, "deepspeed.stage": 3, "deepspeed.offload_optimizer": True,
                         "deepspeed.offload_param": True},
}


def train(project: Path, setup: dict) -> dict:
    configure(project, **setup)
    began = time.perf_counter()
    with GpuSampler() as sampler:
        proc = subprocess.run(KIMI + ["run", "train", "--project", str(project), "--wait"], capture_output=True, text=True)
    wall = time.perf_counter() - began
    run_dir = sorted((project / "runs").glob("*-train"))[-1]
    log = (run_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"train failed with {setup}:\n{log[-3000:]}")
    meta = json.loads((project / "training" / "final" / "kimi_tui_model.json").read_text())
    loss = re.findall(r"train finished: \d+ steps in [\d.]+ s, mean loss ([\d.]+)", log)
    return {"wall_s": wall, "runtime_s": meta.get("train_seconds"), "steps": meta.get("step"),
            "loss": float(loss[-1]) if loss else None, "peak_mib": sampler.peak_mib_per_gpu()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    snap = read_gpus()
    print("GPUs:", "; ".join(f"{g.index}: {g.name}" for g in snap.gpus) or snap.reason)
    project = Path(tempfile.mkdtemp(prefix="kimi-tui-deepspeed-")) / "p"
    subprocess.run(KIMI + ["init", str(project), "--sample"], check=True, capture_output=True)
    configure(project, **{"train.num_gpus": args.gpus, "train.epochs": args.epochs, "train.batch_size": 4,
                          "train.gradient_accumulation_steps": 1, "engine.device": args.device,
                          "train.bf16": args.device == "cuda"})
    for stage in ("prepare", "extract", "convert"):
        subprocess.run(KIMI + ["run", stage, "--project", str(project), "--wait"], check=True, capture_output=True)
    results = {}
    for name, setup in SETUPS.items():
        import shutil

        shutil.rmtree(project / "training", ignore_errors=True)
        results[name] = train(project, setup)
    base = results["DDP"]
    print(f"{args.gpus} processes on {args.device}, {base['steps']} optimizer steps each")
    print(f"{'setup':17} {'Trainer s':>9} {'x DDP':>6} {'stage s':>8} {'x DDP':>6} {'mean loss':>9}  peak MiB per GPU")
    for name, r in results.items():
        peaks = ", ".join(f"{i}: {m:.0f}" for i, m in sorted(r["peak_mib"].items())) or "-"
        print(f"{name:17} {r['runtime_s']:9.1f} {r['runtime_s'] / base['runtime_s']:6.2f} {r['wall_s']:8.1f} "
              f"{r['wall_s'] / base['wall_s']:6.2f} {r['loss'] if r['loss'] is not None else float('nan'):9.4f}  {peaks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
