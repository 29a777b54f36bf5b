"""kimi-tui: a terminal workbench for fine-tuning speech models for Chinese ASR.

The package is split so the interactive UI can never slow down or break a run:
everything outside ``kimi_tui.tui`` is a headless core (no textual import), and
only ``kimi_tui.workers`` imports torch/transformers/deepspeed, inside the
subprocesses that stages run.
"""

__version__ = "0.1.0"
