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

Psi is counted from the architecture, not assumed: a user's base model may be a
smaller (or a test) build of the same classes, and sizing it as 7 B would refuse
setups that fit. :func:`architecture_of` reads the base model's config.json (and
its Whisper's); :func:`parameters` is the one count, exact for the published model
(10,403,303,424). Activations and adapters, measured at 7 B, scale with the LM's
width, depth and vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

__all__ = [
    "PSI", "LARGEST_LAYER_PARAMS", "Estimate", "Setup", "SETUPS", "estimate", "setups_that_fit",
    "activations_gb", "Architecture", "KIMI_AUDIO_7B", "parameters", "architecture_of",
]

GB = 1e9


@dataclass(frozen=True)
class Architecture:
    """The sizes that set Kimi-Audio's parameter count, named as its config.json and Whisper's name them.

    The LM: a Qwen2-style trunk of ``num_hidden_layers`` + ``kimia_mimo_layers`` decoder layers (q/k/v
    with bias, o without, SwiGLU MLP, two RMSNorms each), the token embedding, two output heads of
    ``vocab_size`` (text and audio), a final RMSNorm per stream, and the VQ adaptor (Linear(adaptor
    input, hidden), Linear(hidden, hidden), LayerNorm). The Whisper encoder: two convolutions over the
    mel bins, ``max_source_positions`` positions, ``encoder_layers`` layers and a final LayerNorm.
    """

    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    kimia_mimo_layers: int = 6
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    vocab_size: int = 168_448
    kimia_adaptor_input_dim: int = 5120
    encoder_layers: int = 32  # Whisper's config.json names from here on
    d_model: int = 1280
    encoder_ffn_dim: int = 5120
    num_mel_bins: int = 128
    max_source_positions: int = 1500
    source: str = "the published Kimi-Audio-7B"

    @property
    def lm_parameters(self) -> int:
        h, i, v = self.hidden_size, self.intermediate_size, self.vocab_size
        kv = h // self.num_attention_heads * self.num_key_value_heads
        attention = (h * h + h) + 2 * (h * kv + kv) + h * h
        layer = attention + 3 * h * i + 2 * h
        adaptor = (self.kimia_adaptor_input_dim * h + h) + (h * h + h) + 2 * h
        return v * h + (self.num_hidden_layers + self.kimia_mimo_layers) * layer + 2 * h + 2 * v * h + adaptor

    @property
    def whisper_parameters(self) -> int:
        d, f = self.d_model, self.encoder_ffn_dim
        convs = (self.num_mel_bins * d * 3 + d) + (d * d * 3 + d)
        layer = 4 * d * d + 3 * d + 2 * d + (d * f + f) + (f * d + d) + 2 * d  # k_proj has no bias
        return convs + self.max_source_positions * d + self.encoder_layers * layer + 2 * d

    @property
    def largest_layer(self) -> int:
        """DeepSpeed's ``largest_layer_params``: the embedding (or an output head, the same size)."""
        return max(self.vocab_size * self.hidden_size, self.intermediate_size * self.hidden_size)

    @property
    def _activation_elements_per_token(self) -> int:
        """What one LM layer keeps for backward per token, up to a constant: attention inputs and outputs,
        the MLP's gate/up/activation, the norms."""
        kv = self.hidden_size // self.num_attention_heads * self.num_key_value_heads
        return (self.num_hidden_layers + self.kimia_mimo_layers) * (
            7 * self.hidden_size + 2 * kv + 3 * self.intermediate_size)

    @property
    def _lora_parameters(self) -> int:
        """r=8 on q/k/v/o of every layer, the adaptor and both heads (the bound LORA_ADAPTER_PARAMS scales)."""
        h, r = self.hidden_size, 8
        kv = h // self.num_attention_heads * self.num_key_value_heads
        per_layer = r * (2 * h) * 2 + r * (h + kv) * 2
        heads = 2 * r * (h + self.vocab_size)
        adaptor = r * (self.kimia_adaptor_input_dim + h) + r * 2 * h
        return (self.num_hidden_layers + self.kimia_mimo_layers) * per_layer + heads + adaptor


#: Kimi-Audio-7B's published configuration (KIMI_AUDIO.md "The full-size architecture").
KIMI_AUDIO_7B = Architecture()


def parameters(arch: Architecture = KIMI_AUDIO_7B) -> int:
    """Trained parameters of full fine-tuning: the LM with its MIMO layers and the Whisper encoder."""
    return arch.lm_parameters + arch.whisper_parameters


#: Defaults of the official KimiAudioConfig and of transformers' WhisperConfig: what the official code
#: builds for a key its config.json leaves out.
_CONFIG_DEFAULTS = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "kimia_mimo_layers": 6,
                    "num_attention_heads": 32, "vocab_size": 163840, "kimia_adaptor_input_dim": 5120}
_WHISPER_DEFAULTS = {"encoder_layers": 4, "d_model": 256, "encoder_ffn_dim": 1536, "num_mel_bins": 80,
                     "max_source_positions": 1500}


def _read_json(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def architecture_of(base_model: Path | None, whisper: Path | None = None) -> tuple[Architecture, list[str]]:
    """The architecture the base model's config.json describes (Whisper's from ``whisper``, else the base
    model's whisper-large-v3/), and notes for what could not be read: a missing or unreadable LM config
    falls back to the published Kimi-Audio-7B, a missing Whisper config to Whisper-large-v3, each said."""
    notes: list[str] = []
    if base_model is None:
        return KIMI_AUDIO_7B, ["no base model given: memory is sized for the published Kimi-Audio-7B "
                               f"({parameters() / 1e9:.2f} B parameters)."]
    values: dict = {}
    config = Path(base_model) / "config.json"
    try:
        data = _read_json(config)
        for key, default in _CONFIG_DEFAULTS.items():
            values[key] = int(data.get(key, default))
        values["num_key_value_heads"] = int(data.get("num_key_value_heads") or values["num_attention_heads"])
        if values["hidden_size"] % values["num_attention_heads"]:
            raise ValueError("hidden_size is not a multiple of num_attention_heads")
        absent = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                              "vocab_size") if k not in data]
        if absent:
            notes.append(f"{config} has no {', '.join(absent)}: sized with the official KimiAudioConfig's defaults.")
    except (OSError, ValueError, TypeError) as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc})"
        return KIMI_AUDIO_7B, [f"{config} {why}: memory is sized for the published Kimi-Audio-7B "
                               f"({parameters() / 1e9:.2f} B parameters) instead."]
    folder = Path(whisper) if whisper is not None else Path(base_model) / "whisper-large-v3"
    try:
        data = _read_json(folder / "config.json")
        for key, default in _WHISPER_DEFAULTS.items():
            values[key] = int(data.get(key, default))
    except (OSError, ValueError, TypeError):
        notes.append(f"{folder / 'config.json'} cannot be read: the Whisper encoder is sized as Whisper-large-v3.")
        values.update({f.name: getattr(KIMI_AUDIO_7B, f.name) for f in fields(Architecture)
                       if f.name in _WHISPER_DEFAULTS})
    return replace(KIMI_AUDIO_7B, **values, source=str(base_model)), notes


#: Trained parameters of Kimi-Audio-7B (LM + Whisper encoder): 10,403,303,424.
PSI = parameters(KIMI_AUDIO_7B)
#: Largest single layer: the 168,448 x 3,584 embedding (DeepSpeed's ``largest_layer_params``).
LARGEST_LAYER_PARAMS = KIMI_AUDIO_7B.largest_layer
#: LoRA r=8 on attention q/k/v/o, the audio adaptor and the heads: a generous upper bound.
LORA_ADAPTER_PARAMS = 20e6
#: bf16 activations per token of the LM, no effective checkpointing (KIMI_AUDIO.md).
ACTIVATION_BYTES_PER_TOKEN = 8.5e6
#: Two full-vocabulary logit tensors: 1-3 GB; the upper end, as fits are decided on it.
LOGITS_GB = 3.0
#: kimi-tui's batching puts only the rows that carry a loss through the output heads (an ASR sample's
#: transcript: ~1/5 of its tokens); each such row holds its bf16 logits and the fp32 softmax of the loss.
LOSS_ROW_FRACTION = 0.25
LOSS_ROW_BYTES_PER_VOCAB = 2 + 4
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


def _logits_gb(arch: Architecture) -> float:
    return LOGITS_GB * arch.vocab_size / KIMI_AUDIO_7B.vocab_size


def _logits_in_batch_gb(tokens: int, batch_size: int, batched: bool, arch: Architecture) -> float:
    if not batched:
        return _logits_gb(arch)  # the official loop: two full-vocabulary tensors for its one sequence
    rows = batch_size * max(0, tokens) * LOSS_ROW_FRACTION
    return rows * arch.vocab_size * LOSS_ROW_BYTES_PER_VOCAB / GB


def activations_gb(tokens: int, arch: Architecture = KIMI_AUDIO_7B, batch_size: int = 1,
                   batched: bool = False) -> float:
    """Per-GPU activation memory for a micro-batch of ``batch_size`` sequences padded to ``tokens`` tokens
    (measured at 7 B, scaled by what each layer keeps per token and by the vocabulary). ``batched``:
    kimi-tui's batching, whose output heads see only the rows that carry a loss."""
    per_token = ACTIVATION_BYTES_PER_TOKEN * (
        arch._activation_elements_per_token / KIMI_AUDIO_7B._activation_elements_per_token)
    return max(1, batch_size) * max(0, tokens) * per_token / GB + _logits_in_batch_gb(tokens, batch_size, batched, arch)


def lora_adapter_params(arch: Architecture = KIMI_AUDIO_7B) -> float:
    """The LoRA upper bound, scaled from 7 B by the adapters this architecture gets."""
    return LORA_ADAPTER_PARAMS * arch._lora_parameters / KIMI_AUDIO_7B._lora_parameters


def _model_states(
    method: Method, zero_stage: int, offload_optimizer: bool, offload_param: bool,
    gpus_per_node: int, nodes: int, notes: list[str], arch: Architecture = KIMI_AUDIO_7B,
) -> tuple[float, float, float]:
    """(GPU bytes per GPU, host bytes with buffer, host bytes without buffer) for the model states."""
    psi, layer = parameters(arch), arch.largest_layer
    total_gpus = gpus_per_node * nodes
    if method == "lora":
        if offload_optimizer or offload_param:
            notes.append("offload has no use with LoRA: the adapters' optimizer state is tiny; ignored.")
        gpu = 2 * psi + 16 * lora_adapter_params(arch)
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
    arch: Architecture = KIMI_AUDIO_7B,
    batch_size: int = 1,
    batched: bool = False,
) -> Estimate:
    """Memory for fine-tuning Kimi-Audio with this setup, per GPU and on the host (decimal GB).

    ``tokens`` is the longest training sequence (text + audio tokens; 12.5 audio
    tokens per second, so a 30 s clip is 375 of them). The official loop's micro-batch is 1;
    kimi-tui's batching (``batched``) puts ``batch_size`` sequences, padded to the longest, in one
    forward. ``arch`` is the model's (:func:`architecture_of`); Kimi-Audio-7B by default.
    """
    if method not in ("full", "lora"):
        raise ValueError(f"method must be 'full' or 'lora', not {method!r}")
    if gpus_per_node < 1 or nodes < 1:
        raise ValueError("gpus_per_node and nodes must be at least 1")
    notes: list[str] = []
    gpu, host, host_low = _model_states(
        method, zero_stage, offload_optimizer, offload_param, gpus_per_node, nodes, notes, arch
    )
    acts = activations_gb(tokens, arch, batch_size, batched)
    logits = _logits_in_batch_gb(tokens, batch_size, batched, arch)
    states_gb = gpu / GB
    if offload_optimizer or offload_param:
        if method == "full":
            notes.append(
                "offloading makes every step host-bound: the seed's fix measured 3.27 s per optimizer step "
                "against 0.19-0.21 s for LoRA on the same H200 (about 17x slower)."
            )
    if arch != KIMI_AUDIO_7B:
        notes.append(f"sized from {arch.source}: {parameters(arch):,} parameters.")
    batch = f"{batch_size} x " if batch_size > 1 else ""
    notes.append(
        f"activations: {batch}{tokens} tokens x {(acts - logits) * GB / max(1, tokens * batch_size) / 1e6:.3g} MB + "
        f"{logits:.3g} GB of logits{' (the loss rows only)' if batched else ''} = {acts:.1f} GB; the Whisper "
        "encoder always runs on 30 s of audio."
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


def evaluate_setups(gpu_memory_gb: float, n_gpus: int, host_ram_gb: float | None, tokens: int,
                    arch: Architecture = KIMI_AUDIO_7B, batch_size: int = 1, batched: bool = False) -> list[Fit]:
    """Every setup in :data:`SETUPS` with its estimate and whether it fits this machine."""
    out = []
    for setup in SETUPS:
        est = estimate(setup.method, setup.zero_stage, setup.offload_optimizer, setup.offload_param,
                       gpus_per_node=n_gpus, nodes=1, tokens=tokens, arch=arch, batch_size=batch_size,
                       batched=batched)
        fits_host = host_ram_gb is None or est.host_ram_gb <= host_ram_gb
        out.append(Fit(setup, est, est.gpu_gb_per_gpu <= gpu_memory_gb, fits_host))
    return out


def setups_that_fit(
    gpu_memory_gb: float, n_gpus: int = 1, host_ram_gb: float | None = None, tokens: int = 500,
    arch: Architecture = KIMI_AUDIO_7B,
) -> list[Setup]:
    """The setups from :data:`SETUPS` that fit ``n_gpus`` GPUs of ``gpu_memory_gb`` each and the host's RAM.

    ``host_ram_gb = None`` leaves host RAM unchecked.
    """
    return [f.setup for f in evaluate_setups(gpu_memory_gb, n_gpus, host_ram_gb, tokens, arch) if f.fits]
