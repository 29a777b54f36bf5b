"""Preflight for the official Kimi-Audio fine-tuning code: what would fail, found before it runs.

Every failure in the seed report was knowable in advance: ``--evaluation_strategy``
was rejected by the installed transformers; ``save_steps 1000`` on a 30-step run
saved nothing; eight GPUs on nine samples hung in NCCL; ZeRO-3 on one 95 GB GPU ran
out of memory; CPU offload then fitted but crawled. :func:`preflight` looks at the
checkout, the Python environment that will run it (probed in one subprocess: this
module imports no torch or transformers), the data size, the GPUs, the host RAM
and the disk, and returns :class:`kimi_tui.lint.Lint` findings, each with its fix.
:func:`iter_preflight` yields them as they are known: the probe can take a minute on a
busy machine, and a doctor that stays silent that long looks hung.

The facts it checks against are those of /work/shared/KIMI_AUDIO.md (the official
code's interfaces, read from its documented behaviour).
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from kimi_tui import memory
from kimi_tui.engines import compute_schedule, probe
from kimi_tui.engines.probe import (
    PROBE_TIMEOUT_S, TORCH_SECTION, TRANSFORMERS_SECTION, host_ram_gb, modules_section, probe_code, version_tuple,
)
from kimi_tui.levels import FindingsSoFar, worst_first
from kimi_tui.lint import MIN_SAMPLES_PER_GPU, Lint, zero3_cpu_gather_finding

__all__ = ["preflight", "iter_preflight", "probe_interpreter", "PROBE_CODE", "TOKENIZER_FILES", "host_ram_gb", "BF16_WHY", "BF16_FIX",
           "bf16_finding"]

#: transformers versions the official code runs on: compute_loss_func needs 4.46; 5.x breaks its remote code.
TRANSFORMERS_MIN = (4, 46)
TRANSFORMERS_MAX_EXCLUSIVE = (5, 0)
TRANSFORMERS_PIN = "transformers>=4.46,<5"
#: Files the export step never writes and inference needs from the base model folder.
TOKENIZER_FILES = ("tiktoken.model", "tokenizer_config.json", "tokenization_kimia.py", "special_tokens_map.json")
GLM4_SUBMODULE = "kimia_infer/models/tokenizer/glm4"
#: Why fp32 training cannot work with the official code, and the fix (the lint and the train plan both say it).
BF16_WHY = ("the official Whisper encoder (kimia_infer's WhisperEncoder.forward) casts its input to bfloat16 whatever "
            "the model's dtype, so fp32 training stops in its first convolution with \"Input type (c10::BFloat16) and "
            "bias type (float) should be the same\".")
BF16_FIX = "Set train.bf16 = true: the official Whisper encoder always runs in bf16, on a CPU as well."

# Runs inside the interpreter that will run the official code (engines/probe.py assembles it).
PROBE_CODE = probe_code(
    TRANSFORMERS_SECTION,
    r"""    if tf is not None:
        try:
            dc = __import__("dataclasses")
            names = {f.name for f in dc.fields(tf.TrainingArguments)}
            out["eval_strategy"] = "eval_strategy" in names
            out["evaluation_strategy"] = "evaluation_strategy" in names
        except BaseException as exc:
            out["training_arguments_error"] = f"{type(exc).__name__}: {exc}"
""",
    modules_section("flash_attn", "deepspeed", "peft"),
    TORCH_SECTION,
)


def probe_interpreter(python: str | None = None, timeout: float = PROBE_TIMEOUT_S, code: str = PROBE_CODE) -> dict:
    """What the interpreter that will run the official code has installed (engines/probe.py); never raises."""
    return probe.probe_interpreter(python, timeout, code)


def _gpu_memory_from_nvml() -> tuple[float | None, int | None]:
    from kimi_tui.gpu import read_gpus

    snap = read_gpus()
    if not snap.available or not snap.gpus:
        return None, None
    return min(g.memory_total for g in snap.gpus) / memory.GB, len(snap.gpus)


# ---------------------------------------------------------------------------
# The checks


def bf16_finding(bf16: bool) -> Lint | None:
    """fp32 training is refused: the official Whisper encoder runs in bf16 only."""
    return None if bf16 else Lint("error", "train.bf16", "bf16 = false: " + BF16_WHY, BF16_FIX)


def _check_interpreter(probe: dict, python: str, checkout: Path | None, method: str, out: list[Lint]) -> None:
    if "error" in probe:
        level = "warning" if probe.get("kind") == "timeout" else "error"
        out.append(Lint(
            level, "kimi_audio.python", f"{probe['error']}.",
            "Pass --python the interpreter of the environment that has the official code's requirements "
            "(torch 2.6.0, flash_attn 2.7.4.post1, deepspeed 0.16.9, transformers>=4.46,<5).",
        ))
        return
    version = probe.get("transformers")
    if not version:
        out.append(Lint(
            "error", "kimi_audio.transformers",
            f"transformers is not importable in {python} ({probe.get('transformers_error') or 'not installed'}).",
            f'{python} -m pip install "{TRANSFORMERS_PIN}"',
        ))
    else:
        v = version_tuple(version)
        if v is not None and v >= TRANSFORMERS_MAX_EXCLUSIVE:
            out.append(Lint(
                "error", "kimi_audio.transformers",
                f"transformers {version} is outside the range the official Kimi-Audio code runs on (>= 4.46, < 5): "
                "transformers 5 breaks its remote modelling and tokenizer code.",
                f'{python} -m pip install "{TRANSFORMERS_PIN}"',
            ))
        elif v is not None and v < TRANSFORMERS_MIN:
            out.append(Lint(
                "error", "kimi_audio.transformers",
                f"transformers {version} is older than 4.46: finetune.py passes compute_loss_func to the Trainer, "
                "which needs 4.46 or newer.",
                f'{python} -m pip install "{TRANSFORMERS_PIN}"',
            ))
        new, old = probe.get("eval_strategy"), probe.get("evaluation_strategy")
        if new is not None or old is not None:
            script = checkout / "finetune_codes" / "finetune_ds.sh" if checkout else None
            passes_old = False
            if script is not None and script.is_file():
                try:
                    passes_old = "--evaluation_strategy" in script.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    passes_old = False
            if new and not old:
                out.append(Lint(
                    "error" if passes_old else "note", "kimi_audio.eval_strategy",
                    f"transformers {version} accepts --eval_strategy; --evaluation_strategy (removed in 4.51) is "
                    "rejected by HfArgumentParser"
                    + (f", and {script} passes it: the run would stop at argument parsing (the seed's first failure)."
                       if passes_old else "."),
                    'Pass --eval_strategy "no" (kimi-tui builds the command with the accepted name; in '
                    "finetune_ds.sh replace --evaluation_strategy with --eval_strategy).",
                ))
            elif old and not new:
                out.append(Lint(
                    "note", "kimi_audio.eval_strategy",
                    f"transformers {version} accepts --evaluation_strategy, not --eval_strategy.",
                    'Pass --evaluation_strategy "no" to this version.',
                ))
    if not probe.get("torch"):
        out.append(Lint(
            "error", "kimi_audio.torch",
            f"torch is not importable in {python} ({probe.get('torch_error') or 'not installed'}).",
            f"{python} -m pip install torch==2.6.0 (the official requirements' pin).",
        ))
    elif not probe.get("cuda"):
        why = probe.get("cuda_error") or "torch.cuda.is_available() is False"
        out.append(Lint(
            "error", "kimi_audio.cuda",
            f"no CUDA GPU is usable from {python} ({why}): extraction, training and inference all call "
            "torch.cuda.current_device().",
            "Run on the GPU machine, with a CUDA build of torch (torch 2.6.0) matching its driver.",
        ))
    if not probe.get("flash_attn"):
        out.append(Lint(
            "error", "kimi_audio.flash_attn",
            f"flash-attn is not importable in {python} ({probe.get('flash_attn_error') or 'not installed'}): "
            "modeling_kimia.py refuses to import without it.",
            f"{python} -m pip install flash-attn==2.7.4.post1 --no-build-isolation",
        ))
    if method == "full" and not probe.get("deepspeed"):
        out.append(Lint(
            "error", "kimi_audio.deepspeed",
            f"deepspeed is not importable in {python} ({probe.get('deepspeed_error') or 'not installed'}).",
            f"{python} -m pip install deepspeed==0.16.9",
        ))
    if method == "lora" and not probe.get("peft"):
        out.append(Lint(
            "warning", "kimi_audio.method",
            f"method = lora but peft is not importable in {python}; the official finetune.py trains every "
            "parameter and has no LoRA option of its own.",
            f"{python} -m pip install peft",
        ))


def _check_checkout(checkout: Path | None, base_model: Path | None, out: list[Lint]) -> None:
    if checkout is None:
        out.append(Lint(
            "note", "kimi_audio.checkout", "no checkout given: its layout and submodule are not checked.",
            "Pass --checkout DIR (a clone of MoonshotAI/Kimi-Audio).",
        ))
    elif not checkout.is_dir():
        out.append(Lint(
            "error", "kimi_audio.checkout", f"{checkout} is not a folder.",
            "git clone --recursive https://github.com/MoonshotAI/Kimi-Audio and pass its folder.",
        ))
    else:
        missing = [d for d in ("kimia_infer", "finetune_codes") if not (checkout / d).is_dir()]
        if missing:
            out.append(Lint(
                "error", "kimi_audio.checkout",
                f"{checkout} has no {' or '.join(d + '/' for d in missing)}: it is not a Kimi-Audio checkout.",
                "Point --checkout at the root of a MoonshotAI/Kimi-Audio clone (the folder holding finetune.py).",
            ))
        if "kimia_infer" not in missing:
            glm4 = checkout / GLM4_SUBMODULE
            if not glm4.is_dir() or not any(glm4.iterdir()):
                out.append(Lint(
                    "error", "kimi_audio.checkout",
                    f"the GLM-4-Voice submodule {GLM4_SUBMODULE} is empty: extraction would fail with "
                    "ModuleNotFoundError: kimia_infer.models.tokenizer.glm4.speech_tokenizer.",
                    f"git -C {checkout} submodule update --init --recursive",
                ))
    if base_model is None:
        return
    if not base_model.is_dir():
        out.append(Lint(
            "error", "kimi_audio.base_model", f"{base_model} is not a folder.",
            "Pass --base-model the local copy of moonshotai/Kimi-Audio-7B (or -Instruct).",
        ))
        return
    absent = [name for name in TOKENIZER_FILES if not (base_model / name).is_file()]
    if absent:
        out.append(Lint(
            "error", "kimi_audio.base_model",
            f"{base_model} lacks the tokenizer file(s) {', '.join(absent)}: export copies none, and inference "
            "would silently try to download moonshotai/Kimi-Audio-7B-Instruct.",
            "Download the full base model (huggingface-cli download moonshotai/Kimi-Audio-7B --local-dir DIR) "
            "so the folder holds " + ", ".join(TOKENIZER_FILES) + ".",
        ))


def _check_schedule(
    n: int | None, epochs: int, batch_size: int, grad_accum: int, save_steps: int | str, num_gpus: int,
    save_total_limit: int, out: list[Lint], batching: str = "kimi-tui",
):
    if batch_size != 1 and batching == "official":
        out.append(Lint(
            "error", "train.batch_size",
            f"batch_size = {batch_size}: the official finetune.py asserts a micro-batch of 1 (twice).",
            f"Set batch_size = 1 and gradient accumulation = {batch_size * grad_accum} for the same effective batch, "
            'or train with kimi-tui\'s batching ([kimi_audio] batching = "kimi-tui").',
        ))
    if n is None:
        out.append(Lint(
            "note", "train.save_steps", "the number of training samples is not known: steps, saves and GPU "
            "split are not checked.", "Pass --samples N (or --project DIR with prepared data).",
        ))
        return None
    if n < 1:
        out.append(Lint("error", "data.train_jsonl", "there are no training samples.", "Run prepare first."))
        return None
    sched = compute_schedule(n, epochs=epochs, batch_size=batch_size, gradient_accumulation_steps=grad_accum,
                             num_gpus=num_gpus, save_steps=save_steps)
    total = sched.total_steps
    how = (f"{n} samples / (micro-batch 1 x {num_gpus} GPU) / accumulation {grad_accum} = "
           f"{sched.steps_per_epoch} per epoch, x {epochs} epochs")
    during = [s for s in sched.checkpoint_steps if s < total]
    if not during:
        every = max(1, math.ceil(total / 3))
        out.append(Lint(
            "error", "train.save_steps",
            f"save_steps = {save_steps} but the run has only {total} optimizer steps ({how}): no checkpoint "
            "would be saved during the run (the official code saves only at save_steps; the seed's 1000 saved nothing).",
            f'Set save_steps = "auto" (every {every} steps) or at most {max(1, total // 2)}.'
            if total >= 2 else "Train for more epochs, or lower the gradient accumulation.",
        ))

    per_step = num_gpus * grad_accum
    if num_gpus > 1:
        if n < num_gpus:
            out.append(Lint(
                "error", "train.num_gpus",
                f"{num_gpus} GPUs for {n} samples: some GPUs get no data and the run hangs in NCCL.",
                "Train on one GPU (--gpus 1).",
            ))
        elif n < per_step or n / num_gpus < MIN_SAMPLES_PER_GPU:
            out.append(Lint(
                "warning", "train.num_gpus",
                f"{num_gpus} GPUs on {n} samples is about {n / num_gpus:.1f} samples per GPU: communication "
                "outweighs compute, and the seed's 8-GPU run on 9 samples hung in NCCL.",
                "Train on one GPU (--gpus 1); use several only with hundreds of samples per GPU.",
            ))
    return sched


def _check_memory(
    method: str, zero_stage: int, offload_optimizer: bool, offload_param: bool, num_gpus: int, tokens: int,
    gpu_memory_gb: float | None, n_gpus_here: int | None, ram_gb: float | None, out: list[Lint],
    arch: memory.Architecture = memory.KIMI_AUDIO_7B, batch_size: int = 1, batched: bool = False,
) -> None:
    if method == "full" and zero_stage == 2 and offload_param:
        out.append(Lint(
            "error", "deepspeed.offload_param", "offload_param only works with ZeRO stage 3.",
            "Use --zero-stage 3, or drop --offload-param.",
        ))
    est = memory.estimate(method, zero_stage, offload_optimizer, offload_param,
                          gpus_per_node=num_gpus, nodes=1, tokens=tokens, arch=arch, batch_size=batch_size,
                          batched=batched)
    label = memory.Setup(method, zero_stage, offload_optimizer, offload_param).label
    if n_gpus_here is not None and num_gpus > n_gpus_here:
        out.append(Lint(
            "error", "train.num_gpus", f"--gpus {num_gpus} but this machine has {n_gpus_here} GPU(s).",
            f"Use --gpus {n_gpus_here} or fewer.",
        ))
    if gpu_memory_gb is None:
        out.append(Lint(
            "note", "deepspeed.stage",
            f"no GPU is visible here: {label} on {num_gpus} GPU(s) needs about {est.gpu_gb_per_gpu:.0f} GB per GPU "
            f"and {est.host_ram_gb:.0f} GB of host RAM, unchecked against a machine.",
            "Run doctor on the GPU machine, or pass the GPU size (gpu_memory_gb).",
        ))
        return
    fits = memory.evaluate_setups(gpu_memory_gb, num_gpus, ram_gb, tokens, arch, batch_size, batched)
    ok = [f for f in fits if f.fits]
    alternatives = "; ".join(
        f"{f.setup.label} (~{f.estimate.gpu_gb_per_gpu:.0f} GB/GPU, ~{f.estimate.host_ram_gb:.0f} GB host)"
        for f in ok
    ) or "none: use more or larger GPUs"
    where = f"{num_gpus} x {gpu_memory_gb:.0f} GB GPU" + ("s" if num_gpus > 1 else "")
    if est.gpu_gb_per_gpu > gpu_memory_gb:
        out.append(Lint(
            "error", "deepspeed.stage",
            f"{label} needs about {est.gpu_gb_per_gpu:.0f} GB per GPU ({est.model_states_gb:.0f} GB model states, "
            f"DeepSpeed's estimate, + {est.activations_gb:.1f} GB activations for "
            f"{f'{batch_size} x ' if batch_size > 1 else ''}{tokens} tokens) but the GPUs have "
            f"{gpu_memory_gb:.0f} GB: CUDA out of memory (the seed's ZeRO-3 run on one 95 GB GPU).",
            f"Setups that fit {where}" + (f" and {ram_gb:.0f} GB host RAM" if ram_gb else "") + f": {alternatives}.",
        ))
    if ram_gb is not None and est.host_ram_gb > ram_gb:
        out.append(Lint(
            "error", "deepspeed.offload_optimizer",
            f"{label} needs about {est.host_ram_gb:.0f} GB of host RAM (DeepSpeed's estimate with its 1.5x buffer; "
            f"at least {est.host_ram_low_gb:.0f} GB) but this machine has {ram_gb:.0f} GB.",
            f"Setups that fit {where} and {ram_gb:.0f} GB host RAM: {alternatives}.",
        ))
    if method == "full" and (offload_optimizer or offload_param):
        out.append(Lint(
            "warning", "deepspeed.offload_optimizer",
            "CPU offload is host-bound and slow: measured 3.27 s per optimizer step with optimizer and parameters "
            "offloaded against 0.19-0.21 s for LoRA r=8 on the same H200 (KIMI_AUDIO.md), about 17x.",
            "Prefer LoRA on one GPU, or ZeRO-3 without offload on 4-8 x 80 GB GPUs (~49 / ~26 GB per GPU).",
        ))
    out.append(Lint(
        "note", "deepspeed.stage",
        f"{label} on {where}: ~{est.gpu_gb_per_gpu:.0f} GB per GPU, ~{est.host_ram_gb:.0f} GB host RAM"
        + (f" (machine: {ram_gb:.0f} GB)" if ram_gb else "") + ".",
        f"Setups that fit: {alternatives}.",
    ))


def _existing_parent(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _check_disk(method: str, sched, save_total_limit: int, output_dir: Path | None, out: list[Lint],
                arch: memory.Architecture = memory.KIMI_AUDIO_7B) -> None:
    if output_dir is None or sched is None:
        return
    n_saves = len(sched.checkpoint_steps)
    kept = min(n_saves, save_total_limit) if save_total_limit > 0 else n_saves
    # A full checkpoint's optimizer state (fp32 master + Adam m, v: 12 bytes a parameter) and its bf16 weights.
    optimizer_gb, weights_gb = 12 * memory.parameters(arch) / memory.GB, 2 * memory.parameters(arch) / memory.GB
    if method == "full":
        per_ckpt = optimizer_gb + weights_gb
        final = weights_gb
        what = f"~{optimizer_gb:.0f} GB optimizer state + {weights_gb:.0f} GB weights"
    else:
        per_ckpt = 16 * memory.lora_adapter_params(arch) / memory.GB
        final = weights_gb
        what = "adapters and their optimizer state"
    need = kept * per_ckpt + final
    anchor = _existing_parent(output_dir.resolve())
    if anchor is None:
        return
    try:
        free = shutil.disk_usage(anchor).free / memory.GB
    except OSError:
        return
    if need > free:
        limit = save_total_limit if save_total_limit > 0 else "none"
        fit_n = max(0, int((free - final) // per_ckpt)) if per_ckpt else kept
        out.append(Lint(
            "error", "train.save_total_limit",
            f"{kept} checkpoint(s) kept (save_total_limit {limit}) x ~{per_ckpt:.0f} GB ({what}) + the "
            f"~{final:.0f} GB final model = ~{need:.0f} GB, but {anchor} has {free:.0f} GB free.",
            (f"Set save_total_limit = {fit_n}, raise save_steps, or point --output at a larger disk."
             if fit_n >= 1 else
             f"Point --output at a disk with at least {per_ckpt + final:.0f} GB free (one checkpoint and the "
             "final model), or free space there."),
        ))


def preflight(*args, **kwargs) -> list[Lint]:
    """Every finding of :func:`iter_preflight` (same arguments), errors first."""
    return worst_first(iter_preflight(*args, **kwargs))


def iter_preflight(
    checkout: Path | None = None,
    python: str | None = None,
    base_model: Path | None = None,
    n_samples: int | None = None,
    epochs: int = 5,
    batch_size: int = 1,
    grad_accum: int = 1,
    save_steps: int | str = 1000,
    num_gpus: int = 1,
    method: str = "full",
    zero_stage: int = 3,
    offload_optimizer: bool = False,
    offload_param: bool = False,
    max_audio_tokens: int = 500,
    output_dir: Path | None = None,
    *,
    save_total_limit: int = 10,
    bf16: bool = True,
    gpu_memory_gb: float | None = None,
    gpus_here: int | None = None,
    host_ram: float | None = None,
    probe: dict | None = None,
    read_machine: bool = True,
    whisper: Path | None = None,
    batching: str = "official",
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> Iterator[Lint]:
    """The findings for running the official Kimi-Audio fine-tuning with these settings, as they are known.

    The checks that read only the settings and the files come first; then the interpreter is
    probed (seconds to a minute: it imports torch and transformers), then the machine. Each
    phase's findings are yielded, errors first, as soon as the phase ends, so a caller can show
    them while the slow probe runs; ``progress`` is told (one line) before each slow step.

    ``batching`` is "official" (the official loop: micro-batch 1) or "kimi-tui" (the engine's padded batches).
    Defaults are the official ``finetune_ds.sh``'s hard-coded values (5 epochs,
    save_steps 1000, save_total_limit 10, ZeRO-3 without offload, bf16). ``gpu_memory_gb``,
    ``gpus_here`` and ``host_ram`` override what is read from this machine (NVML
    and /proc/meminfo); ``read_machine=False`` reads neither. ``probe`` is a
    ready :func:`probe_interpreter` answer (tests, or a caller that caches it). Memory and disk are
    sized from ``base_model``'s config.json (and ``whisper``'s, default base_model/whisper-large-v3);
    without one, for the published Kimi-Audio-7B, with a note saying so. ``device`` is engine.device:
    "cpu", or an interpreter without CUDA, trains over gloo processes.
    """
    out = FindingsSoFar()  # yielded step by step: out.fresh()

    exe = python or sys.executable
    checkout = Path(checkout).expanduser() if checkout else None
    base_model = Path(base_model).expanduser() if base_model else None
    # 1. The settings and the files: instant.
    _check_checkout(checkout, base_model, out)
    if (finding := bf16_finding(bf16)) is not None:
        out.append(finding)
    sched = _check_schedule(n_samples, epochs, batch_size, grad_accum, save_steps, num_gpus, save_total_limit, out,
                            batching)
    arch, sizing = memory.architecture_of(base_model, Path(whisper).expanduser() if whisper else None)
    out.extend(Lint("note", "kimi_audio.base_model", note,
                    "Point [kimi_audio] base_model (doctor: --base-model) at the model folder holding config.json: "
                    "the estimates are sized from it.") for note in sizing)
    _check_disk(method, sched, save_total_limit, Path(output_dir).expanduser() if output_dir else None, out, arch)
    yield from out.fresh()
    # 2. The interpreter that will run the official code: one subprocess importing torch and transformers.
    if probe is None:
        if progress is not None:
            progress(f"importing transformers, torch, flash_attn, deepspeed and peft in {exe} ...")
        probe = probe_interpreter(exe)
    _check_interpreter(probe, exe, checkout, method, out)
    if zero_stage == 3 and (device == "cpu" or probe.get("cuda") is False):
        finding = zero3_cpu_gather_finding(probe.get("deepspeed"), num_gpus, exe)
        if finding is not None:
            out.append(finding)
    yield from out.fresh()
    # 3. The machine: its GPUs (NVML, else what the probe saw) and host RAM, against the memory estimate.
    if gpu_memory_gb is None and read_machine:
        if progress is not None:
            progress("reading the GPUs (NVML) ...")
        gpu_memory_gb, found = _gpu_memory_from_nvml()
        if gpus_here is None:
            gpus_here = found
    if gpu_memory_gb is None and probe.get("cuda_devices"):
        devices = probe["cuda_devices"]
        gpu_memory_gb = min(d["memory_total"] for d in devices) / memory.GB
        gpus_here = gpus_here or len(devices)
    if host_ram is None and read_machine:
        host_ram = host_ram_gb()
    _check_memory(method, zero_stage, offload_optimizer, offload_param, num_gpus, max_audio_tokens,
                  gpu_memory_gb, gpus_here, host_ram, out, arch, batch_size, batching == "kimi-tui")
    if num_gpus > 1 and gpu_memory_gb is not None and any(f.field == "train.num_gpus" for f in out):
        _check_single_gpu_fallback(method, zero_stage, offload_optimizer, offload_param, max_audio_tokens,
                                   gpu_memory_gb, host_ram, out, arch)
    yield from out.fresh()


def _check_single_gpu_fallback(method: str, zero_stage: int, offload_optimizer: bool, offload_param: bool,
                               tokens: int, gpu_memory_gb: float, ram_gb: float | None, out: list[Lint],
                               arch: memory.Architecture = memory.KIMI_AUDIO_7B) -> None:
    """The seed's path after the NCCL hang: the same setup on one GPU ran out of memory, and the
    offload that fitted crawled. Say so now, with what does fit one GPU of this size."""
    if method != "full":
        return
    one = memory.estimate(method, zero_stage, offload_optimizer, offload_param, gpus_per_node=1, nodes=1, tokens=tokens,
                          arch=arch)
    offload = memory.estimate("full", 3, True, True, gpus_per_node=1, nodes=1, tokens=tokens, arch=arch)
    fits = [f for f in memory.evaluate_setups(gpu_memory_gb, 1, ram_gb, tokens, arch) if f.fits]
    label = memory.Setup(method, zero_stage, offload_optimizer, offload_param).label
    if one.gpu_gb_per_gpu <= gpu_memory_gb:
        return
    ram = f"{ram_gb:.0f} GB" if ram_gb else "this machine's"
    offload_verdict = (f"needs ~{offload.host_ram_gb:.0f} GB of host RAM ({ram} here)"
                       + (" and does not fit" if ram_gb and offload.host_ram_gb > ram_gb else "")
                       + " and is host-bound, ~17x slower per step than LoRA")
    out.append(Lint(
        "warning", "deepspeed.stage",
        f"on the one GPU this data calls for, {label} needs ~{one.gpu_gb_per_gpu:.0f} GB against {gpu_memory_gb:.0f} GB: "
        f"CUDA out of memory (the seed's next failure), and its fix, ZeRO-3 with optimizer and parameter offload, "
        f"{offload_verdict} (the seed's last failure).",
        "On one GPU of this size use: " + ("; ".join(
            f"{f.setup.label} (~{f.estimate.gpu_gb_per_gpu:.0f} GB, ~{f.estimate.host_ram_gb:.0f} GB host)" for f in fits)
            or "none: use several GPUs with hundreds of samples each") + " (kimi_audio.method = \"lora\").",
    ))
