"""Time to first frame of the workbench against a bare Textual app with a footer.

Usage: python benchmarks/tui_startup.py [--runs 7]

Each app is started as a real process on a pseudo-terminal (80x24), the way a
user starts it in tmux; the clock stops when the first frame has been written (the bare
app's footer "Help"; the workbench's "opening <project>" line, painted before the
project is loaded), and, for the workbench, again when the panels are drawn (the
tab bar's "Checkpoints"). Both apps are measured alternately in the same run;
the medians and their ratio are printed (target: at most 1.5x). Also prints
whether torch/transformers/deepspeed were imported by the workbench process.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

BARE_APP = """
from textual.app import App
from textual.binding import Binding
from textual.widgets import Footer
class Bare(App):
    BINDINGS = [Binding("f1", "help", "Help"), Binding("q", "quit", "Quit")]
    def compose(self):
        yield Footer()
Bare().run()
"""

WORKBENCH = """
import sys
from kimi_tui.tui.app import KimiTuiApp
app = KimiTuiApp(__import__("pathlib").Path(sys.argv[1]))
app.run()
heavy = sorted(m for m in ("torch", "transformers", "deepspeed") if m in sys.modules)
open(sys.argv[2], "w").write(",".join(heavy) or "none")
"""


def first_frame_seconds(argv: list[str], marker: bytes = b"Help", timeout: float = 30.0,
                        ready_marker: bytes | None = None) -> float | tuple[float, float]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen = b""
    elapsed = None
    ready_at = None
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if elapsed is None and marker in seen:
                    elapsed = time.perf_counter() - start
                if ready_marker is not None and ready_at is None and ready_marker in seen:
                    ready_at = time.perf_counter() - start
                if elapsed is not None and (ready_marker is None or ready_at is not None):
                    break
        os.write(master, b"q")
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    finally:
        os.close(master)
    if elapsed is None or (ready_marker is not None and ready_at is None):
        raise RuntimeError(f"no first frame from {argv} within {timeout}s")
    return elapsed if ready_marker is None else (elapsed, ready_at)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from kimi_tui.project import init_project

    tmp = Path(tempfile.mkdtemp(prefix="kimi-tui-startup-"))
    root = init_project(tmp / "sample", sample=True).root
    heavy_file = tmp / "heavy.txt"
    bare, work, ready = [], [], []
    workbench = [sys.executable, "-c", WORKBENCH, str(root), str(heavy_file)]
    first_frame_seconds([sys.executable, "-c", BARE_APP])  # warm the file cache for both
    first_frame_seconds(workbench, marker=b"opening", ready_marker=b"Checkpoints")
    for _ in range(args.runs):
        bare.append(first_frame_seconds([sys.executable, "-c", BARE_APP]))
        first, full = first_frame_seconds(workbench, marker=b"opening", ready_marker=b"Checkpoints")
        work.append(first)
        ready.append(full)
    b, w, r = statistics.median(bare), statistics.median(work), statistics.median(ready)
    runs = lambda xs: ", ".join(f"{x * 1000:.0f}" for x in xs)  # noqa: E731
    print(f"bare Textual app + footer, first frame: median {b * 1000:6.0f} ms  (runs: {runs(bare)})")
    print(f"kimi-tui workbench, first frame:        median {w * 1000:6.0f} ms  (runs: {runs(work)})")
    print(f"kimi-tui workbench, panels drawn:       median {r * 1000:6.0f} ms  (runs: {runs(ready)})")
    print(f"first frame ratio {w / b:.2f}x (target <= 1.5x); panels drawn {r / b:.2f}x")
    print(f"heavy libraries imported by the workbench process: {heavy_file.read_text() if heavy_file.exists() else '?'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
