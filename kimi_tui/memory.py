"""How much GPU memory and host RAM fine-tuning Kimi-Audio needs, before trying it.

The seed report ran out of GPU memory with the official ZeRO-3 config on one
95 GB card, then "fixed" it by offloading optimizer and weights to the CPU, which
made every step host-bound and slow. Both outcomes follow from arithmetic that
DeepSpeed itself documents, so kimi-tui does the arithmetic first.

Model states use DeepSpeed's own estimators (the "Memory Requirements" page of the
DeepSpeed docs, ``deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs``
and ``deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs``), with
``total_params = Psi``, ``largest_layer_params = L``, ``G = gpus_per_node x nodes``,
``N = nodes`` and DeepSpeed's ``additional_buffer_factor = 1.5`` on host RAM:

ZeRO-2 (bf16 weights and gradients, fp32 Adam states, no weight sharding)::

    no offload:          gpu = 4 Psi + 16 Psi / G      cpu = 4 Psi x gpus_per_node x 1.5
    optimizer offload:   gpu = 2 Psi                   cpu = Psi x max(4 G, 16) x 1.5

ZeRO-3 (everything sharded; the "cold", ``zero_init`` variant)::

    no offload:                    gpu = 4 L + 18 Psi / G    cpu = 4 L x gpus_per_node x 1.5
    optimizer offload:             gpu = 4 L + 2 Psi / G     cpu = 16 Psi / N x 1.5
    optimizer and param offload:   gpu = 4 L                 cpu = 18 Psi / N x 1.5

LoRA (not DeepSpeed's): the frozen base in bf16 on every GPU (2 Psi) plus the
adapters' bf16 weights, bf16 gradients and fp32 Adam states and master copy
(16 bytes per adapter parameter).

Activations come on top (the estimators count model states only): about 8.5 MB
per token in bf16 (the LM's gradient checkpointing has no effect in the official
code), plus up to 3 GB for the two full-vocabulary (168,448) logit tensors; the
Whisper encoder always runs on 30 s (1,500 frames) whatever the clip length.

Psi = 10.40 B trained parameters (the LM and the Whisper encoder; the seed's
"11.31 B" counts the Whisper decoder that is built and dropped). Units are
decimal GB (1e9 bytes), as in KIMI_AUDIO.md's memory table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "PSI", "LARGEST_LAYER_PARAMS", "Estimate", "Setup", "SETUPS", "estimate", "setups_that_fit",
    "activations_gb",
]

GB = 1e9
#: Trained parameters of Kimi-Audio-7B (LM + Whisper encoder).
PSI = 10.40e9
#: Largest single layer: the 168,448 x 3,584 embedding (DeepSpeed's ``largest_layer_params``).
LARGEST_LAYER_PARAMS = 168_448 * 3_584
#: LoRA r=8 on attention q/k/v/o, the audio adaptor and the heads: a generous upper bound.
LORA_ADAPTER_PARAMS = 20e6
#: bf16 activations per token of the LM, no effective checkpointing (KIMI_AUDIO.md).
ACTIVATION_BYTES_PER_TOKEN = 8.5e6
#: Two full-vocabulary logit tensors: 1-3 GB; the upper end, as fits are decided on it.
LOGITS_GB = 3.0
#: CUDA context, NCCL buffers and allocator slack per GPU.
RUNTIME_OVERHEAD_GB = 1.5
#: DeepSpeed's ``additional_buffer_factor`` on host-RAM estimates.
BUFFER_FACTOR = 1.5

Method = Literal["full", "lora"]


@dataclass(frozen=True)
class Estimate:
    """Peak needs of one setup: per-GPU memory (model states + activations + runtime) and host RAM."""

    gpu_gb_per_gpu: float
    host_ram_gb: float
    notes: tuple[str, ...] = ()
    model_states_gb: float = 0.0  # per GPU, DeepSpeed's figure (the KIMI_AUDIO.md table column)
    activations_gb: float = 0.0
    host_ram_low_gb: float = 0.0  # host RAM without DeepSpeed's 1.5x buffer factor

    def to_dict(self) -> dict:
        return {
            "gpu_gb_per_gpu": round(self.gpu_gb_per_gpu, 1),
            "host_ram_gb": round(self.host_ram_gb, 1),
            "host_ram_low_gb": round(self.host_ram_low_gb, 1),
            "model_states_gb": round(self.model_states_gb, 1),
            "activations_gb": round(self.activations_gb, 1),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Setup:
    method: Method
    zero_stage: int
    offload_optimizer: bool = False
    offload_param: bool = False

    @property
    def label(self) -> str:
        if self.method == "lora":
            return "LoRA r=8 (base frozen in bf16)"
        if self.zero_stage == 0:
            return "full fine-tune without DeepSpeed"
        what = f"full fine-tune, ZeRO-{self.zero_stage}"
        if self.offload_optimizer and self.offload_param:
            return what + " + optimizer and parameter offload"
        if self.offload_optimizer:
            return what + " + optimizer offload"
        return what + ", no offload"


#: The setups worth comparing, in the order they are recommended when they fit.
SETUPS: tuple[Setup, ...] = (
    Setup("full", 3),
    Setup("full", 2),
    Setup("lora", 3),
    Setup("full", 3, offload_optimizer=True),
    Setup("full", 2, offload_optimizer=True),
    Setup("full", 3, offload_optimizer=True, offload_param=True),
)


def activations_gb(tokens: int) -> float:
    """Per-GPU activation memory for a micro-batch of one sequence of ``tokens`` tokens."""
    return max(0, tokens) * ACTIVATION_BYTES_PER_TOKEN / GB + LOGITS_GB


def _model_states(
    method: Method, zero_stage: int, offload_optimizer: bool, offload_param: bool,
    gpus_per_node: int, nodes: int, notes: list[str],
) -> tuple[float, float, float]:
    """(GPU bytes per GPU, host bytes with buffer, host bytes without buffer) for the model states."""
    psi, layer = PSI, LARGEST_LAYER_PARAMS
    total_gpus = gpus_per_node * nodes
    if method == "lora":
        if offload_optimizer or offload_param:
            notes.append("offload has no use with LoRA: the adapters' optimizer state is tiny; ignored.")
        gpu = 2 * psi + 16 * LORA_ADAPTER_PARAMS
        host = 2 * psi * BUFFER_FACTOR  # the bf16 base is read through host RAM once while loading
        return gpu, host, 2 * psi
    if zero_stage == 2:
        if offload_param:
            notes.append("offload_param only works with ZeRO-3; ignored for ZeRO-2.")
        if offload_optimizer:
            cpu = psi * max(4 * total_gpus, 16)
            return 2 * psi, cpu * BUFFER_FACTOR, cpu
        cpu = psi * 4 * gpus_per_node
        return 4 * psi + 16 * psi / total_gpus, cpu * BUFFER_FACTOR, cpu
    if zero_stage == 0:
        # No DeepSpeed (plain DDP): every GPU holds bf16 weights and gradients, fp32 master weights and
        # Adam's two moments (2 + 2 + 12 bytes per parameter), nothing sharded or offloaded.
        if offload_optimizer or offload_param:
            notes.append("offload needs DeepSpeed; ignored without it.")
        return 16 * psi, 2 * psi * BUFFER_FACTOR, 2 * psi
    if zero_stage != 3:
        raise ValueError(f"zero_stage must be 0 (no DeepSpeed), 2 or 3, not {zero_stage!r}")
    if offload_param and not offload_optimizer:
        notes.append("offload_param without offload_optimizer is estimated as both offloaded.")
    if offload_param:
        cpu = psi * 18 / nodes
        return 4 * layer, cpu * BUFFER_FACTOR, cpu
    if offload_optimizer:
        cpu = psi * 16 / nodes
        return 4 * layer + 2 * psi / total_gpus, cpu * BUFFER_FACTOR, cpu
    cpu = layer * 4 * gpus_per_node
    return 4 * layer + 18 * psi / total_gpus, cpu * BUFFER_FACTOR, cpu


def estimate(
    method: Method = "full",
    zero_stage: int = 3,
    offload_optimizer: bool = False,
    offload_param: bool = False,
    gpus_per_node: int = 1,
    nodes: int = 1,
    tokens: int = 500,
) -> Estimate:
    """Memory for fine-tuning Kimi-Audio with this setup, per GPU and on the host (decimal GB).

    ``tokens`` is the longest training sequence (text + audio tokens; 12.5 audio
    tokens per second, so a 30 s clip is 375 of them). Micro-batch is always 1
    in the official code.
    """
    if method not in ("full", "lora"):
        raise ValueError(f"method must be 'full' or 'lora', not {method!r}")
    if gpus_per_node < 1 or nodes < 1:
        raise ValueError("gpus_per_node and nodes must be at least 1")
    notes: list[str] = []
    gpu, host, host_low = _model_states(
        method, zero_stage, offload_optimizer, offload_param, gpus_per_node, nodes, notes
    )
    acts = activations_gb(tokens)
    states_gb = gpu / GB
    if offload_optimizer or offload_param:
        if method == "full":
            notes.append(
                "offloading makes every step host-bound: the seed's fix measured 3.27 s per optimizer step "
                "against 0.19-0.21 s for LoRA on the same H200 (about 17x slower)."
            )
    notes.append(
        f"activations: {tokens} tokens x 8.5 MB + {LOGITS_GB:g} GB of logits = {acts:.1f} GB; "
        "the Whisper encoder always runs on 30 s of audio."
    )
    notes.append("the official dataset caches every sample, raw audio included: host RAM grows over an epoch.")
    return Estimate(
        gpu_gb_per_gpu=states_gb + acts + RUNTIME_OVERHEAD_GB,
        host_ram_gb=host / GB,
        notes=tuple(notes),
        model_states_gb=states_gb,
        activations_gb=acts,
        host_ram_low_gb=host_low / GB,
    )


@dataclass(frozen=True)
class Fit:
    setup: Setup
    estimate: Estimate
    fits_gpu: bool
    fits_host: bool = field(default=True)

    @property
    def fits(self) -> bool:
        return self.fits_gpu and self.fits_host


def evaluate_setups(gpu_memory_gb: float, n_gpus: int, host_ram_gb: float | None, tokens: int) -> list[Fit]:
    """Every setup in :data:`SETUPS` with its estimate and whether it fits this machine."""
    out = []
    for setup in SETUPS:
        est = estimate(setup.method, setup.zero_stage, setup.offload_optimizer, setup.offload_param,
                       gpus_per_node=n_gpus, nodes=1, tokens=tokens)
        fits_host = host_ram_gb is None or est.host_ram_gb <= host_ram_gb
        out.append(Fit(setup, est, est.gpu_gb_per_gpu <= gpu_memory_gb, fits_host))
    return out


def setups_that_fit(
    gpu_memory_gb: float, n_gpus: int = 1, host_ram_gb: float | None = None, tokens: int = 500
) -> list[Setup]:
    """The setups from :data:`SETUPS` that fit ``n_gpus`` GPUs of ``gpu_memory_gb`` each and the host's RAM.

    ``host_ram_gb = None`` leaves host RAM unchecked.
    """
    return [f.setup for f in evaluate_setups(gpu_memory_gb, n_gpus, host_ram_gb, tokens) if f.fits]
