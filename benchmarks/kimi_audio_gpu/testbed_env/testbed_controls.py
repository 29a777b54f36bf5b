"""Controls of the test bed, switched on by environment variables (nothing happens without them).

KIMI_TESTBED_GPU_CAP_GIB=80
    Once torch is imported, cap this process's CUDA caching allocator at 80 GiB with
    ``torch.cuda.set_per_process_memory_fraction(80 GiB / total)``: "LoRA fits one 80 GB GPU" is then
    tested on the H200 (an allocation past the cap raises CUDA out of memory, as on an 80 GB card).
    The CUDA context itself (~0.5 GiB) is outside the allocator and not counted by the cap.
KIMI_TESTBED_TORCH_PEAK_DIR=DIR
    Once torch is imported, a daemon thread writes DIR/torch-peak-<pid>.json every second with the
    allocator's peaks (max_memory_allocated / max_memory_reserved) and the command line, so the test
    bed can report torch's own peak next to NVML's (which includes the context and other processes).
KIMI_TESTBED_SKIP_INIT=1
    Skip the random initialisation of models that are built and then overwritten whole: the official
    convert (``KimiAudioModel(config)`` then a strict ``load_state_dict``) and export
    (``MoonshotKimiaForCausalLM(config)`` then a strict ``load_state_dict``) random-initialise 10 B
    parameters on the CPU first, single-threaded: ~2 min in fp32 and ~7 min in bf16 (torch's CPU
    ``normal_`` on bf16 runs at ~30 M values/s) at full size, which the test bed cannot afford in
    10-minute device calls. The outputs are the same (every weight is loaded afterwards, strictly);
    only the time differs, and run_stages.py measures that cost separately and reports it. It is
    transformers' own ``no_init_weights`` made permanent for the process: torch.nn.init's functions
    become no-ops and ``PreTrainedModel`` skips ``_init_weights``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from testbed_hooks import after_import

GIB = 2**30


def _cap(torch) -> None:
    cap_gib = float(os.environ["KIMI_TESTBED_GPU_CAP_GIB"])
    if not torch.cuda.is_available():
        print(f"[testbed] KIMI_TESTBED_GPU_CAP_GIB={cap_gib:g}: no CUDA here, no cap applied", file=sys.stderr, flush=True)
        return
    total = torch.cuda.get_device_properties(0).total_memory
    fraction = min(1.0, cap_gib * GIB / total)
    torch.cuda.set_per_process_memory_fraction(fraction, 0)
    print(f"[testbed] CUDA allocator capped at {cap_gib:g} GiB = {fraction:.4f} of {total / GIB:.1f} GiB "
          f"(pid {os.getpid()})", file=sys.stderr, flush=True)


def _peaks(torch) -> None:
    folder = os.environ["KIMI_TESTBED_TORCH_PEAK_DIR"]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"torch-peak-{os.getpid()}.json")
    argv = " ".join(sys.argv)[:500]

    def loop() -> None:
        last = None
        while True:
            time.sleep(1.0)
            try:
                if not torch.cuda.is_initialized():
                    continue
                now = (torch.cuda.max_memory_allocated(0), torch.cuda.max_memory_reserved(0))
            except Exception:
                continue
            if now != last:
                last = now
                tmp = path + ".tmp"
                with open(tmp, "w") as fh:
                    json.dump({"pid": os.getpid(), "argv": argv, "max_allocated": now[0], "max_reserved": now[1],
                               "time": time.time()}, fh)
                os.replace(tmp, path)

    threading.Thread(target=loop, name="testbed-torch-peak", daemon=True).start()


def _skip_init(modeling_utils) -> None:
    import torch

    def skip(*args, **kwargs):
        return args[0] if args else None

    modeling_utils._init_weights = False
    for name in list(modeling_utils.TORCH_INIT_FUNCTIONS):
        modeling_utils.TORCH_INIT_FUNCTIONS[name] = skip  # no_init_weights restores these on exit: keep skipping
        setattr(torch.nn.init, name, skip)
    print(f"[testbed] KIMI_TESTBED_SKIP_INIT: random init of built-then-loaded models skipped (pid {os.getpid()})",
          file=sys.stderr, flush=True)


def install() -> None:
    if os.environ.get("KIMI_TESTBED_GPU_CAP_GIB"):
        after_import("torch", _cap)
    if os.environ.get("KIMI_TESTBED_TORCH_PEAK_DIR"):
        after_import("torch", _peaks)
    if os.environ.get("KIMI_TESTBED_SKIP_INIT") == "1":
        after_import("transformers.modeling_utils", _skip_init)
