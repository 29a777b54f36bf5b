"""The project's settings file, kimi-tui.toml: one typed, validated source of truth.

Why it is built this way:

* Users edit the file by hand *and* through the TUI, so saving must not destroy
  their comments or layout: tomlkit lets us change only the values that
  changed, in place.
* A typo in a hand-edited file must never silently fall back to a default and
  burn hours of GPU time on the wrong settings: unknown keys and wrong types are
  errors (pydantic, ``extra="forbid"``, strict types so ``epochs = true`` is not
  quietly read as 1).
* Users fix what they can read: pydantic's own messages are translated into
  ``kimi-tui.toml:12: [train] unknown key 'epoch': did you mean 'epochs'?`` —
  file, line, table.key, what was expected — and every problem is reported at
  once, so one edit-run cycle fixes them all.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from kimi_tui.errors import ConfigError
from kimi_tui.fsutil import atomic_write_text

__all__ = [
    "CONFIG_FILENAME",
    "ProjectSection",
    "DataSection",
    "EngineSection",
    "TrainSection",
    "DeepSpeedSection",
    "EvalSection",
    "ProjectConfig",
    "parse_config",
    "load_config",
    "save_config",
    "render_default_config",
    "set_field",
    "resolve_path",
]

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


_TABLE_HELP: dict[str, str] = {
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


# ---------------------------------------------------------------------------
# Value formatting (TOML syntax, used both for writing and in messages)


def format_float(value: float) -> str:
    """A float as TOML and the Config form write it (3e-6, not Python's 3e-06; nan, inf): one
    spelling, so a value typed into the form reads back as it was saved."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:  # 3e-06 -> 3e-6
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fmt_value(value: Any) -> str:
    """``value`` written as TOML."""
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value and not _CONTROL.search(value):
            return f"'{value}'"  # Windows paths read better without doubled backslashes
        return tomlkit.string(value).as_string()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_fmt_key(k)} = {_fmt_value(v)}" for k, v in value.items()) + " }"
    try:
        return tomlkit.item(value).as_string()
    except Exception:
        return str(value)


def _fmt_key(key: Any) -> str:
    """A key of an inline table as TOML writes it: bare, or quoted and escaped."""
    key = str(key)
    return key if re.fullmatch(_BARE_KEY, key) else _fmt_value(key)


def _fmt_shown(value: Any) -> str:
    """``value`` for an error message: TOML syntax, shortened."""
    text = _fmt_value(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text


# ---------------------------------------------------------------------------
# Finding line numbers in the raw text

_BARE_KEY = r"[A-Za-z0-9_-]+"
_KEY_PART = rf'(?:{_BARE_KEY}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_RE = re.compile(rf"^\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?$")
_KEYVAL_RE = re.compile(rf"^\s*({_DOTTED_KEY})\s*=\s*(.*)$")
_INLINE_KEY_RE = re.compile(rf"(?:^|[{{,])\s*({_DOTTED_KEY})\s*=")
_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _split_key(dotted: str) -> tuple[str, ...]:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    parts = re.findall(_KEY_PART, dotted)
    out = []
    for part in parts:
        if part[:1] == '"':
            try:
                part = tomlkit.parse(f"x = {part}")["x"]
            except Exception:
                part = part[1:-1]
        elif part[:1] == "'":
            part = part[1:-1]
        out.append(str(part))
    return tuple(out)


class _LineIndex:
    """Best-effort map from key paths to 1-based line numbers in a TOML text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        self.duplicates: list[tuple[tuple[str, ...], int]] = []
        self._headers: set[tuple[str, ...]] = set()
        table: tuple[str, ...] = ()
        closing: str | None = None  # inside a multi-line string ending with this
        depth = 0  # open brackets of a multi-line array / inline table
        # TOML breaks lines at LF (or CRLF) only; str.splitlines() would also break inside
        # strings and comments at U+2028, U+0085, \x1c... and shift every later line number.
        for lineno, line in enumerate(text.split("\n"), start=1):
            line = line.removesuffix("\r")
            if closing is not None:
                if closing in line:
                    closing = None
                continue
            if depth > 0:
                depth = max(0, depth + self._bracket_delta(line))
                continue
            header = _HEADER_RE.match(line)
            if header:
                table = _split_key(header.group(2))
                self._record(table, lineno, is_table=True)
                continue
            keyval = _KEYVAL_RE.match(line)
            if not keyval:
                continue
            path = table + _split_key(keyval.group(1))
            for i in range(len(table) + 1, len(path)):
                self.lines.setdefault(path[:i], lineno)
            self._record(path, lineno)
            value = keyval.group(2)
            for quote in ('"""', "'''"):
                if value.lstrip().startswith(quote) and value.count(quote) == 1:
                    closing = quote
                    break
            else:
                if value.lstrip().startswith("{"):
                    stripped = _STRING_RE.sub('""', value)
                    for inner in _INLINE_KEY_RE.finditer(stripped):
                        self.lines.setdefault(path + _split_key(inner.group(1)), lineno)
                depth = max(0, self._bracket_delta(value))

    def _record(self, path: tuple[str, ...], lineno: int, is_table: bool = False) -> None:
        if path in self.lines:
            if not is_table or path in self._headers:
                self.duplicates.append((path, lineno))
        else:
            self.lines[path] = lineno
        if is_table:
            self._headers.add(path)

    @staticmethod
    def _bracket_delta(line: str) -> int:
        line = _STRING_RE.sub('""', line).split("#", 1)[0]
        return line.count("[") + line.count("{") - line.count("]") - line.count("}")

    def find(self, *paths: tuple[Any, ...]) -> int | None:
        for path in paths:
            key = tuple(str(p) for p in path if not isinstance(p, int))
            if key and key in self.lines:
                return self.lines[key]
        return None


# ---------------------------------------------------------------------------
# Translating pydantic errors


def _prefix(source: str, line: int | None) -> str:
    return f"{source}:{line}: " if line else f"{source}: "


def _suggest(word: str, choices: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _field_annotation(table: str, key: str) -> Any:
    section = _tables().get(table)
    if section is None or key not in section.model_fields:
        return None
    return section.model_fields[key].annotation


def _kind(annotation: Any) -> str:
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "a string in quotes"
    origin = get_origin(annotation)
    if origin is list:
        return "a list"
    if origin is Literal:
        return "one of " + ", ".join(_fmt_value(a) for a in get_args(annotation))
    return "a different kind of value"


def _example(table: str, key: str) -> str | None:
    section = _tables().get(table)
    if section is None or key not in section.model_fields:
        return None
    info = section.model_fields[key]
    if info.annotation is bool:
        return None
    if info.examples:
        return _fmt_value(info.examples[0])
    if info.default in ("", None):
        return None
    return _fmt_value(info.default)


def _literal_values(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return ()


def _bound(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return format_float(value) if isinstance(value, float) else str(value)


def _problem(err: dict[str, Any]) -> str:
    """The part of the message after ``[table] key = value: ``."""
    loc = err["loc"]
    etype = err["type"]
    ctx = err.get("ctx") or {}
    table, key = str(loc[0]), str(loc[1])
    annotation = _field_annotation(table, key)
    if len(loc) > 2 and get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if etype == _CUSTOM:
        return err["msg"]
    if etype == "literal_error":
        values = _literal_values(annotation)
        if values:
            return "allowed values are " + ", ".join(_fmt_value(v) for v in values)
        return f"allowed values are {ctx.get('expected', '')}"
    if etype == "greater_than_equal":
        return f"must be at least {_bound(ctx['ge'])}"
    if etype == "greater_than":
        return f"must be greater than {_bound(ctx['gt'])}"
    if etype == "less_than_equal":
        return f"must be at most {_bound(ctx['le'])}"
    if etype == "less_than":
        return f"must be less than {_bound(ctx['lt'])}"
    if etype == "finite_number":
        return "must be a finite number"
    if etype.endswith("_type") or etype.endswith("_parsing") or etype == "int_from_float":
        text = f"expected {_kind(annotation)}"
        example = _example(table, key) if len(loc) == 2 else None
        if example is not None:
            text += f" (e.g. {example})"
        return text
    msg = err.get("msg", "invalid value")
    return msg[:1].lower() + msg[1:]


def _describe(err: dict[str, Any], source: str, index: _LineIndex | None) -> tuple[int | None, str]:
    loc = err["loc"]
    etype = err["type"]
    tables = _tables()
    line = index.find(loc, loc[:1]) if index else None

    if len(loc) == 1:
        name = str(loc[0])
        if etype == "extra_forbidden":
            if not isinstance(err.get("input"), dict):
                homes = [t for t, section in tables.items() if name in section.model_fields]
                text = f"unknown top-level key '{name}'"
                if homes:
                    text += f": did you mean to put it under [{homes[0]}]?"
                else:
                    text += f": settings belong in a table ({', '.join(f'[{t}]' for t in tables)})"
                return line, _prefix(source, line) + text
            guess = _suggest(name, list(tables))
            text = f"unknown table [{name}]"
            if guess:
                text += f": did you mean [{guess}]?"
            else:
                text += f"; valid tables are {', '.join(f'[{t}]' for t in tables)}"
            return line, _prefix(source, line) + text
        return line, _prefix(source, line) + (
            f"[{name}] = {_fmt_shown(err.get('input'))}: expected a table of settings "
            f"(a [{name}] header followed by key = value lines)"
        )

    table, key = str(loc[0]), str(loc[1])
    if etype == "extra_forbidden" and len(loc) == 2:
        valid = list(tables[table].model_fields) if table in tables else []
        guess = _suggest(key, valid)
        text = f"[{table}] unknown key '{key}'"
        if guess:
            text += f": did you mean '{guess}'?"
        else:
            text += f"; valid keys are {', '.join(valid)}"
        return line, _prefix(source, line) + text

    shown_key = key + "".join(f"[{p}]" for p in loc[2:] if isinstance(p, int))
    text = f"[{table}] {shown_key} = {_fmt_shown(err.get('input'))}: {_problem(err)}"
    return line, _prefix(source, line) + text


def _translate(exc: ValidationError, source: str, text: str | None) -> ConfigError:
    index = _LineIndex(text) if text is not None else None
    found: list[tuple[int | None, int, str]] = []
    seen: set[str] = set()
    for order, err in enumerate(exc.errors()):
        # Union members (e.g. list[str] of checkpoints) report their own loc suffixes like
        # 'list[str]'; drop those so the message shows the field as the user wrote it.
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
        err = {**err, "loc": loc}
        line, message = _describe(err, source, index)
        if message not in seen:
            seen.add(message)
            found.append((line, order, message))
    found.sort(key=lambda item: (item[0] is None, item[0] or 0, item[1]))
    return ConfigError("\n".join(message for _, _, message in found))


def _validate(data: Any, source: str, text: str | None) -> ProjectConfig:
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, source, text) from None


# ---------------------------------------------------------------------------
# Public API


def _parse_toml(text: str, source: str) -> Any:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        reason = re.sub(r" at line \d+ col \d+$", "", str(exc))
        raise ConfigError(f"{source}:{exc.line}:{exc.col}: invalid TOML: {reason}") from None
    except tomlkit.exceptions.TOMLKitError as exc:
        index = _LineIndex(text)
        line = index.duplicates[0][1] if index.duplicates else None
        raise ConfigError(f"{_prefix(source, line)}invalid TOML: {exc}") from None


def parse_config(text: str, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """Parse and validate the text of a kimi-tui.toml; raises ConfigError listing every problem.

    ``source`` starts every error line (pass the path the text came from).
    """
    try:
        data = tomllib.loads(text)  # fast, stdlib; tomlkit (slower) only to word an error or to save
    except tomllib.TOMLDecodeError:
        data = _parse_toml(text, source).unwrap()
    return _validate(data, source, text)


def _config_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path).expanduser()
    return path / CONFIG_FILENAME if path.is_dir() else path


def _read(path: Path) -> str:
    try:
        # bytes, not read_text: keep the user's line endings (CRLF) for a round trip
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_config(path: str | os.PathLike[str]) -> ProjectConfig:
    """Read and validate ``path`` (a kimi-tui.toml, or a folder holding one)."""
    path = _config_path(path)
    if not path.exists():
        raise ConfigError(
            f"{path}: no such file. Run `kimi-tui init` in the project folder to create one."
        )
    return parse_config(_read(path), source=str(path))


def render_default_config(config: ProjectConfig | None = None) -> str:
    """A complete kimi-tui.toml with a comment above every key, holding ``config``'s values."""
    config = config if config is not None else ProjectConfig()
    out = [
        "# kimi-tui project settings. Edit by hand or in the TUI (kimi-tui keeps your comments).",
        "# Every table and key is optional; a missing one takes the default shown here.",
    ]
    for table, section_cls in _tables().items():
        section = getattr(config, table)
        out.append("")
        for help_line in _TABLE_HELP.get(table, "").splitlines():
            out.append(f"# {help_line}")
        out.append(f"[{table}]")
        for key, info in section_cls.model_fields.items():
            for help_line in (info.description or "").splitlines():
                out.append(f"# {help_line}")
            out.append(f"{key} = {_fmt_value(getattr(section, key))}")
    return "\n".join(out) + "\n"


def _same(old: Any, new: Any) -> bool:
    """Equal as config values (1 == 1.0 for a float, but true != 1)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool) and old == new
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return old == new
    return type(old) is type(new) and old == new


def _append_to_table(table: Any, key: str, item: Any) -> None:
    """Add ``key`` after the table's last key, not after trailing blank lines/comments
    that visually belong to the next table."""
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    container = getattr(table, "value", None)
    body = getattr(container, "body", None)
    last_key = None
    if body is not None:
        for k, v in body:
            if k is not None and not isinstance(v, (tomlkit.items.Whitespace, tomlkit.items.Comment)):
                last_key = k
    if last_key is not None and not isinstance(table, tomlkit.items.InlineTable):
        try:
            container._insert_after(last_key, key, item)
            return
        except Exception:  # private tomlkit API: fall back to a plain append
            pass
    table.add(key, item)


def save_config(path: str | os.PathLike[str], config: ProjectConfig) -> None:
    """Write ``config`` to ``path`` (a kimi-tui.toml, or a folder holding one), atomically.

    An existing file is edited in place: only values that differ from what it holds
    change, so the user's comments, ordering and formatting survive; keys it lacks
    are added only when their value differs from the default. A file that is not
    valid TOML raises ConfigError and is left untouched.
    """
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    path = _config_path(path)
    source = str(path)
    # Catch a config mutated into an invalid state before it reaches the disk.
    config = _validate(config.model_dump(), source, None)
    if not path.exists():
        atomic_write_text(path, render_default_config(config))
        return

    text = _read(path)
    doc = _parse_toml(text, source)
    defaults = ProjectConfig()
    changed = False
    for table_name, section_cls in _tables().items():
        section = getattr(config, table_name)
        default_section = getattr(defaults, table_name)
        table = doc.get(table_name)
        if table is not None and not isinstance(table, dict):
            del doc[table_name]  # e.g. `train = 5`: invalid anyway, replace it by a real table
            table = None
        for key in section_cls.model_fields:
            new = getattr(section, key)
            if table is not None and key in table:
                old = table[key]
                old = old.unwrap() if hasattr(old, "unwrap") else old
                if _same(old, new):
                    continue
                table[key] = tomlkit.value(_fmt_value(new))  # keeps the line's trailing comment
                changed = True
            elif not _same(getattr(default_section, key), new):
                if table is None:
                    table = tomlkit.table()
                    doc.add(table_name, table)
                    table = doc[table_name]
                _append_to_table(table, key, tomlkit.value(_fmt_value(new)))
                changed = True
    if changed:
        out = doc.as_string()
        if "\r\n" in text:  # new lines from tomlkit use \n; match the file's CRLF
            out = re.sub(r"(?<!\r)\n", "\r\n", out)
        atomic_write_text(path, out)


# ---------------------------------------------------------------------------
# set_field

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}


_FAIL = object()


def _coerce(annotation: Any, raw: str) -> Any:
    """Turn form text into the field's type, as far as it goes; on failure return ``raw``
    unchanged so validation reports it in the usual words."""
    value = _coerce_or_fail(annotation, raw)
    return raw if value is _FAIL else value


def _coerce_or_fail(annotation: Any, raw: str) -> Any:
    import tomlkit  # imported on use: it costs ~25 ms at start-up
    import tomlkit.exceptions
    import tomlkit.items
    text = raw.strip()
    if annotation is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        return _FAIL
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            pass
        try:
            as_float = float(text)  # "1e3" -> 1000
        except ValueError:
            return _FAIL
        return int(as_float) if as_float.is_integer() else _FAIL
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            return _FAIL
    if annotation is str:
        return raw
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Literal:
        for choice in args:
            if isinstance(choice, str) and choice.lower() == text.lower():
                return choice
            if isinstance(choice, int) and text == str(choice):
                return choice
        return _FAIL
    if origin is list:
        if text.startswith("["):
            try:
                value = tomlkit.value(text).unwrap()
            except Exception:
                return _FAIL
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            return _FAIL
        return [_coerce(args[0], v) if isinstance(v, str) else v for v in value]
    if origin in (Union, types.UnionType):
        # Literal members first: "auto" must stay "auto", not become a list or fail as int.
        ordered = sorted(args, key=lambda a: get_origin(a) is not Literal)
        for member in ordered:
            value = _coerce_or_fail(member, raw)
            if value is not _FAIL:
                return value
        return _FAIL
    return _FAIL


def set_field(config: ProjectConfig, dotted: str, raw: Any, *, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """A copy of ``config`` with ``table.key`` set to ``raw``, validated.

    A string is read the way a user types it in a form ("20" -> 20, "true" -> True,
    "3e-6" -> 3e-6, "auto" stays "auto", "test, train" -> ["test", "train"]); any
    other value is used as is. Raises ConfigError (message prefixed by ``source``).
    """
    tables = _tables()
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        homes = [f"{t}.{dotted.strip()}" for t, s in tables.items() if dotted.strip() in s.model_fields]
        hint = f": did you mean '{homes[0]}'?" if homes else " (e.g. 'train.epochs')"
        raise ConfigError(f"{source}: '{dotted}' is not a setting name of the form table.key{hint}")
    table, key = parts
    if table not in tables:
        guess = _suggest(table, list(tables))
        hint = f": did you mean [{guess}]?" if guess else f"; valid tables are {', '.join(f'[{t}]' for t in tables)}"
        raise ConfigError(f"{source}: unknown table [{table}]{hint}")
    fields = tables[table].model_fields
    if key not in fields:
        guess = _suggest(key, list(fields))
        hint = f": did you mean '{guess}'?" if guess else f"; valid keys are {', '.join(fields)}"
        raise ConfigError(f"{source}: [{table}] unknown key '{key}'{hint}")
    value = _coerce(fields[key].annotation, raw) if isinstance(raw, str) else raw
    data = config.model_dump()
    data[table][key] = value
    return _validate(data, source, None)
