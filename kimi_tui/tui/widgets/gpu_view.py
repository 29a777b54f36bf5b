"""GPU memory and load, next to the run that is using them.

The questions during training are "is my run on the GPU, how full is the card,
and is something else on it?". NVML knows processes only by pid; every stage
runs in its own process group (its supervisor's session), recorded as ``pgid``
in the run's status.json, so a process is tagged with its run through its group
in /proc. NVML is read once a second in a thread (a call can stall on a busy
driver), and where there is no driver the view says so and why instead of
failing.
"""

from __future__ import annotations

from collections import deque

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from kimi_tui.gpu import GpuReading, GpuSnapshot, read_gpus
from kimi_tui.tui.worker_results import TakesWorkerResults

HISTORY = 60  # samples (seconds) of utilisation per GPU
POLL_S = 1.0
UNAVAILABLE_POLL_S = 10.0  # no driver now rarely means one in a second
GIB = 1024**3


def process_group(pid: int) -> int | None:
    """The process group of PID from /proc, or None (gone, or not visible from this namespace)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def owner_label(pid: int, run_groups: dict[int, str]) -> str:
    group = process_group(pid)
    if group is None:
        return "not visible here"
    return run_groups.get(group, "not a run")


def no_gpu_text(reason: str) -> str:
    return reason if reason.startswith("no NVIDIA GPU") else f"no NVIDIA GPU ({reason})"


def bar(fraction: float, width: int) -> str:
    width = max(1, width)
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


class MemoryBar(Widget):
    """used/total as a bar that fills whatever width it is given."""

    DEFAULT_CSS = "MemoryBar { height: 1; }"

    def __init__(self) -> None:
        super().__init__(classes="gpu-memory")
        self.used = 0
        self.total = 0

    def set_memory(self, used: int, total: int) -> None:
        self.used, self.total = used, total
        self.refresh()

    def render(self) -> str:
        numbers = f" {self.used / GIB:.1f}/{self.total / GIB:.0f} GiB"
        fraction = self.used / self.total if self.total else 0.0
        return "mem " + bar(fraction, self.size.width - len(numbers) - 4) + numbers


class GpuCard(Vertical):
    """One GPU: name and utilisation with its history, memory, and who uses it."""

    def __init__(self, index: int) -> None:
        super().__init__(id=f"gpu-{index}", classes="gpu-card")
        self.index = index

    def compose(self) -> ComposeResult:
        with Horizontal(classes="gpu-head"):
            yield Static("", classes="gpu-name", markup=False)
            yield Sparkline([], classes="gpu-history")
        yield MemoryBar()
        yield Static("", classes="gpu-processes", markup=False)

    def show(self, reading: GpuReading, history: deque[float], owners: dict[int, str]) -> None:
        name = reading.name.removeprefix("NVIDIA ").strip()
        util = "?" if reading.utilisation is None else f"{reading.utilisation}%"
        self.query_one(".gpu-name", Static).update(f"{reading.index} {name} {util:>4}")
        self.query_one(Sparkline).data = list(history)
        self.query_one(MemoryBar).set_memory(reading.memory_used, reading.memory_total)
        lines = []
        for proc in sorted(reading.processes, key=lambda p: -(p.used_bytes or 0)):
            used = "?" if proc.used_bytes is None else f"{proc.used_bytes / GIB:.1f} GiB"
            lines.append(f"  pid {proc.pid} {owners.get(proc.pid, '?')}: {used}")
        self.query_one(".gpu-processes", Static).update("\n".join(lines) or "  no processes")


class GpuView(TakesWorkerResults, VerticalScroll):
    """Every GPU NVML sees, or a clear "no NVIDIA GPU (reason)"."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.run_groups: dict[int, str] = {}
        """process group -> run label; the panel keeps it current from status.json."""
        self.snapshot: GpuSnapshot | None = None
        self.history: dict[int, deque[float]] = {}
        self._reading = False
        self._wait_s = 0.0

    def compose(self) -> ComposeResult:
        yield Static("reading GPUs…", id="gpu-state", markup=False)

    def on_mount(self) -> None:
        self.set_interval(POLL_S, self._tick)
        self._start_read()

    def _tick(self) -> None:
        self._wait_s -= POLL_S
        if self._wait_s <= 0 and not self._reading:
            self._start_read()

    def _start_read(self) -> None:
        self._reading = True
        self._read(dict(self.run_groups))

    @work(thread=True, name="read GPUs", exit_on_error=False, group="gpu-poll")
    def _read(self, run_groups: dict[int, str]) -> None:
        try:
            snapshot = read_gpus()
        except Exception as exc:  # a driver error mid-read: show it, try again next time
            snapshot = GpuSnapshot(False, f"NVML failed: {exc}")
        owners = {
            proc.pid: owner_label(proc.pid, run_groups)
            for gpu in snapshot.gpus
            for proc in gpu.processes
        }
        self.deliver(self._show_read, snapshot, owners)

    async def _show_read(self, snapshot: GpuSnapshot, owners: dict[int, str]) -> None:
        self._reading = False
        self.snapshot = snapshot
        self._wait_s = POLL_S if snapshot.available else UNAVAILABLE_POLL_S
        state = self.query_one("#gpu-state", Static)
        cards = list(self.query(GpuCard))
        if not snapshot.available:
            state.update(no_gpu_text(snapshot.reason))
            state.display = True
            if cards:
                await self.remove_children(GpuCard)
            return
        state.display = False
        if [c.index for c in cards] != [g.index for g in snapshot.gpus]:
            await self.remove_children(GpuCard)
            cards = [GpuCard(g.index) for g in snapshot.gpus]
            await self.mount_all(cards)
        for card, reading in zip(cards, snapshot.gpus):
            history = self.history.setdefault(reading.index, deque(maxlen=HISTORY))
            history.append(float(reading.utilisation or 0))
            card.show(reading, history, owners)

    @property
    def state_text(self) -> str:
        """What the view says as a whole (the no-GPU reason, or one line per GPU)."""
        if self.snapshot is None:
            return "reading GPUs…"
        if not self.snapshot.available:
            return no_gpu_text(self.snapshot.reason)
        return "\n".join(f"{g.index} {g.name}" for g in self.snapshot.gpus)
