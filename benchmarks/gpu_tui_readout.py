"""What the Run panel's GPU view shows while a real run trains on the GPU.

Usage: python benchmarks/gpu_tui_readout.py [--epochs 3000] [--out DIR]

Creates the sample project, starts `run all` detached (the tiny model trains on
CUDA when there is one), opens the workbench headless at 160x45 (loss curve and GPU view side by side), switches the
Run panel to its GPU view and, while the train stage runs, prints the GPU view's
text next to NVML's own per-process reading of the run's worker, and saves an
SVG screenshot. On a machine without an NVIDIA GPU it prints the "no NVIDIA GPU"
state instead.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path


def screen_text(app) -> str:
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True)
    console.print(app.screen._compositor.render_update(full=True))  # noqa: SLF001
    return console.export_text()


async def main_async(epochs: int, out: Path) -> int:
    from kimi_tui.gpu import read_gpus
    from kimi_tui.pipeline import start
    from kimi_tui.project import Project, init_project
    from kimi_tui.runs import list_runs, read_run, stop_run
    from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen

    root = init_project(Path(tempfile.mkdtemp(prefix="kimi-tui-gpu-tui-")) / "sample", sample=True).root
    config = root / "kimi-tui.toml"
    config.write_text(re.sub(r"^epochs = .*$", f"epochs = {epochs}", config.read_text(), flags=re.M))
    all_run = start(Project.load(root), "all")
    app = KimiTuiApp(root)
    async with app.run_test(size=(160, 45)) as pilot:
        while not isinstance(app.screen, WorkbenchScreen) or app.screen.panel("run") is None:
            await pilot.pause(0.05)
        app.screen.action_show("run")
        await pilot.pause(1.0)
        deadline = time.monotonic() + 300
        train = None
        while time.monotonic() < deadline:
            train = next((r for r in list_runs(root / "runs") if r.stage == "train" and r.state == "running"), None)
            if train is not None:
                break
            await pilot.pause(0.5)
        if train is None:
            print("the train stage never ran; log:\n" + (all_run / "stdout.log").read_text()[-3000:])
            return 1
        from kimi_tui.events import read_events

        while time.monotonic() < deadline:  # until it trains on the GPU, then let the view sample it
            steps = [e.get("step", 0) for e in read_events(train.path / "events.jsonl") if e["type"] == "progress"]
            if steps and max(steps) >= 20 or read_run(train.path).state != "running":
                break
            await pilot.pause(0.5)
        await pilot.pause(3.0)
        text = screen_text(app)
        snap = read_gpus()
        worker_pid = read_run(train.path).pid
        print("The Run panel with its GPU view, during training:")
        print(text.rstrip() or "(empty)")
        print("NVML directly:", "; ".join(
            f"GPU{g.index} {g.memory_used / 2**20:.0f}/{g.memory_total / 2**20:.0f} MiB, util {g.utilisation}%"
            f", processes {[(p.pid, round((p.used_bytes or 0) / 2**20)) for p in g.processes]}" for g in snap.gpus
        ) or snap.reason)
        print(f"train worker pid {worker_pid}")
        out.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(str(out / "gpu_view.svg"))
        print(f"screenshot: {out / 'gpu_view.svg'}")
    for run in list_runs(root / "runs"):
        if run.active:
            stop_run(run.path, grace=(5, 5, 5))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    return asyncio.run(main_async(args.epochs, args.out))


if __name__ == "__main__":
    raise SystemExit(main())
