"""How many CPU threads a worker's torch may use, decided before torch is imported.

Torch runs each operator on one OpenMP thread per core, and the threads meet at
a barrier after every parallel region. On a machine whose cores other processes
already hold (a shared box at load 5-10), each barrier waits for a thread the
kernel has not scheduled yet; the small models kimi-tui trains on a CPU run
thousands of tiny operators per step, so a 30 s training took 17 minutes
(benchmarks/cpu_threads.py measures it). A few threads lose little on an idle
machine, and one thread on a busy one avoids the barriers altogether.

``KIMI_TUI_CPU_THREADS`` sets the count (0: torch's own default); an
``OMP_NUM_THREADS`` the user set is kept as it is. Standard library only.
"""

from __future__ import annotations

import os
from typing import MutableMapping

THREADS_ENV = "KIMI_TUI_CPU_THREADS"
MAX_THREADS = 4
LIBRARY_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def choose_threads(cores: int, load: float) -> int:
    """min(cores, 4), less the cores the 1-minute load average says others already use (at least 1)."""
    free = cores - int(load + 0.5)
    return max(1, min(cores, MAX_THREADS, free))


def limit_cpu_threads(environ: MutableMapping[str, str] | None = None,
                      cores: int | None = None, load: float | None = None) -> int | None:
    """Set the thread count for the libraries this process will load; None when left to them.

    Raises ValueError for a KIMI_TUI_CPU_THREADS that is not a whole number of 0 or more."""
    environ = os.environ if environ is None else environ
    setting = environ.get(THREADS_ENV, "").strip()
    threads = None
    if setting:
        try:
            threads = int(setting)
        except ValueError:
            threads = -1
        if threads < 0:
            raise ValueError(f"{THREADS_ENV}={setting!r}: give a number of threads (0 = torch's default)")
    if threads == 0 or environ.get("OMP_NUM_THREADS"):
        return None  # torch's default, or the user's own choice
    if threads is None:
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if load is None:
            try:
                load = os.getloadavg()[0]
            except OSError:
                load = 0.0
        threads = choose_threads(cores, load)
    for name in LIBRARY_ENVS:
        environ.setdefault(name, str(threads))
    return threads
