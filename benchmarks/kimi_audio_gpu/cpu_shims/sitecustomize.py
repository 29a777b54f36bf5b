"""CPU shims for the test bed's dry run of the UNMODIFIED official Kimi-Audio code (never used on the GPU).

This folder goes on PYTHONPATH of the official code's interpreter in the CPU dry run only
(run_stages.py --cpu), never in kimi_tui/ and never in the checkout. The official code assumes a
CUDA GPU and flash-attn; each shim below makes one such assumption hold on a CPU, and does nothing
when CUDA is there. The shims are applied lazily, right after the module they patch is imported,
so a process that never imports torch or transformers pays nothing.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "testbed_env"))

from testbed_hooks import after_import  # noqa: E402


def _torch(torch) -> None:
    if torch.cuda.is_available():
        return
    # 1. torch.cuda.current_device() -> "cpu". The official code moves every tensor with
    #    `.to(torch.cuda.current_device())` and builds tensors with `device=torch.cuda.current_device()`
    #    (prompt_manager, glm4_utils.extract_speech_token, whisper_Lv3 WhisperEncoder, modeling_kimia,
    #    KimiAudioModel.forward, KimiAudio._generate_loop); without CUDA it raises "Torch not compiled
    #    with CUDA enabled" / "no NVIDIA driver". A device string works in every one of those calls.
    torch.cuda.current_device = lambda: "cpu"


def _import_utils(import_utils) -> None:
    # 2. transformers' is_flash_attn_2_available() -> True. modeling_kimia.py raises "flash attention
    #    must be installed" at import time when it is False, and transformers says False without CUDA
    #    even with the flash_attn stand-in (stand_ins/, torch SDPA) on the path. Patched in
    #    transformers.utils.import_utils before transformers.utils re-exports it, so both names agree.
    #    The GLM-4-Voice tokenizer's modelling then also imports transformers'
    #    modeling_flash_attention_utils, which the stand-in satisfies; its attention stays SDPA.
    import torch

    if torch.cuda.is_available():
        return
    import_utils.is_flash_attn_2_available = lambda: True


after_import("torch", _torch)
after_import("transformers.utils.import_utils", _import_utils)

# The GPU-side hooks (memory cap, torch peak) run here too, so the dry run exercises them (they say
# "no CUDA" and do nothing): testbed_env/sitecustomize.py is shadowed by this file on the path.
try:
    import testbed_controls  # noqa: E402

    testbed_controls.install()
except Exception as exc:  # pragma: no cover - never stop the official code from starting
    print(f"[testbed] cpu_shims: testbed_controls: {type(exc).__name__}: {exc}", file=sys.stderr)
