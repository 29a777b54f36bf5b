"""One Trainer callback for both engines' workers, so their runs write the same training events.

The readers (kimi_tui.progress, the Run panel's loss plot, the checkpoint list) know one event
stream whichever engine trained; each worker adds only its own log lines and checkpoint files
through the hooks. Apart from runtime.py because it imports transformers (inside the function,
so the kimi-audio worker's copy still loads without it), and the core imports runtime.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def log_values(logs: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a Trainer log (tensors and numpy scalars as floats)."""
    values = {}
    for key, value in logs.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            values[key] = value
        elif hasattr(value, "__float__") and not isinstance(value, str):
            try:
                values[key] = float(value)
            except (TypeError, ValueError):
                pass
    return values


def trainer_events_callback(events: Any, *, on_begin: Callable[[Any, Any], None] | None = None,
                            on_metric: Callable[[int, int, dict[str, Any]], None] | None = None,
                            on_save: Callable[[Path, int], None] | None = None):
    """A transformers TrainerCallback writing both engines' training events, from the main process only:
    progress at the start and after every optimizer step (the writer keeps one a second), a metric
    event for each log with a loss (or an evaluation loss, or the final summary), a checkpoint artifact
    for each save. The hooks add each engine's own log lines and checkpoint files (``on_save`` runs
    before the artifact is announced)."""
    from transformers import TrainerCallback

    class KimiTuiEvents(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                events.progress(state.global_step, state.max_steps, epoch=state.epoch or 0.0)
                if on_begin is not None:
                    on_begin(args, state)

        def on_step_end(self, args, state, control, **kwargs):
            # Every optimizer step, not only at the logging steps: a 40 s wait on "10/200" reads as a hang.
            if state.is_world_process_zero:
                events.step_progress(state.global_step, state.max_steps, epoch=round(float(state.epoch or 0.0), 4))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if not ("loss" in logs or "eval_loss" in logs or "train_runtime" in logs):
                return
            values = log_values(logs)
            events.metric(state.global_step, **values)
            if on_metric is not None:
                on_metric(state.global_step, state.max_steps, values)

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if on_save is not None:
                on_save(folder, state.global_step)
            events.artifact("checkpoint", folder, step=state.global_step)

    return KimiTuiEvents()
