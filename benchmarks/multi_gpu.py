"""The whisper engine on one GPU and on several, on the same machine, in the same run.

Usage: python benchmarks/multi_gpu.py [--gpus 2] [--epochs 300]

For N = 1 and N = --gpus it runs prepare -> extract -> convert -> train -> evaluate on
the sample project with train.num_gpus = N (training through torchrun, transcription
sharded one process per GPU), sampling NVML every 0.25 s, and prints per stage the
wall time, how many GPUs had a process of the stage on them and their peak memory,
then the training throughput (clips x epochs / s) and its ratio to one GPU. Nine
clips are far too few for several GPUs to pay off: the point is that every rank
runs, saves as planned and finishes; the ratio is what it is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpu_sampling import GpuSampler

from kimi_tui.gpu import read_gpus

KIMI = [sys.executable, "-m", "kimi_tui"]


def configure(project: Path, **values) -> None:
    from kimi_tui.config import save_config, set_field
    from kimi_tui.project import Project

    p = Project.load(project)
    config = p.config
    for key, value in values.items():
        config = set_field(config, key, value)
    save_config(p.config_path, config)


def run_pipeline(base: Path, gpus: int, epochs: int) -> dict:
    project = base / f"gpus-{gpus}"
    subprocess.run(KIMI + ["init", str(project), "--sample"], check=True, capture_output=True)
    configure(project, **{"train.num_gpus": gpus, "train.epochs": epochs, "train.batch_size": 4,
                          "train.gradient_accumulation_steps": 1, "engine.device": "cuda",
                          "eval.checkpoints": "last", "eval.include_base": False})
    results = {}
    for stage in ("prepare", "extract", "convert", "train", "evaluate"):
        began = time.perf_counter()
        with GpuSampler() as sampler:
            proc = subprocess.run(KIMI + ["run", stage, "--project", str(project), "--wait"], capture_output=True, text=True)
        wall = time.perf_counter() - began
        if proc.returncode != 0:
            raise SystemExit(f"{stage} on {gpus} GPU(s) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        peak = sampler.peak_mib_per_gpu()
        results[stage] = {"wall_s": wall, "gpus_used": sorted(peak), "peak_mib": peak}
        if stage == "train":
            meta = json.loads((project / "training" / "final" / "kimi_tui_model.json").read_text())
            results[stage]["steps"] = meta.get("step")
            results[stage]["train_runtime_s"] = meta.get("train_seconds")
    metrics = sorted((project / "evaluations").iterdir())[-1] / "metrics.json"
    results["metrics"] = metrics.exists()
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    snap = read_gpus()
    print("GPUs:", "; ".join(f"{g.index}: {g.name}" for g in snap.gpus) or snap.reason)
    base = Path(tempfile.mkdtemp(prefix="kimi-tui-multi-gpu-"))
    table = {n: run_pipeline(base, n, args.epochs) for n in (1, args.gpus)}
    print(f"{'GPUs':>4} {'stage':9} {'wall s':>7} {'GPUs with a worker':>19} {'peak MiB per GPU':>20}")
    for n, results in table.items():
        for stage, r in results.items():
            if stage == "metrics":
                continue
            peaks = ", ".join(f"{i}: {m:.0f}" for i, m in r["peak_mib"].items()) or "-"
            print(f"{n:>4} {stage:9} {r['wall_s']:7.1f} {str(r['gpus_used']):>19} {peaks:>20}")
    clips = 9 * args.epochs
    rates = {n: clips / r["train"]["train_runtime_s"] for n, r in table.items() if r["train"].get("train_runtime_s")}
    for n, r in table.items():
        print(f"train on {n} GPU(s): {r['train']['steps']} optimizer steps, Trainer runtime "
              f"{r['train'].get('train_runtime_s')} s, {rates.get(n, float('nan')):.0f} clips/s")
    if len(rates) == 2:
        print(f"throughput ratio {args.gpus} GPUs / 1 GPU: {rates[args.gpus] / rates[1]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
