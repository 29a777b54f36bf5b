"""Preflight for the whisper engine: what would stop its stages, found before they run.

`kimi-tui doctor` was written for the official Kimi-Audio code, and on a whisper
project (the bundled sample) it reported that code's needs: transformers < 5, a
checkout, flash-attn, none of which the whisper engine uses. This engine needs
other things: torch and transformers importable in kimi-tui's own interpreter
(its workers run there), a model source (nothing for "tiny"; config.json, the
feature extractor, the tokenizer and the weights for a local folder), a
schedule that saves checkpoints, a device its torch can use, and room on the
disk and in memory for the features, the checkpoints and the training state.

The project-level rules are :func:`kimi_tui.lint.lint_project`'s (the Config
panel shows the same findings); this module adds what only a probe of the
environment and the machine can tell, and the sizes. Like the Kimi-Audio
preflight it imports no torch: the environment is probed in one subprocess, and
the findings are yielded as they are known, so the slow probe never hides the
instant ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from kimi_tui import memory
from kimi_tui.engines import count_lines, processes, train_schedule
from kimi_tui.engines.probe import (
    PROBE_TIMEOUT_S, TORCH_SECTION, TRANSFORMERS_SECTION, host_ram_gb, modules_section, probe_code, probe_interpreter,
    version_tuple,
)
from kimi_tui.levels import FindingsSoFar, worst_first
from kimi_tui.lint import Lint, count_training_samples, lint_project

if TYPE_CHECKING:
    from kimi_tui.gpu import GpuSnapshot
    from kimi_tui.project import Project

__all__ = ["iter_preflight", "preflight", "probe_environment", "PROBE_CODE", "whisper_parameters", "TRANSFORMERS_MIN"]

#: pyproject's floor: the workers' Trainer arguments and Whisper classes need it.
TRANSFORMERS_MIN = (4, 46)
#: What a local model folder must hold, per stage that reads it.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
#: The tiny model before convert has built it: the worker's defaults, a Chinese character vocabulary
#: of a few thousand, and the longest (30 s) chunk. It is a few million parameters whatever the data.
_TINY_ASSUMED_VOCAB = 5000

# Runs in kimi-tui's interpreter, the one the whisper workers run in (engines/probe.py assembles it).
PROBE_CODE = probe_code(
    TORCH_SECTION,
    TRANSFORMERS_SECTION,
    r"""    if tf is not None:
        for name in ("WhisperForConditionalGeneration", "WhisperFeatureExtractor", "Trainer"):
            try:
                getattr(tf, name)
            except BaseException as exc:
                out["transformers_error"] = f"transformers.{name}: {type(exc).__name__}: {exc}"
                break
""",
    modules_section("accelerate", "tokenizers", "soundfile", "torchaudio"),
)


def probe_environment(python: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> dict:
    """What the whisper workers' interpreter (kimi-tui's own) can import, in one subprocess; never raises."""
    return probe_interpreter(python or sys.executable, timeout, code=PROBE_CODE)


def whisper_parameters(config: dict) -> int:
    """Parameters of a WhisperForConditionalGeneration from its config.json (proj_out tied to the embeddings)."""
    d = int(config.get("d_model", 768))
    mels = int(config.get("num_mel_bins", 80))
    vocab = int(config.get("vocab_size", 51865))
    src, tgt = int(config.get("max_source_positions", 1500)), int(config.get("max_target_positions", 448))
    enc_ffn, dec_ffn = int(config.get("encoder_ffn_dim", 4 * d)), int(config.get("decoder_ffn_dim", 4 * d))
    attention = 4 * d * d + 4 * d  # q, k, v, out (k has no bias)
    enc_layer = attention + 2 * d * enc_ffn + enc_ffn + d + 4 * d  # + two layer norms
    dec_layer = 2 * attention + 2 * d * dec_ffn + dec_ffn + d + 6 * d
    encoder = mels * d * 3 + d + d * d * 3 + d + src * d + int(config.get("encoder_layers", 12)) * enc_layer + 2 * d
    decoder = vocab * d + tgt * d + int(config.get("decoder_layers", 12)) * dec_layer + 2 * d
    return encoder + decoder


def _read_config(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _model_config(project: "Project") -> tuple[dict, str]:
    """The config of the model training will start from, and what it is (for the messages)."""
    converted = _read_config(project.base_model_dir / "config.json")
    if converted is not None:
        return converted, f"the converted model in {project.base_model_dir}"
    engine = project.config.engine
    if engine.model != "tiny":
        path = project.path(engine.model)
        found = _read_config(path / "config.json") if path is not None else None
        if found is not None:
            return found, str(path)
    from kimi_tui.workers.whisper_worker import TINY_D_MODEL, TINY_HEADS, TINY_LAYERS, TINY_MAX_TARGET_POSITIONS

    return {"d_model": TINY_D_MODEL, "encoder_layers": TINY_LAYERS, "decoder_layers": TINY_LAYERS,
            "encoder_attention_heads": TINY_HEADS, "num_mel_bins": 80, "vocab_size": _TINY_ASSUMED_VOCAB,
            "max_source_positions": 1500, "max_target_positions": TINY_MAX_TARGET_POSITIONS}, \
        "the tiny model (built at convert; sized for 30 s clips)"


def _gb(n_bytes: float) -> str:
    gb = n_bytes / memory.GB
    return f"{gb:.0f} GB" if gb >= 10 else f"{gb:.1f} GB" if gb >= 0.1 else f"{n_bytes / 1e6:.0f} MB"


# ---------------------------------------------------------------------------
# The checks


def _check_model_source(project: "Project", out: list[Lint]) -> None:
    """A local model folder holds what extract (feature extractor), convert (tokenizer, weights) read.
    Whether it exists and is a Whisper config.json is lint's engine check."""
    model = project.config.engine.model
    if model == "tiny":
        out.append(Lint("note", "engine.model", 'model = "tiny": built at convert from the training transcripts; '
                        "nothing to download.", ""))
        return
    path = project.path(model)
    if path is None or not (path / "config.json").is_file():
        return  # lint_project said so
    from kimi_tui.workers.whisper_worker import has_feature_extractor, has_tokenizer

    missing = []
    if not has_feature_extractor(path):
        missing.append("preprocessor_config.json (the extract stage reads the feature extractor)")
    if not has_tokenizer(path):
        missing.append("tokenizer_config.json with tokenizer.json or vocab.json (convert reads the tokenizer)")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        missing.append(f"the weights ({' or '.join(WEIGHT_FILES[:2])}; convert loads them)")
    if missing:
        out.append(Lint(
            "error", "engine.model", f"{path} has config.json but lacks " + "; ".join(missing) + ".",
            "Download the whole checkpoint folder (e.g. huggingface-cli download openai/whisper-small "
            "--local-dir DIR) and point engine.model at it.",
        ))


def _sizes(project: "Project") -> dict:
    config, what = _model_config(project)
    params = whisper_parameters(config)
    frames = 2 * int(config.get("max_source_positions", 1500))
    mels = int(config.get("num_mel_bins", 80))
    return {"params": params, "what": what, "config": config, "frames": frames, "mels": mels,
            "feature_bytes": mels * frames * 2}  # float16 log-mel per clip


def _check_schedule_and_data(project: "Project", n: int | None, where: str, sizes: dict, out: list[Lint]):
    """The numbers the train plan will use (WhisperEngine.schedule: GPUs x machines), said once."""
    if n is None or n < 1:
        return None
    t = project.config.train
    sched = train_schedule(n, t)
    test = count_lines(project.test_jsonl) if project.test_jsonl.is_file() else None
    data = project.config.data
    out.append(Lint(
        "note", "data.train_jsonl" if data.train_jsonl and not data.train_csv else "data.train_csv",
        f"{n:,} training samples ({where})" + (f", {test:,} test samples" if test is not None else "")
        + f"; {sizes['what']}: ~{sizes['params'] / 1e6:,.1f} M parameters.",
        "",
    ))
    out.append(Lint(
        "note", "train.save_steps",
        f"{sched.total_steps} optimizer steps ({sched.steps_per_epoch} per epoch x {t.epochs}); checkpoints at steps "
        f"{', '.join(map(str, sched.checkpoint_steps[:8]))}{' ...' if len(sched.checkpoint_steps) > 8 else ''}.",
        "",  # a schedule that saves nothing before the end is lint's error, with its fix
    ))
    return sched


def _existing_parent(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _check_disk(project: "Project", n: int | None, sched, sizes: dict, output_dir: Path | None,
                out: list[Lint]) -> None:
    """Features (float16 log-mels), the base model, each kept checkpoint (fp32 weights + AdamW state),
    the final model and the export, against the free space where training writes."""
    if sched is None:
        return
    t, ds = project.config.train, project.config.deepspeed
    weights = 4 * sizes["params"]
    # A checkpoint: the fp32 weights and AdamW's two moments; a ZeRO checkpoint adds the fp32 master copy.
    per_ckpt = weights * (4 if ds.enabled else 3)
    n_saves = len(sched.checkpoint_steps)
    kept = min(n_saves, t.save_total_limit) if t.save_total_limit > 0 else n_saves
    need = kept * per_ckpt + 2 * weights  # + final + export
    parts = [f"{kept} checkpoint(s) x ~{_gb(per_ckpt)}", f"final model and export ~{_gb(2 * weights)}"]
    if not (project.base_model_dir / "config.json").is_file():
        need += weights
        parts.append(f"base model ~{_gb(weights)}")
    if not (project.features_dir / "train.pt").is_file():
        test = count_lines(project.test_jsonl) if project.test_jsonl.is_file() else 0
        features = (n + test) * sizes["feature_bytes"]
        need += features
        parts.append(f"features ~{_gb(features)}")
    target = Path(output_dir).expanduser() if output_dir else project.training_dir
    anchor = _existing_parent(target.resolve())
    if anchor is None:
        return
    try:
        free = shutil.disk_usage(anchor).free
    except OSError:
        return
    summary = f"{', '.join(parts)} = ~{_gb(need)}; {anchor} has {_gb(free)} free"
    if need > free:
        fit = max(0, int((free - (need - kept * per_ckpt)) // per_ckpt)) if per_ckpt else kept
        out.append(Lint(
            "error", "train.save_total_limit", f"the run needs {summary}: it would stop with the disk full.",
            (f"Set save_total_limit = {fit} (or a larger save_steps), or free space on {anchor}." if fit >= 1
             else f"Free space on {anchor}, or move the project to a larger disk."),
        ))
    else:
        out.append(Lint("note", "train.save_total_limit", f"disk: {summary}.", ""))


def _check_environment(probe: dict, exe: str, out: list[Lint]) -> None:
    if "error" in probe:
        out.append(Lint(
            "warning" if probe.get("kind") == "timeout" else "error", "engine.name",
            f"{probe['error']}: the whisper engine's stages run in this interpreter.",
            f"Check that {exe} starts (`{exe} -c 'import torch, transformers'`), or reinstall kimi-tui there.",
        ))
        return
    pin = {"torch": "torch>=2.1", "transformers": "transformers>=4.46", "accelerate": "accelerate>=0.26",
           "tokenizers": "tokenizers", "soundfile": "soundfile>=0.12"}
    why = {"torch": "every whisper stage", "transformers": "the Whisper model, feature extractor and Trainer",
           "accelerate": "the Trainer", "tokenizers": "the tiny model's character tokenizer",
           "soundfile": "reading the audio"}
    for name, requirement in pin.items():
        if not probe.get(name) or (name == "transformers" and probe.get("transformers_error")):
            out.append(Lint(
                "error", "engine.name",
                f"{name} is not usable in {exe}, which runs the whisper engine ({why[name]}): "
                f"{probe.get(name + '_error') or 'not installed'}.",
                f'{exe} -m pip install "{requirement}" (or reinstall kimi-tui in this environment).',
            ))
    version = version_tuple(probe.get("transformers"))
    if version is not None and version < TRANSFORMERS_MIN:
        out.append(Lint(
            "error", "engine.name",
            f"transformers {probe['transformers']} in {exe} is older than 4.46, which kimi-tui's workers need.",
            f'{exe} -m pip install "transformers>=4.46"',
        ))
    if probe.get("torch") and not probe.get("torchaudio"):
        out.append(Lint(
            "warning", "engine.name",
            f"torchaudio is not importable in {exe} ({probe.get('torchaudio_error') or 'not installed'}): clips "
            "that are not 16 kHz cannot be resampled.",
            f'{exe} -m pip install "torchaudio>=2.1" (the build matching torch {probe["torch"]}).',
        ))
    if probe.get("torch") and probe.get("transformers"):
        cuda = "CUDA" if probe.get("cuda") else "no CUDA"
        out.append(Lint(
            "note", "engine.name",
            f"{exe}: torch {probe['torch']} ({cuda}), transformers {probe['transformers']}.", "",
        ))


def _check_device(project: "Project | None", probe: dict, gpus: "GpuSnapshot | None", exe: str,
                  out: list[Lint]) -> str:
    """Where training runs, as the worker's resolve_device will decide: "cuda" or "cpu"."""
    device = project.config.engine.device if project is not None else "auto"
    t = project.config.train if project is not None else None
    cuda = bool(probe.get("cuda"))
    why = probe.get("cuda_error") or probe.get("error") or "torch.cuda.is_available() is False"
    nvml_gpus = len(gpus.gpus) if gpus is not None and gpus.available else 0
    if device == "cuda" and not cuda and "error" not in probe:
        out.append(Lint(
            "error", "engine.device",
            f'device = "cuda" but torch {probe.get("torch")} in {exe} has no usable CUDA device ({why}): every '
            "stage would stop with \"--device cuda but no CUDA device is available\".",
            'Set engine.device = "auto" (the CPU where there is no GPU), or install the CUDA build of torch '
            "matching this machine's driver.",
        ))
    elif device != "cpu" and not cuda and nvml_gpus and probe.get("torch"):
        out.append(Lint(
            "warning", "engine.device",
            f"NVML sees {nvml_gpus} GPU(s) but torch {probe.get('torch')} in {exe} cannot use CUDA ({why}): "
            "training would run on the CPU.",
            "Install the CUDA build of torch matching this machine's driver (pytorch.org lists the index URLs).",
        ))
    where = "cuda" if device != "cpu" and cuda else "cpu"
    devices = probe.get("cuda_devices") or []
    if where == "cuda" and t is not None:
        if t.bf16 and probe.get("bf16") is False:
            out.append(Lint(
                "error", "train.bf16", f"bf16 = true but {devices[0]['name'] if devices else 'this GPU'} does "
                "not support bfloat16: the train stage would refuse it.", "Set train.bf16 = false.",
            ))
        if devices and t.num_gpus > len(devices) and not nvml_gpus:  # with NVML, lint says so
            out.append(Lint(
                "error", "train.num_gpus", f"num_gpus = {t.num_gpus} but torch sees {len(devices)} GPU(s).",
                f"Set train.num_gpus = {len(devices)}.",
            ))
    if where == "cuda":
        names = sorted({d["name"] for d in devices}) or ["a GPU"]
        size = min(d["memory_total"] for d in devices) if devices else None
        how = processes(t.num_gpus, "cuda") if t is not None else "the GPU"
        what = f"on {how} ({', '.join(names)}" + (f", {_gb(size)} each)" if size else ")")
    else:
        cores = os.cpu_count() or 1
        what = (f"on the CPU ({cores} cores)" if t is None or t.num_gpus == 1
                else f"on {processes(t.num_gpus, 'cpu')} ({cores} cores)")
    out.append(Lint("note", "engine.device", f'device = "{device}": training runs {what}.', ""))
    return where


def _check_memory(project: "Project", n: int | None, sizes: dict, where: str, probe: dict,
                  gpus: "GpuSnapshot | None", gpu_memory_gb: float | None, host_ram: float | None,
                  out: list[Lint]) -> None:
    """Roughly: AdamW training state (16 bytes a parameter: fp32 weights, gradients, two moments) and
    activations (~34 x sequence x width bytes a layer and sample in 16-bit, twice in fp32, with
    SDPA attention) per GPU; on the host, the whole feature file the train stage loads, plus the
    model itself when it trains on the CPU."""
    t, cfg = project.config.train, sizes["config"]
    d = int(cfg.get("d_model", 768))
    src, tgt = int(cfg.get("max_source_positions", 1500)), min(int(cfg.get("max_target_positions", 448)), 448)
    act_per_sample = 34 * d * (src * int(cfg.get("encoder_layers", 12)) + tgt * int(cfg.get("decoder_layers", 12)))
    act_per_sample += tgt * int(cfg.get("vocab_size", 51865)) * 4 * 2  # logits and their softmax
    act = act_per_sample * t.batch_size * (1 if t.bf16 else 2)
    states = 16 * sizes["params"]
    if project.config.deepspeed.enabled and t.num_gpus > 1:
        states = 4 * sizes["params"] + 12 * sizes["params"] / t.num_gpus  # ZeRO shards the optimizer state
    features = (n or 0) * sizes["feature_bytes"]
    train_bytes = states + act
    label = f"~{_gb(states)} training state + ~{_gb(act)} activations for batch {t.batch_size}"
    if where == "cuda":
        size = gpu_memory_gb * memory.GB if gpu_memory_gb else None
        if size is None:
            devices = probe.get("cuda_devices") or []
            if devices:
                size = min(x["memory_total"] for x in devices)
            elif gpus is not None and gpus.available and gpus.gpus:
                size = min(g.memory_total for g in gpus.gpus)
        need_gpu = train_bytes + memory.RUNTIME_OVERHEAD_GB * memory.GB
        if size is not None and need_gpu > size:
            out.append(Lint(
                "warning", "train.batch_size",
                f"training needs roughly {_gb(need_gpu)} per GPU ({label}, + CUDA runtime) but the GPU has "
                f"{_gb(size)}: likely CUDA out of memory.",
                "Lower train.batch_size and raise gradient_accumulation_steps by the same factor, set bf16 = true, "
                "or enable deepspeed (ZeRO-2) over several GPUs.",
            ))
        else:
            out.append(Lint("note", "train.batch_size", f"GPU memory: roughly {_gb(need_gpu)} per GPU ({label})"
                            + (f" of {_gb(size)}." if size else "."), ""))
        host_need = features + 4 * sizes["params"] + 1e9
    else:
        host_need = features + train_bytes * max(1, t.num_gpus) + 1e9
    ram = host_ram * memory.GB if host_ram else None
    text = (f"host RAM: roughly {_gb(host_need)} (the {_gb(features)} of features the train stage loads at once"
            + (f", {label}" if where == "cpu" else "") + ", ~1 GB for torch)")
    if ram is not None and host_need > ram:
        out.append(Lint(
            "warning", "train.batch_size", f"{text}, but this machine has {_gb(ram)}: training may be killed "
            "for memory.", "Train on fewer or shorter clips, lower train.batch_size, or use a machine with more RAM.",
        ))
    else:
        out.append(Lint("note", "train.batch_size", text + (f" of {_gb(ram)}." if ram else "."), ""))


# ---------------------------------------------------------------------------


def preflight(*args, **kwargs) -> list[Lint]:
    """Every finding of :func:`iter_preflight` (same arguments), errors first."""
    return worst_first(iter_preflight(*args, **kwargs))


def iter_preflight(
    project: "Project | None",
    *,
    output_dir: Path | None = None,
    python: str | None = None,
    probe: dict | None = None,
    gpus: "GpuSnapshot | None" = None,
    gpu_memory_gb: float | None = None,
    host_ram: float | None = None,
    read_machine: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Lint]:
    """The whisper engine's findings for ``project`` (None: the environment and the machine only),
    each phase's errors first, as soon as the phase ends.

    1. the settings, data, model folder, schedule and disk (instant); 2. the interpreter, probed in a
    subprocess (``progress`` is told first); 3. the GPUs (NVML), the device and the memory.
    ``python`` is the interpreter to probe (default this one, which the workers run in), ``probe`` a
    ready :func:`probe_environment` answer, ``gpus`` a ready :func:`kimi_tui.gpu.read_gpus` snapshot;
    ``gpu_memory_gb`` / ``host_ram`` stand for this machine's; ``read_machine=False`` reads neither.
    """
    out = FindingsSoFar()  # yielded step by step: out.fresh()

    exe = python or sys.executable
    n = sched = sizes = None
    settings: set[Lint] = set()
    if project is not None:
        found = lint_project(project)
        settings = set(found)
        out.extend(found)
        _check_model_source(project, out)
        n, where = count_training_samples(project)
        sizes = _sizes(project)
        sched = _check_schedule_and_data(project, n, where, sizes, out)
        _check_disk(project, n, sched, sizes, output_dir, out)
    else:
        out.append(Lint(
            "note", "doctor", "no project: only the environment and this machine are checked (not the settings, "
            "data, model, schedule or disk).", "Pass --project DIR.",
        ))
    yield from out.fresh()

    if probe is None:
        if progress is not None:
            progress(f"importing torch and transformers in {exe} ...")
        probe = probe_environment(exe)
    _check_environment(probe, exe, out)
    yield from out.fresh()

    if gpus is None and read_machine:
        if progress is not None:
            progress("reading the GPUs (NVML) ...")
        from kimi_tui.gpu import read_gpus

        gpus = read_gpus()
    machine = [f for f in lint_project(project, gpus=gpus) if f not in settings] \
        if project is not None and gpus is not None else []  # lint's findings that needed the GPUs
    device: list[Lint] = []
    where_trains = _check_device(project, probe, gpus, exe, device)
    if any(f.level == "error" and f.field == "engine.device" for f in device):
        machine = [f for f in machine if f.field != "engine.device"]  # the probe's verdict is the sharper one
    out.extend(machine + device)
    if host_ram is None and read_machine:
        host_ram = host_ram_gb()
    if project is not None:
        _check_memory(project, n, sizes, where_trains, probe, gpus, gpu_memory_gb, host_ram, out)
    yield from out.fresh()
