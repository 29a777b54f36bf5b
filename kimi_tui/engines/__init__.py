"""Engines turn (stage, project) into a StagePlan: argv, env, cwd, inputs, outputs.

Plans are computed when a stage starts (the train plan needs the prepared data's
size, the evaluate plan the checkpoints that exist), and are complete: the run
directory's command.sh reproduces the stage by hand. Engines never run anything.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
from dataclasses import dataclass

from kimi_tui.errors import KimiTuiError

STAGES = ("prepare", "extract", "convert", "train", "export", "evaluate")


@dataclass(frozen=True)
class Schedule:
    """Optimizer steps and the save policy, computed as the HF Trainer will count them."""

    n_samples: int
    steps_per_epoch: int
    total_steps: int
    save_steps: int
    checkpoint_steps: tuple[int, ...]

    def to_dict(self) -> dict:
        return {
            "n_samples": self.n_samples,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "save_steps": self.save_steps,
            "checkpoint_steps": list(self.checkpoint_steps),
        }


def compute_schedule(
    n_samples: int,
    *,
    epochs: int,
    batch_size: int,
    gradient_accumulation_steps: int,
    num_gpus: int = 1,
    save_steps: int | str = "auto",
) -> Schedule:
    """Steps per epoch = ceil(ceil(N / (batch x GPUs)) / accumulation), as transformers counts them.

    The "auto" save policy saves every ceil(total / 3) steps and at the end, so
    every run of two steps or more leaves at least two checkpoints and the final model: the seed report's "save_steps 1000 on a 30-step run saved
    nothing" cannot happen.
    """
    if n_samples < 1:
        raise KimiTuiError("no training samples: run prepare and fix the errors it reports")
    batches = math.ceil(n_samples / (batch_size * num_gpus))
    per_epoch = max(1, math.ceil(batches / gradient_accumulation_steps))
    total = per_epoch * epochs
    every = max(1, math.ceil(total / 3)) if save_steps == "auto" else int(save_steps)
    # The Trainer also saves at the last step (transformers >= 4.40 does; older ones may not,
    # which is why an explicit save_steps is checked against the run's length).
    steps = tuple(sorted(set(range(every, total + 1, every)) | {total}))
    return Schedule(n_samples, per_epoch, total, every, steps)


def train_schedule(n_samples: int, train) -> Schedule:
    """[train]'s schedule on n samples, over every process of every machine (GPUs x nodes): the one
    count the train plan, the lint and doctor share."""
    return compute_schedule(n_samples, epochs=train.epochs, batch_size=train.batch_size,
                            gradient_accumulation_steps=train.gradient_accumulation_steps,
                            num_gpus=train.num_gpus * train.num_nodes, save_steps=train.save_steps)


OFFLINE_ENV = {
    # Never reach for a hub: an offline box would hang or download gigabytes.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}


def count_lines(path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def processes(n: int, device: str) -> str:
    """n training processes of one machine, for a plan's arithmetic: "2 GPUs", or "2 CPU processes" when
    engine.device = "cpu" (torchrun then starts gloo ranks and no GPU is used)."""
    if device == "cpu":
        return f"{n} CPU process{'es' if n > 1 else ''}"
    return f"{n} GPU{'s' if n > 1 else ''}"


def trains_on(train, device: str) -> str:
    """Where a train stage runs, as every engine's plan says it: "2 GPUs x 3 machines", "the CPU", ..."""
    if train.num_gpus == 1 and device != "cuda":
        where = "the CPU" if device == "cpu" else "1 GPU or the CPU"  # "auto": a GPU when the worker sees one
    else:
        where = processes(train.num_gpus, device)
    return where + (f" x {train.num_nodes} machines" if train.num_nodes > 1 else "")


def require_checkpoints(sched: Schedule, train, device: str = "auto") -> None:
    """Refuse a train plan whose save_steps would save nothing before the end (the seed's 1000 on 30 steps)."""
    if len(sched.checkpoint_steps) >= 2:
        return
    raise KimiTuiError(
        f"kimi-tui.toml [train] save_steps = {train.save_steps}: the run has {sched.total_steps} optimizer "
        f"steps ({sched.n_samples} samples, batch {train.batch_size} x accumulation "
        f"{train.gradient_accumulation_steps} on {trains_on(train, device)}, {train.epochs} epochs), so no "
        f"checkpoint would be saved before the end of training. Set save_steps = \"auto\" "
        f"or at most {max(1, sched.total_steps // 2)}, or train for more epochs."
    )


def schedule_args(train, sched: Schedule, device: str) -> list[str]:
    """The Trainer settings both engines' train workers take, as the plan computed them."""
    return [
        "--epochs", str(train.epochs),
        "--learning-rate", repr(train.learning_rate),
        "--gradient-accumulation-steps", str(train.gradient_accumulation_steps),
        "--weight-decay", repr(train.weight_decay),
        "--warmup-ratio", repr(train.warmup_ratio),
        "--lr-scheduler", train.lr_scheduler,
        "--save-steps", str(sched.save_steps),
        "--save-total-limit", str(train.save_total_limit),
        "--logging-steps", str(train.logging_steps),
        "--seed", str(train.seed),
        "--device", device,
    ]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(python: str, num_gpus: int, num_nodes: int = 1, rdzv_endpoint: str = "", job: str = "kimi-tui") -> list[str]:
    """``python -m torch.distributed.run`` for one machine (a free local port) or several (c10d
    rendezvous at rdzv_endpoint: every machine runs the same command and gets its rank there)."""
    argv = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(num_gpus)]
    if num_nodes > 1:
        if not rdzv_endpoint:
            raise KimiTuiError('kimi-tui.toml [train] num_nodes > 1 needs rdzv_endpoint = "HOST:PORT" '
                               "(an address every machine can reach)")
        return argv + ["--nnodes", str(num_nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", rdzv_endpoint,
                       "--rdzv_id", job]
    return argv + ["--nnodes", "1", "--master_addr", "127.0.0.1", "--master_port", str(free_port())]


def audio_unchanged(project) -> None:
    """Refuse a stage that reads the audio when a clip differs from what prepare recorded (size, length,
    rate): the KimiTuiError names each file and says to run prepare again. stat() only, unless changed."""
    from kimi_tui.data.fingerprints import require_unchanged  # soundfile, for a changed file: not at start-up

    require_unchanged(project.data_dir)


def prepare_plan(project):
    """Every engine's prepare stage: kimi-tui's own reader turns the transcripts (CSV or JSONL) and
    the audio into the Kimi-format JSONL, validated, with the clips' fingerprints."""
    import sys

    from kimi_tui.data.fingerprints import fingerprints_path
    from kimi_tui.runs import StagePlan

    return StagePlan(
        stage="prepare",
        argv=[sys.executable, "-m", "kimi_tui.workers.prepare", "--project", str(project.root)],
        env={"PYTHONUNBUFFERED": "1"},
        cwd=str(project.root),
        inputs=[str(project.config_path)],
        outputs=[str(project.train_jsonl), str(project.test_jsonl), str(project.findings_json),
                 str(fingerprints_path(project.data_dir))],
        description="read the transcripts and audio, validate, write Kimi-format JSONL",
    )


def evaluated_models(project, base: str | None, export: str | None) -> list[tuple[str, str]]:
    """(name, folder) of what the evaluate stage scores: the base model, the checkpoints chosen by
    [eval] checkpoints (complete ones only), the export; the same rule for every engine."""
    from kimi_tui.checkpoints import list_checkpoints

    ev = project.config.eval
    models: list[tuple[str, str]] = []
    if ev.include_base and base:
        models.append(("base", base))
    listed = list_checkpoints(project.training_dir)
    complete = [c for c in listed if c.complete]
    if ev.checkpoints == "all":
        chosen = complete
    elif ev.checkpoints == "last":
        chosen = complete[-1:]
    else:
        by_name = {c.name: c for c in complete}
        missing = [n for n in ev.checkpoints if n not in by_name]
        unusable = {c.name: c.problem for c in listed if c.name in missing and c.problem}
        if unusable:  # there, but cut short or unreadable: say which, so chmod is not mistaken for a retrain
            raise KimiTuiError(
                "kimi-tui.toml [eval] checkpoints: " + "; ".join(f"{n} is {why}" for n, why in unusable.items())
                + f" (complete ones: {', '.join(by_name) or 'none'})"
            )
        if missing:
            raise KimiTuiError(
                f"kimi-tui.toml [eval] checkpoints: {', '.join(missing)} not found (complete ones: "
                f"{', '.join(by_name) or 'none'})"
            )
        chosen = [by_name[n] for n in ev.checkpoints]
    models += [(c.name, str(c.path)) for c in chosen]
    if ev.include_export and export:
        models.append(("export", export))
    return models


def scoring_args(ev) -> list[str]:
    """The evaluate worker's scoring options from [eval]."""
    return (["--resamples", str(ev.bootstrap_resamples)] + (["--numbers"] if ev.normalise_numbers else [])
            + (["--fillers"] if ev.remove_fillers else []) + (["--mixed"] if ev.mixed_tokens else []))


# ---------------------------------------------------------------------------
# The registry

#: One line per engine: its kimi-tui.toml name -> "module:Class", imported only when the engine is
#: used, so reading this table (the config's validation, the TUI's start-up) never imports an engine.
ENGINES: dict[str, str] = {
    "whisper": "kimi_tui.engines.whisper:WhisperEngine",
    "kimi-audio": "kimi_tui.engines.kimi_audio:KimiAudioEngine",
}

#: Engines from outside the package: "name=module:Class" entries separated by commas, the module
#: importable by the interpreter (PYTHONPATH). An environment variable because the stages run in
#: processes of their own (python -m kimi_tui.pipeline, kimi_tui.supervisor) that inherit it.
ENGINES_ENV = "KIMI_TUI_ENGINES"

#: The engine `kimi-tui doctor` checks without --project: the official Kimi-Audio fine-tuning.
DOCTOR_DEFAULT_ENGINE = "kimi-audio"


def registered_engines() -> dict[str, str]:
    """name -> "module:Class" of every engine: the package's, then those of $KIMI_TUI_ENGINES (read on
    every call, so a test or a shell that sets it is seen at once; an entry there may replace one here)."""
    engines = dict(ENGINES)
    for entry in os.environ.get(ENGINES_ENV, "").replace(";", ",").split(","):
        if not entry.strip():
            continue
        name, sep, target = (part.strip() for part in entry.partition("="))
        module, colon, attr = target.partition(":")
        if not sep or not name or not colon or not module or not attr:
            raise KimiTuiError(f"{ENGINES_ENV}: {entry.strip()!r} is not name=module:Class "
                               "(e.g. toy=my_engines:ToyEngine)")
        engines[name] = target
    return engines


def engine_names() -> list[str]:
    return list(registered_engines())


def unknown_engine_text(name: str) -> str:
    """"unknown engine 'x'; did you mean 'whisper'?", or the registered names when none is close."""
    names = engine_names()
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "registered engines are " + ", ".join(f"'{n}'" for n in names)
    return f"unknown engine {name!r}; {hint}"


def get_engine(name: str):
    """The engine registered as ``name``, imported now; KimiTuiError (with a suggestion) for an unknown name."""
    target = registered_engines().get(name)
    if target is None:
        raise KimiTuiError(unknown_engine_text(name))
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise KimiTuiError(f"engine {name!r} is registered as {target!r}, which cannot be loaded: "
                           f"{type(exc).__name__}: {exc}") from None
    return cls()


def stages_of(project) -> tuple[str, ...]:
    """The stages the project's engine plans, in order: what the Run panel lists and `run all` runs.
    STAGES when the engine is not registered (the config's engine name is the lint's to report)."""
    try:
        return get_engine(project.config.engine.name).stages
    except KimiTuiError:
        return STAGES
