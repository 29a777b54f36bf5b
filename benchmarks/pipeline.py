"""Wall time of each stage of the sample pipeline, run as a user runs it.

Usage: python benchmarks/pipeline.py [--keep DIR]

Creates the sample project in a temporary folder (or DIR), runs every stage with
`kimi-tui run STAGE --wait`, and prints each stage's wall time as recorded in
its status.json (worker start to end) and as seen by the caller (including
process start-up), plus the total. The issue's target: the whole pipeline under
5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("prepare", "extract", "convert", "train", "export", "evaluate")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="create the project here and keep it")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="kimi-tui-bench-"))
    project = base / "sample"
    kimi = [sys.executable, "-m", "kimi_tui"]
    subprocess.run(kimi + ["init", str(project), "--sample"], check=True, capture_output=True)
    rows = []
    total_start = time.perf_counter()
    for stage in STAGES:
        start = time.perf_counter()
        proc = subprocess.run(kimi + ["run", stage, "--project", str(project), "--wait"], capture_output=True, text=True)
        caller_s = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            print(f"{stage} failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        run_dir = sorted((project / "runs").glob(f"*-{stage}"))[-1]
        status = json.loads((run_dir / "status.json").read_text())
        rows.append((stage, status["ended"] - status["started"], caller_s))
    total = time.perf_counter() - total_start
    print(f"{'stage':10} {'worker s':>9} {'caller s':>9}")
    for stage, worker_s, caller_s in rows:
        print(f"{stage:10} {worker_s:9.1f} {caller_s:9.1f}")
    print(f"{'total':10} {sum(r[1] for r in rows):9.1f} {total:9.1f}")
    metrics = sorted(project.glob("evaluations/*/metrics.json"))[-1]
    m = json.loads(metrics.read_text())["models"]
    for name in ("base", "export"):
        print(f"{name:10} train CER {m[name]['train']['cer'] * 100:6.1f}%   test CER {m[name]['test']['cer'] * 100:6.1f}%")
    print(f"project: {project}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
