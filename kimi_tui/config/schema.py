"""The schema of kimi-tui.toml: one pydantic model per table, strict, unknown keys refused.

Strict types so `epochs = true` is not quietly read as 1; every field has a description and an
example, which the Config panel shows and the error messages quote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError



CONFIG_FILENAME = "kimi-tui.toml"

# Message kind used by our own validators; its text is shown to the user as is.
_CUSTOM = "kimi_tui_value"


def _save_steps_check(value: Any) -> Any:
    if value == "auto" and isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PydanticCustomError(_CUSTOM, "must be at least 1 (or \"auto\")")
        return value
    raise PydanticCustomError(_CUSTOM, 'expected a whole number of steps (e.g. 500) or "auto"')


def _checkpoints_check(value: Any) -> Any:
    if isinstance(value, str):
        if value in ("all", "last"):
            return value
        raise PydanticCustomError(
            _CUSTOM,
            'allowed values are "all", "last" or a list of checkpoint names '
            '(e.g. ["checkpoint-500"])',
        )
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise PydanticCustomError(
                _CUSTOM, 'checkpoint names must be strings in quotes (e.g. ["checkpoint-500"])'
            )
        return value
    raise PydanticCustomError(
        _CUSTOM, 'expected "all", "last" or a list of checkpoint names (e.g. ["checkpoint-500"])'
    )


SaveSteps = Annotated[Union[int, Literal["auto"]], BeforeValidator(_save_steps_check)]
Checkpoints = Annotated[Union[Literal["all", "last"], list[str]], BeforeValidator(_checkpoints_check)]


class _Section(BaseModel):
    # strict: no bool<->int or str->number coercion (an int is still fine for a float).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # TOML's \u0000 escape reads as a NUL, which no path, name or prompt can hold: every os call
        # raises ValueError on it far from the field that holds it.
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise PydanticCustomError(_CUSTOM, "contains a NUL character (\\u0000); delete it")
        return value


# Field descriptions become the comments of the rendered kimi-tui.toml.


class ProjectSection(_Section):
    name: str = Field("kimi-tui project", description="Display name of this project (shown in the TUI and in reports).")


class DataSection(_Section):
    train_csv: str = Field(
        "",
        description="CSV of training transcripts: one row per clip, an id column and a text column.\n"
        "Relative paths are relative to the folder holding this file.",
        examples=["data/train.csv"],
    )
    train_audio: str = Field(
        "",
        description="Folder with the training audio; searched recursively for files named after the ids.",
        examples=["data/train_audio"],
    )
    test_csv: str = Field("", description="CSV of test transcripts (same layout as train_csv).", examples=["data/test.csv"])
    test_audio: str = Field("", description="Folder with the test audio (searched recursively).", examples=["data/test_audio"])
    train_jsonl: str = Field(
        "",
        description="Alternative to train_csv + train_audio: an existing Kimi-format JSONL file.",
        examples=["data/train.jsonl"],
    )
    test_jsonl: str = Field(
        "",
        description="Alternative to test_csv + test_audio: an existing Kimi-format JSONL file.",
        examples=["data/test.jsonl"],
    )
    id_column: str = Field("", description='Name of the CSV column holding the clip id; "" = detect automatically.', examples=["id"])
    text_column: str = Field(
        "", description='Name of the CSV column holding the transcript; "" = detect automatically.', examples=["text"]
    )
    encoding: Literal["auto", "utf-8", "utf-8-sig", "gb18030", "gbk"] = Field(
        "auto",
        description='Text encoding of the CSV files: "auto", "utf-8", "utf-8-sig", "gb18030" or "gbk".',
    )
    instruction: str = Field("请将语音内容转录为文字。", description="Instruction given to the model with every clip.")
    instruction_for_jsonl: Literal["keep", "override"] = Field(
        "keep",
        description='A JSONL import: "keep" each row\'s own instruction (its user text message; instruction\n'
        'above only for rows without one), or "override" them all with instruction above.',
    )
    max_duration_s: float = Field(
        30.0, gt=0, description="Clips longer than this many seconds are skipped (must be greater than 0)."
    )


class EngineSection(_Section):
    name: str = Field("whisper", description='Model family to fine-tune: "whisper" or "kimi-audio".')
    model: str = Field(
        "tiny",
        description='"tiny" = a small model built locally from the training transcripts,\n'
        "or a folder holding a pretrained checkpoint.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description='Where to run: "auto" (GPU if available), "cpu" or "cuda".'
    )
    language: str = Field("zh", description='Language code of the speech (e.g. "zh").')

    @field_validator("name", mode="after")
    @classmethod
    def _registered_engine(cls, value: str) -> str:
        # The registry, not a Literal: an engine registered from outside (KIMI_TUI_ENGINES) is a valid name.
        from kimi_tui.engines import engine_names, unknown_engine_text
        from kimi_tui.errors import KimiTuiError

        try:
            known = value in engine_names()
        except KimiTuiError as exc:  # KIMI_TUI_ENGINES malformed: said here, at the field it decides
            raise PydanticCustomError(_CUSTOM, str(exc)) from None
        if not known:
            raise PydanticCustomError(_CUSTOM, unknown_engine_text(value))
        return value


class TrainSection(_Section):
    epochs: int = Field(10, ge=1, description="Passes over the training data (at least 1).")
    learning_rate: float = Field(3e-6, gt=0, description="Peak learning rate (greater than 0), e.g. 3e-6.")
    batch_size: int = Field(1, ge=1, description="Clips per step on each GPU (at least 1).")
    gradient_accumulation_steps: int = Field(
        4, ge=1, description="Steps whose gradients are summed before each optimizer update (at least 1)."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (0 or more).")
    warmup_ratio: float = Field(
        0.1, ge=0, le=1, description="Fraction of the training steps spent warming up the learning rate (0 to 1)."
    )
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear",
        description='Learning-rate schedule: "linear", "cosine", "constant" or "constant_with_warmup".',
    )
    save_steps: SaveSteps = Field(
        "auto", description='Save a checkpoint every N optimizer steps (at least 1), or "auto": three saves spread over the run, computed from the data size.'
    )
    save_total_limit: int = Field(0, ge=0, description="Keep at most this many checkpoints; 0 keeps all.")
    logging_steps: int = Field(1, ge=1, description="Log loss and learning rate every N optimizer steps (at least 1).")
    seed: int = Field(42, description="Random seed, for repeatable runs.")
    eval_ratio: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of the training data held out to compute a validation loss (0 up to, not including, 1).\n"
        "0 = no hold-out.",
    )
    bf16: bool = Field(False, description="Train in bfloat16 (true or false); needs a GPU that supports it.")
    num_gpus: int = Field(1, ge=1, description="Number of GPUs to train on (at least 1).")
    max_grad_norm: float = Field(1.0, ge=0, description="Clip gradients to this norm (0 or more; 0 = no clipping).")
    num_nodes: int = Field(
        1, ge=1,
        description="Machines to train on (at least 1). Over 1, start the same train command on every machine:\n"
        "torchrun meets at rdzv_endpoint (each machine uses num_gpus GPUs).",
    )
    rdzv_endpoint: str = Field(
        "", description='host:port every machine can reach, for num_nodes over 1 (e.g. "10.0.0.1:29400").'
    )


class DeepSpeedSection(_Section):
    enabled: bool = Field(False, description="Train with DeepSpeed ZeRO (true or false).")
    stage: Literal[2, 3] = Field(3, description="ZeRO stage: 2 (shard optimizer state and gradients) or 3 (also the weights).")
    offload_optimizer: bool = Field(False, description="Keep the optimizer state in CPU memory (true or false).")
    offload_param: bool = Field(False, description="Keep the weights in CPU memory; stage 3 only (true or false).")


class KimiAudioSection(_Section):
    checkout: str = Field(
        "", description="Folder of your Kimi-Audio checkout (holding finetune.py, finetune_codes/ and kimia_infer/)."
    )
    python: str = Field(
        "",
        description="Python interpreter of the environment the official code runs in (transformers 4.46-4.50,\n"
        'torch, flash-attn, deepspeed), e.g. "~/kimi-env/bin/python". "" = the one running kimi-tui.',
    )
    base_model: str = Field(
        "", description="Local copy of moonshotai/Kimi-Audio-7B (or -7B-Instruct): config.json, weights, tokenizer."
    )
    glm4_tokenizer: str = Field(
        "", description='Local copy of THUDM/glm-4-voice-tokenizer; "" = the Hugging Face cache.'
    )
    whisper: str = Field(
        "",
        description='Local copy of openai/whisper-large-v3; "" = the base model\'s whisper-large-v3/ folder,\n'
        "else the Hugging Face cache.",
    )
    method: Literal["full", "lora"] = Field(
        "lora",
        description='"lora" (adapters on a frozen base: fits one 80 GB GPU) or "full" (every weight;\n'
        "needs DeepSpeed ZeRO-3 over 4+ GPUs, or ~250 GB of host RAM to offload).",
    )
    lora_rank: int = Field(8, ge=1, description="LoRA rank (at least 1).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha (at least 1).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout (0 up to, not including, 1).")
    lora_targets: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Names of the language model's modules that get LoRA adapters.",
    )
    batching: Literal["kimi-tui", "official"] = Field(
        "kimi-tui",
        description='"kimi-tui": [train] batch_size samples per forward, padded with attention masks and\n'
        "drawn by length, the official loss per sample (equal to the official loop's; see README), Whisper\n"
        'features computed once per clip when Whisper is frozen (LoRA). "official": the official micro-batch 1 loop.',
    )
    max_audio_tokens: int = Field(
        500, ge=1, description="Longest sample in tokens, for the memory estimate (a 30 s clip is ~400)."
    )
    convert_bf16: bool = Field(
        False,
        description="Write the converted model in bfloat16: ~21 GB instead of ~42 GB, no fp32 copy in memory.\n"
        "LoRA trains a bf16 base anyway; DeepSpeed keeps fp32 master weights of its own.",
    )
    export_bf16: bool = Field(
        False, description="Write the exported model in bfloat16: half the disk (~20 GB instead of ~40 GB)."
    )
    text_repetition_penalty: float = Field(
        1.0, ge=1, description="Decoding: repetition penalty on the text stream (1.0 = none; Kimi's eval kit: 1.1)."
    )


class EvalSection(_Section):
    splits: list[Literal["test", "train"]] = Field(
        ["test", "train"], description='Data to score: a list of "test" and/or "train".'
    )
    include_base: bool = Field(True, description="Also score the untrained (base) model, as a baseline (true or false).")
    checkpoints: Checkpoints = Field(
        "all",
        description='Checkpoints to score: "all", "last" or a list of checkpoint names (e.g. ["checkpoint-500"]).',
    )
    include_export: bool = Field(True, description="Also score the exported final model (true or false).")
    max_new_tokens: int = Field(64, ge=1, description="Longest transcript generated per clip, in tokens (at least 1).")
    batch_size: int = Field(8, ge=1, description="Clips decoded at once (at least 1).")
    normalise_numbers: bool = Field(
        False, description="Scoring: write numbers one way on both sides before comparing (true or false)."
    )
    remove_fillers: bool = Field(
        False, description="Scoring: drop fillers (呃, 嗯...) and erhua on both sides (true or false)."
    )
    mixed_tokens: bool = Field(
        False,
        description="Scoring: also report a mixed error rate over CJK characters + Latin words (code-switching).",
    )
    bootstrap_resamples: int = Field(
        1000, ge=100, description="Resamples of the paired bootstrap that compares two models (at least 100)."
    )


def resolve_path(project_dir: str | os.PathLike[str], value: str | os.PathLike[str] | None) -> Path | None:
    """Turn a path from the config into a usable one.

    "" (or None) -> None; ``~`` is expanded; an absolute path is kept; a relative
    one is joined to ``project_dir`` (the folder holding kimi-tui.toml).
    """
    if value is None or not str(value).strip():
        return None
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return Path(project_dir).expanduser() / path


class ProjectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    project: ProjectSection = Field(default_factory=ProjectSection)
    data: DataSection = Field(default_factory=DataSection)
    engine: EngineSection = Field(default_factory=EngineSection)
    train: TrainSection = Field(default_factory=TrainSection)
    deepspeed: DeepSpeedSection = Field(default_factory=DeepSpeedSection)
    kimi_audio: KimiAudioSection = Field(default_factory=KimiAudioSection)
    eval: EvalSection = Field(default_factory=EvalSection)

    @staticmethod
    def resolve(project_dir: str | os.PathLike[str], value: str | os.PathLike[str] | None) -> Path | None:
        """Same as :func:`resolve_path`."""
        return resolve_path(project_dir, value)


TABLE_HELP: dict[str, str] = {
    "project": "About this project.",
    "data": "Where the transcripts and audio are. Per split, give either a CSV + audio folder\n"
    "or a Kimi-format JSONL. Relative paths are relative to the folder holding this file.",
    "engine": "Which model is fine-tuned, and where it runs.",
    "train": "Fine-tuning settings.",
    "deepspeed": "DeepSpeed ZeRO: shards (and optionally offloads) training state to fit larger models.",
    "kimi_audio": "The kimi-audio engine: your checkout of the official Kimi-Audio code, its Python\n"
    "environment and the model folders. Every stage runs offline from these folders.",
    "eval": "What gets scored after training.",
}


def _tables() -> dict[str, type[_Section]]:
    return {name: info.annotation for name, info in ProjectConfig.model_fields.items()}  # type: ignore[misc]


