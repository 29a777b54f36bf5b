"""The sample pipeline on a GPU box, with the GPU memory each stage's worker really used.

Usage: python benchmarks/gpu_pipeline.py [--bf16] [--keep DIR]

Runs `kimi-tui run all` on the sample project (engine.device = "auto", so CUDA
when there is one) while sampling NVML every 0.25 s through kimi_tui.gpu, and
prints per stage: wall time, the peak memory of the stage's worker process on
each GPU, and the peak total memory used per GPU. On a machine without an
NVIDIA GPU it says so and still times the stages.
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

from gpu_sampling import GpuSampler

from kimi_tui.gpu import read_gpus
from kimi_tui.runs import list_runs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="kimi-tui-gpu-"))
    project = base / "sample"
    kimi = [sys.executable, "-m", "kimi_tui"]
    subprocess.run(kimi + ["init", str(project), "--sample"], check=True, capture_output=True)
    if args.bf16:
        cfg = project / "kimi-tui.toml"
        cfg.write_text(re.sub(r"^bf16 = .*$", "bf16 = true", cfg.read_text(), flags=re.M))
    first = read_gpus()
    print("GPUs:", "; ".join(f"{g.index}: {g.name} {g.memory_total / 2**30:.1f} GiB" for g in first.gpus) or first.reason)
    start = time.perf_counter()
    with GpuSampler() as sampler:
        proc = subprocess.run(kimi + ["run", "all", "--project", str(project), "--wait"], capture_output=True, text=True)
    total = time.perf_counter() - start
    samples = sampler.samples
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:])
        return 1
    print(f"{'stage':9} {'device':7} {'wall s':>7} {'worker peak MiB':>16} {'GPU used peak MiB':>18}")
    for run in list_runs(project / "runs"):  # run folders only (runs/.lock is the project lock)
        run_dir = run.path
        status = json.loads((run_dir / "status.json").read_text())
        if status["stage"] == "all":
            continue
        pid, t0, t1 = status["pid"], status["started"], status["ended"]
        worker_peak = 0
        used_peak = 0
        for t, snap in samples:
            if not (t0 <= t <= t1) or not snap.available:
                continue
            for g in snap.gpus:
                used_peak = max(used_peak, g.memory_used)
                for p in g.processes:
                    if p.pid == pid and p.used_bytes:
                        worker_peak = max(worker_peak, p.used_bytes)
        log = (run_dir / "stdout.log").read_text(errors="replace")
        device = "cuda" if "cuda" in log.lower() else "cpu"
        print(f"{status['stage']:9} {device:7} {t1 - t0:7.1f} {worker_peak / 2**20:16.0f} {used_peak / 2**20:18.0f}")
    print(f"total wall {total:.1f} s; {len(samples)} NVML samples")
    metrics = json.loads(sorted(project.glob("evaluations/*/metrics.json"))[-1].read_text())["models"]
    for name in ("base", "export"):
        print(f"{name:8} train CER {metrics[name]['train']['cer'] * 100:6.1f}%  test CER {metrics[name]['test']['cer'] * 100:6.1f}%")
    train_log = sorted((project / "runs").glob("*-train"))[-1] / "stdout.log"
    print("train log tail:\n" + "\n".join(train_log.read_text(errors="replace").splitlines()[-6:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
