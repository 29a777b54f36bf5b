"""Training that goes non-finite stops, names the step and the last good checkpoint, and never "succeeds".

A diverging run used to end "succeeded": the Trainer keeps stepping through a NaN loss (its
``logging_nan_inf_filter`` even replaces a NaN in the logged loss by the running mean), saves
checkpoints of NaN or 1e38 weights, and the first to notice was evaluate, sampling NaN logits
(full fine-tuning under ZeRO-3 on two CPU ranks, 2 runs of 3: DeepSpeed 0.16.9 loses parameter
all-gathers on gloo, which the lint now refuses; this guard is the net for what no check foresees,
a learning rate too high among them). The guard watches what the Trainer
logs and what it saves, stops the run at the first sign, keeps a poisoned checkpoint out of resume
and evaluation (renamed ``checkpoint-N.nonfinite``), and turns what it saw into the worker's error.

What trips it, checked at every log (so ``logging_steps`` sets how soon) and every save:

* ``loss`` or ``grad_norm`` that is NaN or infinite;
* ``grad_norm`` above :data:`GRAD_NORM_LIMIT` (1e8: far beyond any healthy pre-clipping norm, still
  well inside bf16's range), or :data:`GRAD_NORM_JUMP` (1e4) times the median of the last
  :data:`MEDIAN_WINDOW` logged norms, once :data:`MEDIAN_MIN_HISTORY` of them are known: an explosion
  shows as such a jump steps before the loss turns NaN, and clipping hides it from the loss;
* a saved checkpoint, or the final model, holding a NaN, an infinity, or a weight of magnitude above
  :data:`WEIGHT_LIMIT` (1e6: trained speech and language models keep every weight within about 1e3;
  the corrupted ZeRO-3 weights were 7e9-1e38).

Standard library only at import time (torch and safetensors are imported inside the functions): the
module is copied next to the kimi-audio worker and run under the user's interpreter. Several ranks
decide together: the log values are the same on every rank, and a checkpoint's verdict is read on
rank 0 and broadcast, so every rank stops (and raises) at the same step and none waits in a collective.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

__all__ = ["GRAD_NORM_LIMIT", "GRAD_NORM_JUMP", "MEDIAN_WINDOW", "MEDIAN_MIN_HISTORY", "WEIGHT_LIMIT",
           "NonFiniteTraining", "training_guard", "check_weights", "guard_final_model", "POISONED_SUFFIX"]

GRAD_NORM_LIMIT = 1e8
GRAD_NORM_JUMP = 1e4
MEDIAN_WINDOW = 50
MEDIAN_MIN_HISTORY = 5
WEIGHT_LIMIT = 1e6
#: A checkpoint with non-finite weights is renamed with this suffix: no checkpoint-N name, so resume,
#: export and evaluate never take it, and it is still there to look at.
POISONED_SUFFIX = ".nonfinite"
NON_FINITE = "non-finite"
#: Weight files of a checkpoint folder, in the order they are looked for.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


class NonFiniteTraining(Exception):
    """The run went non-finite; the message names the step, the value and the last good checkpoint."""


def _is_rank0() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _broadcast(value):
    """rank 0's value on every rank (torch.distributed when it is up; the value itself otherwise)."""
    import sys

    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _tensor_problem(name: str, tensor) -> str | None:
    import torch

    if not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    values = tensor.detach()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = values[~finite].flatten()[0].item()
        return f"{name} holds {int((~finite).sum())} {NON_FINITE} value(s) ({bad})"
    peak = float(values.abs().max().float())
    if peak > WEIGHT_LIMIT:
        return f"{name} holds a weight of {peak:.3g} (above {WEIGHT_LIMIT:g})"
    return None


def _zero_checkpoint_tensors(folder: Path):
    """A ZeRO checkpoint without consolidated weights: the model states DeepSpeed saved per rank."""
    import torch

    for path in sorted(folder.glob("global_step*/*model_states.pt")):
        state = torch.load(str(path), map_location="cpu", weights_only=False, mmap=True)
        module = state.get("module") if isinstance(state, dict) else None
        for name, tensor in (module or {}).items():
            if hasattr(tensor, "is_floating_point"):
                yield f"{path.relative_to(folder)}:{name}", tensor


def check_weights(folder: str | os.PathLike[str]) -> str | None:
    """The first problem in a checkpoint or model folder's weights ("model.safetensors: lm_head.weight holds
    3 non-finite value(s) (nan)"), or None when every weight is finite and sane.

    Reads safetensors tensor by tensor (peak memory: one tensor), .bin files memory-mapped; a DeepSpeed
    checkpoint without consolidated weights has its per-rank model states read instead. A folder with no
    weights at all is no evidence of anything: None.
    """
    folder = Path(folder)
    files = [p for pattern in WEIGHT_PATTERNS for p in sorted(folder.glob(pattern))]
    if not files:
        for name, tensor in _zero_checkpoint_tensors(folder):
            problem = _tensor_problem(name, tensor)
            if problem:
                return problem
        return None
    for path in files:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                for key in fh.keys():
                    problem = _tensor_problem(f"{path.name}: {key}", fh.get_tensor(key))
                    if problem:
                        return problem
        else:
            import torch

            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            for key, tensor in state.items():
                problem = _tensor_problem(f"{path.name}: {key}", tensor)
                if problem:
                    return problem
    return None


def _set_aside(folder: Path) -> Path:
    target = folder.with_name(folder.name + POISONED_SUFFIX)
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}{POISONED_SUFFIX}{n}")
    os.replace(folder, target)
    return target


class _Verdict:
    """What the guard saw: the first problem, its step, and the last checkpoint that was checked good."""

    def __init__(self, output_dir: Path, last_good: Path | None):
        self.output_dir = output_dir
        self.last_good = last_good
        self.problem: str | None = None
        self.step: int | None = None
        self.non_finite = False
        self.norms: list[float] = []

    def trip(self, step: int, problem: str, non_finite: bool = False) -> None:
        if self.problem is None:
            self.problem, self.step, self.non_finite = problem, step, non_finite

    @property
    def message(self) -> str | None:
        if self.problem is None:
            return None
        if self.last_good is not None and self.last_good.is_dir():
            where = (f"the last good checkpoint is {self.last_good}: lower [train] learning_rate in kimi-tui.toml "
                     "and resume from it (kimi-tui run train --resume)")
        else:
            where = (f"no good checkpoint is left in {self.output_dir}: lower [train] learning_rate in "
                     "kimi-tui.toml and train again")
        what = "went non-finite" if self.non_finite else "diverged"
        return f"training {what} at step {self.step} ({self.problem}); {where}"

    def raise_if_tripped(self, error: type[Exception] = NonFiniteTraining) -> None:
        """Raise ``error`` (the worker's own error class) with :attr:`message` if the guard tripped."""
        if self.problem is not None:
            raise error(self.message)


def _log_problem(logs: dict, norms: list[float]) -> tuple[str, bool] | None:
    """(why these logged values mean the run diverged, whether a value is NaN/inf), or None; healthy grad
    norms join ``norms``."""
    values = {}
    for key in ("loss", "eval_loss", "grad_norm"):
        value = logs.get(key)
        if hasattr(value, "item"):  # a 0-d tensor (DeepSpeed's global grad norm, some versions)
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values[key] = float(value)
            if not math.isfinite(value):
                return f"{key} {value}", True
    norm = values.get("grad_norm")
    if norm is None:
        return None
    if norm > GRAD_NORM_LIMIT:
        return f"grad_norm {norm:.3g}, above {GRAD_NORM_LIMIT:g}", False
    if len(norms) >= MEDIAN_MIN_HISTORY:
        median = statistics.median(norms[-MEDIAN_WINDOW:])
        if median > 0 and norm > GRAD_NORM_JUMP * median:
            return (f"grad_norm {norm:.3g}, {norm / median:.3g}x the median {median:.3g} of the last "
                    f"{len(norms[-MEDIAN_WINDOW:])} logged steps", False)
    norms.append(float(norm))
    return None


def training_guard(output_dir: str | os.PathLike[str], resume_from: str | os.PathLike[str] | None = None,
                   say=print):
    """A transformers TrainerCallback that stops training at the first non-finite sign (see the module).

    ``output_dir`` is the Trainer's; ``resume_from`` the checkpoint a resumed run started from (the last
    good one until a newer one is checked). ``say`` prints a line (rank 0 only). After ``trainer.train()``
    the worker calls ``guard.verdict.raise_if_tripped(WorkerError)``; before the final model is put in
    place, :func:`guard_final_model`.
    """
    from transformers import TrainerCallback

    verdict = _Verdict(Path(output_dir), Path(resume_from) if resume_from else None)

    class NonFiniteGuard(TrainerCallback):
        """Stops the Trainer when a logged value or a saved checkpoint goes non-finite."""

        def __init__(self):
            self.verdict = verdict

        def _stop(self, control, state, problem: str, non_finite: bool):
            verdict.trip(state.global_step, problem, non_finite)
            control.should_training_stop = True
            control.should_save = False  # never save the diverged state as a checkpoint
            control.should_evaluate = False
            if _is_rank0():
                say(f"stopping: {verdict.message}")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if verdict.problem is None and logs:
                found = _log_problem(logs, verdict.norms)
                if found:
                    self._stop(control, state, *found)

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            problem = None
            if _is_rank0() and folder.is_dir():
                problem = check_weights(folder)
            problem = _broadcast(problem)
            if problem is None:
                verdict.last_good = folder
                return
            if _is_rank0():
                aside = _set_aside(folder)
                problem += f"; the checkpoint is set aside as {aside.name}"
            self._stop(control, state, f"weights saved in checkpoint-{state.global_step}: {problem}",
                       NON_FINITE in problem)

    return NonFiniteGuard()


def guard_final_model(guard, folder: str | os.PathLike[str], error: type[Exception] = NonFiniteTraining,
                      step: int | None = None) -> None:
    """Check the final model's weights before the worker puts it in place; on every rank, the same verdict.
    A poisoned folder is set aside (``final.nonfinite``) and ``error`` raised naming the last good checkpoint."""
    verdict = guard.verdict
    verdict.raise_if_tripped(error)
    folder = Path(folder)
    problem = check_weights(folder) if _is_rank0() and folder.is_dir() else None
    problem = _broadcast(problem)
    if problem is None:
        return
    if _is_rank0():
        problem += f"; the model is set aside as {_set_aside(folder).name}"
    verdict.trip(step if step is not None else -1, f"weights of the final model: {problem}", NON_FINITE in problem)
    verdict.raise_if_tripped(error)
