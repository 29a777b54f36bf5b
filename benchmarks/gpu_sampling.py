"""NVML read in the background while a benchmark runs something, for the GPU benchmarks to share.

A benchmark wants the GPU memory a stage really held, which only a sample taken during the
run can tell (nvidia-smi afterwards shows nothing). Where there is no NVIDIA GPU every
snapshot is empty and the peaks are {}.
"""

from __future__ import annotations

import threading
import time

from kimi_tui.gpu import GpuSnapshot, read_gpus


class GpuSampler:
    """``with GpuSampler() as gpus: ...`` -> ``gpus.samples``: (wall time, snapshot) every ``interval`` s."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.samples: list[tuple[float, GpuSnapshot]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.time(), read_gpus()))
            time.sleep(self.interval)

    def __enter__(self) -> "GpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def peak_mib_per_gpu(self) -> dict[int, float]:
        """Per GPU that ever had a compute process: the most memory its processes held together."""
        peak: dict[int, int] = {}
        for _, snap in self.samples:
            for gpu in snap.gpus:
                if gpu.processes:
                    peak[gpu.index] = max(peak.get(gpu.index, 0), sum(p.used_bytes or 0 for p in gpu.processes))
        return {i: m / 2**20 for i, m in peak.items()}
