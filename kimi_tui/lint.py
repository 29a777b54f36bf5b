"""Preflight checks: what is wrong with a config *before* it burns GPU hours.

Why this exists: every failure in the seed report was knowable before training
started, from the config, the data and the machine alone: ``save_steps = 1000``
on a 30-step run saved nothing; eight GPUs on nine samples hung in NCCL; a
learning rate or a warm-up chosen for another data size wasted the run. Pydantic
validation (kimi_tui/config/) only knows one field at a time; these checks combine
fields with the data size and what is on disk.

Each finding names the setting (``train.save_steps``) so the Config panel can
put it next to the field, and says exactly what to change. Levels:

* ``error``: the run would fail or produce nothing useful (a stage refuses it,
  or no checkpoint would be saved);
* ``warning``: it would run, but the seed report (or common practice) says it is
  very likely a mistake;
* ``note``: a setting that has no effect here, or something worth knowing.

Headless (no textual), cheap enough to run on every keystroke in a worker: the
sample count is cached per file (path, size, mtime) and the machine's GPUs are
passed in by the caller (reading NVML is the caller's choice).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING

from kimi_tui.engines import processes, train_schedule
from kimi_tui.errors import KimiTuiError
from kimi_tui.levels import Level, worst_first
from kimi_tui.words import plural

if TYPE_CHECKING:  # only for type hints: lint never reads NVML itself
    from kimi_tui.gpu import GpuSnapshot
    from kimi_tui.project import Project

__all__ = ["Lint", "Level", "lint_project", "will_not_learn", "will_not_learn_text", "count_training_samples",
           "LR_RANGES"]


#: Learning rates outside these bounds are almost certainly typos or a schedule
#: meant for another model: a tiny model trained from scratch needs 1e-3-ish
#: (the sample memorises nine clips at 3e-3), a pretrained Whisper 1e-5-ish
#: (the seed used 3e-6 on nine clips to avoid over-fitting).
LR_RANGES = {"tiny": (1e-4, 1e-2), "pretrained": (1e-7, 1e-4)}

#: Fewer samples than this per GPU: communication outweighs compute and, in the
#: seed's case (8 GPUs, 9 samples), NCCL hung.
MIN_SAMPLES_PER_GPU = 100


@dataclass(frozen=True)
class Lint:
    level: Level
    field: str  # "train.save_steps"
    message: str
    fix: str
    #: The run would end "succeeded" having learned nothing (or saved nothing to compare): `run all`
    #: and `run train` ask before starting it (see will_not_learn).
    stops_learning: bool = dataclass_field(default=False, compare=False)

    def __str__(self) -> str:
        return f"{self.level}: {self.field}: {self.message} Fix: {self.fix}"


# ---------------------------------------------------------------------------
# Counting the training samples (cached: this runs on every keystroke)

_COUNT_CACHE: dict[tuple[str, int, int, str], int] = {}


def _cache_key(path: Path, extra: str = "") -> tuple[str, int, int, str] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (str(path), st.st_size, st.st_mtime_ns, extra)


def _count_jsonl(path: Path) -> int:
    key = _cache_key(path)
    if key is not None and key in _COUNT_CACHE:
        return _COUNT_CACHE[key]
    with open(path, "rb") as fh:
        count = sum(1 for line in fh if line.strip())
    if key is not None:
        _COUNT_CACHE[key] = count
    return count


def _count_csv(path: Path, encoding: str, id_column: str, text_column: str) -> int:
    """Data rows of a transcript CSV: every non-blank record, less a recognisable header."""
    from kimi_tui.data.transcripts import ID_COLUMN_NAMES, TEXT_COLUMN_NAMES, normalize_column_name, read_table

    key = _cache_key(path, f"{encoding}|{id_column}|{text_column}")
    if key is not None and key in _COUNT_CACHE:
        return _COUNT_CACHE[key]
    table = read_table(path, encoding)
    names = {normalize_column_name(n) for n in (*ID_COLUMN_NAMES, *TEXT_COLUMN_NAMES)}
    names |= {normalize_column_name(n) for n in (id_column, text_column) if n}
    header = [normalize_column_name(c) for c in table.rows[0].cells] if table.rows else []
    count = len(table.rows) - (1 if any(cell in names for cell in header) else 0)
    if key is not None:
        _COUNT_CACHE[key] = count
    return count


def count_training_samples(project: "Project") -> tuple[int | None, str]:
    """(samples, where the number comes from); (None, why not) when it cannot be known yet.

    The prepared data/train.jsonl is what training reads, so it wins; before
    prepare has run, the configured JSONL or CSV gives a close estimate (prepare
    may still drop rows it cannot use).
    """
    cfg = project.config.data
    candidates: list[tuple[str, Path | None]] = [("prepared", project.train_jsonl)]
    candidates.append(("jsonl", project.path(cfg.train_jsonl)))
    candidates.append(("csv", project.path(cfg.train_csv)))
    for kind, path in candidates:
        if path is None or not path.is_file():
            continue
        try:
            if kind == "csv":
                n = _count_csv(path, cfg.encoding, cfg.id_column, cfg.text_column)
            else:
                n = _count_jsonl(path)
        except (OSError, KimiTuiError, ValueError, UnicodeError):
            continue
        where = "data/train.jsonl" if kind == "prepared" else f"{path.name}, before prepare"
        return n, where
    return None, "no training data found yet"


# ---------------------------------------------------------------------------
# The checks


def _fmt_lr(value: float) -> str:
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _engine_of(project: "Project"):
    """The project's engine, or None when its registration cannot be loaded (_check_engine says why)."""
    from kimi_tui.engines import get_engine

    try:
        return get_engine(project.config.engine.name)
    except KimiTuiError:
        return None


def _check_engine(project: "Project", out: list[Lint]) -> None:
    """The engine's own findings on its settings (engine.model, its [table])."""
    from kimi_tui.engines import ENGINES_ENV, get_engine

    try:
        engine = get_engine(project.config.engine.name)
    except KimiTuiError as exc:
        out.append(Lint("error", "engine.name", str(exc), f"Fix the engine's registration ({ENGINES_ENV}), "
                        "or pick another engine."))
        return
    out.extend(engine.lint(project))


def _check_data(project: "Project", out: list[Lint]) -> None:
    data = project.config.data
    root = project.root
    for key, want_dir in (
        ("train_csv", False), ("train_audio", True), ("test_csv", False),
        ("test_audio", True), ("train_jsonl", False), ("test_jsonl", False),
    ):
        value = getattr(data, key)
        path = project.path(value)
        if path is None:
            continue
        if not path.exists():
            out.append(Lint(
                "error", f"data.{key}", f"{value!r} does not exist ({path}).",
                f"Correct the path (a relative path starts at the project folder {root}), or clear it.",
            ))
        elif want_dir and not path.is_dir():
            out.append(Lint(
                "error", f"data.{key}", f"{value!r} is a file; it must be the folder holding the audio.",
                "Give the folder that holds the audio files (it is searched recursively).",
            ))
        elif not want_dir and path.is_dir():
            out.append(Lint(
                "error", f"data.{key}", f"{value!r} is a folder; it must be a file.",
                "Give the transcript file itself (e.g. data/train.csv).",
            ))
    if not data.train_csv and not data.train_jsonl:
        out.append(Lint(
            "error", "data.train_csv", "no training data is configured.",
            "Set data.train_csv and data.train_audio, or data.train_jsonl.",
        ))
    if data.train_csv and not data.train_audio:
        out.append(Lint(
            "error", "data.train_audio", "data.train_csv is set but not the folder holding its audio.",
            "Set data.train_audio to the folder with the training audio.",
        ))
    if data.test_csv and not data.test_audio:
        out.append(Lint(
            "error", "data.test_audio", "data.test_csv is set but not the folder holding its audio.",
            "Set data.test_audio to the folder with the test audio.",
        ))
    if not data.test_csv and not data.test_jsonl:
        out.append(Lint(
            "note", "data.test_csv", "no test data: evaluation can only score the training data.",
            "Set data.test_csv and data.test_audio (or data.test_jsonl) to held-out clips.",
        ))


def _check_schedule(project: "Project", n: int | None, where: str, out: list[Lint]) -> None:
    t = project.config.train
    if n is None:
        return
    if n < 1:
        out.append(Lint(
            "error", "data.train_csv", f"{where} holds no training samples.",
            "Run prepare and fix what it reports, or point data.train_csv at the right file.", stops_learning=True,
        ))
        return
    sched = train_schedule(n, t)
    total = sched.total_steps
    how = (
        f"{n} samples in {where} / (batch {t.batch_size} x {processes(t.num_gpus * t.num_nodes, project.config.engine.device)}) "
        f"/ accumulation "
        f"{t.gradient_accumulation_steps} = {sched.steps_per_epoch} per epoch, x {plural(t.epochs, 'epoch')}"
    )
    during = [s for s in sched.checkpoint_steps if s < total]
    if not during:
        if total < 2:
            fix = "Train for more epochs, or lower batch_size / gradient_accumulation_steps."
        else:
            every = max(1, math.ceil(total / 3))
            fix = f'Set save_steps = "auto" (saves every {plural(every, "step")}) or at most {total // 2}.'
        out.append(Lint(
            "error", "train.save_steps",
            f"save_steps = {t.save_steps} but the run has only {total} optimizer steps ({how}). "
            "No checkpoint would be saved before the end, and the train stage refuses to start.",
            fix, stops_learning=True,
        ))
    elif len(during) == 1 and t.save_steps != "auto":
        out.append(Lint(
            "warning", "train.save_steps",
            f"save_steps = {t.save_steps} on a {total}-step run saves only one checkpoint "
            f"(checkpoint-{during[0]}) before the end: nothing to compare or fall back to.",
            f'Set save_steps = {max(1, math.ceil(total / 3))} or "auto" (three saves spread over the run).',
        ))
    n_saves = len(sched.checkpoint_steps)
    if n_saves > 20 and t.save_total_limit == 0:
        out.append(Lint(
            "warning", "train.save_total_limit",
            f"the run saves {n_saves} checkpoints (every {sched.save_steps} of {total} steps) and keeps them all.",
            "Set save_total_limit (e.g. 5) or a larger save_steps; a large model's checkpoints fill a disk fast.",
        ))
    if t.logging_steps > total:
        out.append(Lint(
            "warning", "train.logging_steps",
            f"logging_steps = {t.logging_steps} but the run has only {total} steps: no loss would be logged.",
            f"Set logging_steps = 1 (or at most {max(1, total // 10)}).",
        ))

    if t.num_gpus > 1:
        per_step = t.num_gpus * t.batch_size * t.gradient_accumulation_steps
        per_gpu = n / t.num_gpus
        if n < per_step:
            out.append(Lint(
                "warning", "train.num_gpus",
                f"{t.num_gpus} GPUs x batch {t.batch_size} x accumulation {t.gradient_accumulation_steps} = "
                f"{per_step} samples per step, but there are only {n}: some GPUs get no data and the run can "
                "hang in NCCL (the seed's 8-GPU run on 9 samples did).",
                "Train on one GPU: set train.num_gpus = 1.",
            ))
        elif per_gpu < MIN_SAMPLES_PER_GPU:
            out.append(Lint(
                "warning", "train.num_gpus",
                f"only about {per_gpu:.0f} samples per GPU ({n} on {t.num_gpus} GPUs): communication outweighs "
                "compute and small multi-GPU runs have hung in NCCL.",
                "Train on one GPU: set train.num_gpus = 1.",
            ))

    if t.eval_ratio > 0:
        held = math.floor(n * t.eval_ratio)
        if held < 1:
            out.append(Lint(
                "warning", "train.eval_ratio",
                f"eval_ratio = {t.eval_ratio:g} of {n} samples holds out {n * t.eval_ratio:.2f} samples: "
                "fewer than one, so there is no validation set.",
                f"Set eval_ratio = 0 (the seed report's choice for 9 samples) or at least {1 / n:.2g}.",
            ))
        elif n - held < 1:
            out.append(Lint(
                "error", "train.eval_ratio",
                f"eval_ratio = {t.eval_ratio:g} holds out {held} of {n} samples, leaving none to train on.",
                "Set eval_ratio = 0, or add training data.", stops_learning=True,
            ))

    warmup = total * t.warmup_ratio
    if 0 < t.warmup_ratio < 0.5 and warmup < 1 and total > 1 and t.lr_scheduler != "constant":
        out.append(Lint(
            "note", "train.warmup_ratio",
            f"warmup_ratio = {t.warmup_ratio:g} of {total} steps is less than one step: no warm-up happens.",
            f"Set warmup_ratio to at least {1 / total:.2g} if you want a warm-up, or 0.",
        ))


def _check_checkpoint_names(project: "Project", n: int | None, out: list[Lint]) -> None:
    names = project.config.eval.checkpoints
    if not isinstance(names, list) or not names:
        return
    on_disk = _complete_checkpoints(project.training_dir)
    if on_disk:
        missing = [name for name in names if name not in on_disk]
        if missing:
            out.append(Lint(
                "warning", "eval.checkpoints",
                f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not among the complete checkpoints "
                f"in training/ ({', '.join(sorted(on_disk, key=_step_of)) or 'none'}).",
                'Pick names from the Checkpoints panel, or set eval.checkpoints = "all".',
            ))
        return
    if n is None or n < 1:
        return
    t = project.config.train
    sched = train_schedule(n, t)
    expected = {f"checkpoint-{s}" for s in sched.checkpoint_steps}
    missing = [name for name in names if name not in expected]
    if missing:
        out.append(Lint(
            "warning", "eval.checkpoints",
            f"{', '.join(missing)} will not exist: this schedule saves "
            f"{', '.join(f'checkpoint-{s}' for s in sched.checkpoint_steps)}.",
            'Set eval.checkpoints = "all" (or "last"), or name checkpoints this schedule saves.',
        ))


def _complete_checkpoints(training_dir: Path) -> set[str]:
    """Names of complete checkpoint-N folders, by stat only (list_checkpoints also sums sizes: too slow
    to run on every keystroke next to a run's 100 GB checkpoints): the workers' own rule."""
    from kimi_tui.workers.runtime import complete_checkpoints

    return {folder.name for folder in complete_checkpoints(training_dir).values()}


def _step_of(name: str) -> int:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _check_training(project: "Project", gpus: "GpuSnapshot | None", out: list[Lint]) -> None:
    cfg = project.config
    t = cfg.train
    device = cfg.engine.device
    engine = _engine_of(project)
    tiny = engine is not None and engine.from_scratch(cfg)
    # bf16 = false is advised only where fp32 can train (the kimi-audio engine's Whisper runs in bf16 only).
    fp32_trains = engine is None or engine.trains_in_fp32

    if t.bf16 and device == "cpu" and fp32_trains:
        out.append(Lint(
            "warning", "train.bf16", 'bf16 = true with engine.device = "cpu": bfloat16 on a CPU is slow or unsupported.',
            'Set bf16 = false, or engine.device = "cuda" on a GPU that supports bfloat16.',
        ))
    if t.warmup_ratio >= 0.5:
        out.append(Lint(
            "warning", "train.warmup_ratio",
            f"warmup_ratio = {t.warmup_ratio:g}: the learning rate is still rising for half the run or more.",
            "Set warmup_ratio = 0.1 (the seed report's value) or 0.05.",
        ))
    if t.lr_scheduler == "constant" and t.warmup_ratio > 0:
        out.append(Lint(
            "note", "train.lr_scheduler",
            f'lr_scheduler = "constant" ignores warmup_ratio = {t.warmup_ratio:g}.',
            'Use lr_scheduler = "constant_with_warmup" to keep a warm-up, or set warmup_ratio = 0.',
        ))

    low, high = LR_RANGES["tiny" if tiny else "pretrained"]
    lr = t.learning_rate
    if not low <= lr <= high:
        if tiny:
            why = f"a tiny model trained from scratch learns at {_fmt_lr(low)}..{_fmt_lr(high)}"
            fix = "Set learning_rate = 3e-3 (what the sample uses), or apply the tiny-cpu-sample preset."
        else:
            why = f"fine-tuning a pretrained model wants {_fmt_lr(low)}..{_fmt_lr(high)}"
            fix = "Set learning_rate = 1e-5 (usual for Whisper), or 3e-6 on a handful of clips (the seed's choice)."
        direction = "high" if lr > high else "low"
        out.append(Lint("warning", "train.learning_rate", f"learning_rate = {lr:g} looks far too {direction}: {why}.", fix,
                        stops_learning=True))

    ds = cfg.deepspeed
    on_cpu = device == "cpu" or (device == "auto" and gpus is not None and not gpus.available)
    if ds.enabled and ds.offload_param and ds.stage != 3:
        out.append(Lint(
            "warning", "deepspeed.offload_param", "offload_param only works with ZeRO stage 3.",
            "Set deepspeed.stage = 3, or offload_param = false.",
        ))
    if engine is not None:
        out.extend(engine.lint_training(project, on_cpu))

    if gpus is None:
        return
    if gpus.available:
        count = len(gpus.gpus)
        if t.num_gpus > count:
            out.append(Lint(
                "error", "train.num_gpus", f"num_gpus = {t.num_gpus} but this machine has {plural(count, 'GPU')}.",
                f"Set train.num_gpus = {count}.",
            ))
    else:
        if device == "cuda":
            out.append(Lint(
                "warning", "engine.device", f'device = "cuda" but no GPU is visible here ({gpus.reason}).',
                'Run on a machine with an NVIDIA GPU, or set engine.device = "auto" to fall back to the CPU.',
            ))
        if t.num_gpus > 1 and device != "cpu":  # on the CPU num_gpus counts gloo processes
            out.append(Lint(
                "warning", "train.num_gpus", f"num_gpus = {t.num_gpus} but no GPU is visible here ({gpus.reason}).",
                "Set train.num_gpus = 1, or run on the GPU machine.",
            ))
        if t.bf16 and device != "cpu" and fp32_trains:
            out.append(Lint(
                "warning", "train.bf16", f"bf16 = true but no GPU is visible here ({gpus.reason}).",
                "Set bf16 = false when training on a CPU.",
            ))
        if not tiny and device == "auto":
            out.append(Lint(
                "note", "engine.device", "no GPU is visible here: a pretrained model would train on the CPU, very slowly.",
                "Run on the GPU machine (kimi-tui works over SSH in tmux).",
            ))


#: The first DeepSpeed known here whose ZeRO-3 parameter gather waits for every one of its asynchronous
#: all-gathers (deepspeedai/DeepSpeed#8539; 0.19.8 has it, 0.16.9 - the official code's pin - does not).
ZERO3_GLOO_GATHER_FIXED = (0, 19, 8)


def zero3_cpu_gather_finding(deepspeed_version: str | None, processes: int, python: str) -> Lint | None:
    """ZeRO-3 over several CPU (gloo) processes with a DeepSpeed that loses parameter all-gathers: refused.

    Such a DeepSpeed launches one async all-gather per parameter of a group and waits for the last only;
    on CUDA the stream orders them, on gloo each runs on a thread of its own and the CPU's synchronize()
    does nothing, so the gathered weight can be read, or loaded into by transformers' from_pretrained,
    before its gather lands. The weight then keeps the uninitialised memory it was built with (measured
    with the official code and deepspeed 0.16.9 on two CPU ranks: one weight of 7e9-5e13 or 1e37 in 2
    fresh loads of 3, NaN a few steps later); ZeRO-2 builds no sharded weights and is not affected.
    """
    if processes < 2 or not deepspeed_version:
        return None
    import re

    match = re.match(r"(\d+)\.(\d+)\.(\d+)", deepspeed_version)
    if match is None or tuple(map(int, match.groups())) >= ZERO3_GLOO_GATHER_FIXED:
        return None  # a version that names no release ("installed") is given the benefit of the doubt
    fixed = ".".join(map(str, ZERO3_GLOO_GATHER_FIXED))
    return Lint(
        "error", "deepspeed.stage",
        f"ZeRO-3 over {processes} CPU processes with deepspeed {deepspeed_version}: its parameter all-gather waits "
        "only for the last of its asynchronous gloo all-gathers, so a weight can be loaded or used before its "
        "gather lands and keep uninitialised memory (weights of 1e9-1e38, then NaN; deepspeedai/DeepSpeed#8539).",
        f"{python} -m pip install 'deepspeed>={fixed}', or set deepspeed.stage = 2 (or train.num_gpus = 1) "
        "to train on the CPU.",
    )


def _installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def deepspeed_installed() -> bool:
    """Found without importing it: the TUI process never imports deepspeed (it pulls in torch)."""
    import importlib.util

    return importlib.util.find_spec("deepspeed") is not None


def lint_project(project: "Project", *, gpus: "GpuSnapshot | None" = None) -> list[Lint]:
    """Every finding for ``project`` (its config as given, which may be unsaved), errors first.

    ``gpus`` (from :func:`kimi_tui.gpu.read_gpus`) adds checks against this
    machine; without it only the config and the files are looked at.
    """
    out: list[Lint] = []
    _check_engine(project, out)
    _check_data(project, out)
    n, where = count_training_samples(project)
    _check_schedule(project, n, where, out)
    _check_checkpoint_names(project, n, out)
    _check_training(project, gpus, out)
    if n is None and (project.config.data.train_csv or project.config.data.train_jsonl):
        out.append(Lint(
            "note", "train.save_steps",
            "the number of training samples is not known yet, so the step count and save policy are not checked.",
            "Fix the data paths above, or run the prepare stage.",
        ))
    return worst_first(out)


#: The stages that train, before which `run` asks about a config that will not learn.
TRAINING_STAGES = ("all", "train")


def will_not_learn(project: "Project", stage: str = "all") -> list[Lint]:
    """The findings that mean a ``stage`` run would end "succeeded" without learning: a learning
    rate far outside what this model learns at, no training sample left, no checkpoint saved
    before the end (zero epochs cannot be written: the config refuses epochs < 1).

    Why a separate question: a run of the seed's lr 3e-6 on the tiny model took its full time and
    said "all stages succeeded" with the CER where it started, while the Config panel's lint had said
    why. Only the schedule checks run (the data size is cached, no environment is probed), so the
    CLI and the TUI can ask this as a run starts; empty for a stage that does not train."""
    if stage not in TRAINING_STAGES:
        return []
    out: list[Lint] = []
    n, where = count_training_samples(project)
    _check_schedule(project, n, where, out)
    _check_training(project, None, out)
    return [finding for finding in out if finding.stops_learning]


def will_not_learn_text(stage: str, findings: list[Lint]) -> str:
    """The question `run` asks before such a run, one finding (and its fix) a line."""
    lines = [f"This {stage} run will very likely learn nothing:"]
    for finding in findings:
        lines.append(f"  {finding.field}: {finding.message}")
        lines.append(f"    Fix: {finding.fix}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - manual use
    """python -m kimi_tui.lint [PROJECT_DIR]: print the findings; exit 1 when there is an error."""
    import sys

    from kimi_tui.gpu import read_gpus
    from kimi_tui.project import Project

    args = sys.argv[1:] if argv is None else argv
    try:
        project = Project.load(args[0] if args else os.getcwd())
    except KimiTuiError as exc:
        print(exc, file=sys.stderr)
        return 2
    findings = lint_project(project, gpus=read_gpus())
    for finding in findings:
        print(finding)
    return 1 if any(f.level == "error" for f in findings) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
