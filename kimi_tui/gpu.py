"""GPU memory and utilisation from NVML, without importing torch.

The UI process must stay light (no torch), and NVML reads the driver's view,
which includes every process on the card, not just ours. Where there is no
driver (a laptop, CI) the answer is an explicit "no NVIDIA GPU" state with the
reason, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GpuProcess:
    pid: int
    used_bytes: int | None


@dataclass
class GpuReading:
    index: int
    name: str
    memory_used: int
    memory_total: int
    utilisation: int | None
    processes: list[GpuProcess] = field(default_factory=list)


@dataclass
class GpuSnapshot:
    available: bool
    reason: str
    gpus: list[GpuReading] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "available": self.available,
            "reason": self.reason,
            "gpus": [
                {
                    "index": g.index,
                    "name": g.name,
                    "memory_used": g.memory_used,
                    "memory_total": g.memory_total,
                    "utilisation": g.utilisation,
                    "processes": [{"pid": p.pid, "used_bytes": p.used_bytes} for p in g.processes],
                }
                for g in self.gpus
            ],
        }


def read_gpus() -> GpuSnapshot:
    try:
        import pynvml
    except ImportError:
        return GpuSnapshot(False, "nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuSnapshot(False, f"no NVIDIA GPU (NVML: {exc})")
    try:
        readings = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode()
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            except pynvml.NVMLError:
                util = None
            procs = []
            try:
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    procs.append(GpuProcess(p.pid, p.usedGpuMemory))
            except pynvml.NVMLError:
                pass
            readings.append(GpuReading(index, name, mem.used, mem.total, util, procs))
        if not readings:
            return GpuSnapshot(False, "NVML found no GPU")
        return GpuSnapshot(True, "", readings)
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
