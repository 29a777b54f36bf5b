"""A run printing 10,000 log lines a second for 30 s, followed by the workbench.

Usage: python benchmarks/tui_log_flood.py [--seconds 30] [--rate 10000]

The flood is a real detached run (runs/<id>/stdout.log, written by its own
process). The workbench runs headless at 80x24 (Textual's Pilot) with the Run
panel following it. Every 0.25 s a key is pressed (`t`, which toggles the Run
panel's log follow-tail) and the time until its action has run is measured; the process's
resident memory is read every second. Printed: lines written, key latency
(median, 95th percentile, max; target: within 100 ms), memory at start, peak
and end (target: bounded), and how many lines the log view holds. The baseline,
measured in the same run: the same key presses with no run going.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

FLOOD = """
import sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
batch = max(1, rate // 100)
start = time.perf_counter()
n = 0
while time.perf_counter() - start < seconds:
    sys.stdout.write("".join(f"step {n + i} loss 0.{(n + i) % 9973:04d} 今天天气很好 the quick brown fox\\n" for i in range(batch)))
    sys.stdout.flush()
    n += batch
    target = start + n / rate
    delay = target - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
print(f"flood done: {n} lines", flush=True)
"""


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def press_latencies(app, pilot, panel, seconds: float, memory: list[float]) -> list[float]:
    latencies: list[float] = []
    original = panel.action_toggle_tail
    done = asyncio.Event()
    state = {"t0": 0.0}

    def timed() -> None:
        original()
        latencies.append(time.perf_counter() - state["t0"])
        done.set()

    panel.action_toggle_tail = timed
    end = time.perf_counter() + seconds
    next_mem = 0.0
    while time.perf_counter() < end:
        done.clear()
        state["t0"] = time.perf_counter()
        await pilot.press("t")
        try:
            await asyncio.wait_for(done.wait(), timeout=5)
        except asyncio.TimeoutError:
            latencies.append(5.0)
        if time.perf_counter() > next_mem:
            memory.append(rss_mb())
            next_mem = time.perf_counter() + 1
        await asyncio.sleep(0.25)
    panel.action_toggle_tail = original
    return latencies


def summary(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"{name}: {len(xs)} presses, median {statistics.median(xs) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, max {xs[-1] * 1000:.1f} ms"


async def main_async(seconds: float, rate: int) -> int:
    from kimi_tui.project import init_project
    from kimi_tui.runs import StagePlan, read_run, start_stage, stop_run
    from kimi_tui.tui.app import KimiTuiApp, WorkbenchScreen
    from kimi_tui.tui.widgets.log_view import LogView

    root = init_project(Path(tempfile.mkdtemp(prefix="kimi-tui-flood-")) / "p", sample=True).root
    app = KimiTuiApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, WorkbenchScreen) or app.screen.panel("run") is None:
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        app.screen.action_show("run")
        await pilot.pause(0.5)
        panel = app.screen.panel("run")
        memory: list[float] = [rss_mb()]
        baseline = await press_latencies(app, pilot, panel, 5, memory)
        start_mem = rss_mb()
        plan = StagePlan(stage="flood", argv=[sys.executable, "-c", FLOOD, str(rate), str(seconds)])
        run_dir = start_stage(root / "runs", plan)
        panel.follow_run(run_dir)
        memory = [start_mem]
        flood = await press_latencies(app, pilot, panel, seconds, memory)
        while read_run(run_dir).active:
            await pilot.pause(0.2)
        await pilot.pause(1.0)
        log_view = app.screen.query_one(LogView)
        held = len(log_view._lines)  # noqa: SLF001
        written = sum(1 for _ in open(run_dir / "stdout.log", "rb"))
        stop_run(run_dir)
    print(f"flood: {written:,} lines in {seconds:.0f} s ({written / seconds:,.0f} lines/s) into {run_dir / 'stdout.log'}")
    print(summary("key latency, no run (baseline)", baseline))
    print(summary("key latency during the flood  ", flood))
    print(f"memory (RSS): {start_mem:.0f} MB before the flood, peak {max(memory):.0f} MB, end {memory[-1]:.0f} MB")
    print(f"log view holds {held:,} lines (bound {log_view.max_lines:,})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=10_000)
    args = parser.parse_args()
    return asyncio.run(main_async(args.seconds, args.rate))


if __name__ == "__main__":
    raise SystemExit(main())
