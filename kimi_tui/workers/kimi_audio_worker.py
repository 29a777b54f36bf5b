"""The kimi-audio engine's worker, run by the interpreter of the user's Kimi-Audio environment.

That environment is the official code's (transformers 4.46-4.50, torch, flash-attn,
deepspeed), not kimi-tui's, so this module imports only the standard library and
stdlib-only kimi_tui modules (``events``, ``workers/runtime``, what the whisper worker
shares with this one) at load time; torch, transformers, peft and the official
packages (``finetune_codes``, ``kimia_infer``, ``finetune``) are imported inside the
commands, from the checkout on ``PYTHONPATH``. The engine copies this file and those
modules (its ``worker_files``) into the project (``.kimi-tui/lib``) so no other part of
kimi-tui is ever importable here; the engine runs that copy as a file.

Why a worker and not only the official scripts: the official extraction stops at
the first bad file and cannot resume; ``finetune_ds.sh`` hard-codes every
hyper-parameter, lets a DeepSpeed scheduler block override the learning-rate
schedule, cannot resume and saves nothing on short runs; inference has no batching
and decodes ~7,500 steps when the end token never comes. Convert and export *are*
the official CLI (``official`` below only makes the hard-coded hub ids resolve
offline first, and finishes the export: LoRA merge, tokenizer files, bf16).

Commands (all take ``--checkout`` and ``--link HUB_ID=FOLDER``):
  official  -- ARGV       run an official command with the hub ids linked
  extract                 semantic tokens per audio message (resumable, sharded, checked)
  train                   HF Trainer on the official model and data classes (full or LoRA)
  transcribe              KimiAudio greedy text for base / checkpoints / export
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file from the project's copy: make its kimi_tui importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kimi_tui.data.fingerprints import AudioChangedError, RecordedAudio  # noqa: E402
from kimi_tui.events import EventWriter  # noqa: E402
import kimi_tui.workers.kimi_audio_batching as batching  # noqa: E402
from kimi_tui.workers.training_guards import guard_final_model, training_guard  # noqa: E402
from kimi_tui.workers.disk_full import handle_disk_full, is_disk_full  # noqa: E402
from kimi_tui.workers.deepspeed_setup import prepare_deepspeed  # noqa: E402
from kimi_tui.workers.gpus import end_process_group, exit_rank, one_gpu_unless_torchrun, shard_env  # noqa: E402
from kimi_tui.workers.runtime import (  # noqa: E402
    WorkerError, atomic_write, inspect_sample, parse_shard, read_jsonl_samples as read_jsonl, run_command, say,
    write_model_status,
)
from kimi_tui.workers.trainer_events import trainer_events_callback  # noqa: E402

SAMPLE_RATE = 16000
#: GLM-4-Voice tokens: one per 1280 samples at 16 kHz (12.5 Hz), per 30 s chunk.
SAMPLES_PER_TOKEN = 1280
CHUNK_SAMPLES = 30 * SAMPLE_RATE
TOKENIZER_FILES = ("tiktoken.model", "tokenizer_config.json", "tokenization_kimia.py", "special_tokens_map.json")
LORA_NOTE = "kimi_tui_lora.json"


# ---------------------------------------------------------------------------
# Offline hub ids
# ---------------------------------------------------------------------------


def link_hub_ids(checkout: Path, links: list[str]) -> None:
    """Make ``from_pretrained("openai/whisper-large-v3")`` and friends find the configured folders.

    transformers uses a local directory when ``os.path.isdir(name)``; with the
    checkout as working directory a symlink named like the hub id is enough. A
    real folder already there (the user's own copy) is used as it is; a symlink is
    re-pointed (nothing is lost: it is only a link).
    """
    for item in links:
        hub_id, _, target = item.partition("=")
        if not hub_id or not target:
            raise WorkerError(f"--link {item!r}: expected HUB_ID=FOLDER")
        target_path = Path(target)
        if not target_path.is_dir():
            raise WorkerError(f"{hub_id}: the folder {target_path} does not exist (kimi-tui.toml [kimi_audio])")
        link = checkout / hub_id
        if link.is_symlink():
            if os.path.realpath(link) == os.path.realpath(target_path):
                continue
        elif link.exists():
            say(f"offline: {link} is a folder of yours; it is used as {hub_id} (kimi-tui does not replace it)")
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        # Made aside and renamed over: extract shards and torchrun ranks link at the same moment,
        # and a plain symlink() of the second one fails with "File exists".
        fresh = link.with_name(f".{link.name}.{os.getpid()}.link")
        fresh.unlink(missing_ok=True)
        os.symlink(target_path, fresh, target_is_directory=True)
        os.replace(fresh, link)
        say(f"offline: {hub_id} -> {target_path}")


def enter_checkout(args: argparse.Namespace) -> Path:
    checkout = Path(args.checkout).resolve()
    if not (checkout / "finetune_codes").is_dir() or not (checkout / "kimia_infer").is_dir():
        raise WorkerError(f"{checkout} is not a Kimi-Audio checkout (no finetune_codes/ or kimia_infer/)")
    os.chdir(checkout)  # the official code opens finetune_codes/... and hub-id folders relative to it
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    link_hub_ids(checkout, args.link or [])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return checkout


# ---------------------------------------------------------------------------
# JSONL helpers
# ---------------------------------------------------------------------------


def audio_messages(sample: dict) -> list[dict]:
    return [m for m in sample["conversation"] if isinstance(m, dict) and m.get("message_type") == "audio"]


def sample_id(sample: dict) -> str:
    return inspect_sample(sample).key or ""


def read_done_lines(path: Path) -> list[dict]:
    """Complete lines of a shard file; a line cut short by a crash is dropped (and the file trimmed)."""
    if not path.exists():
        return []
    good: list[dict] = []
    keep = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                good.append(json.loads(raw))
            except ValueError:
                break
            keep += len(raw)
    if keep != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(keep)
    return good


# ---------------------------------------------------------------------------
# Shards over GPUs
# ---------------------------------------------------------------------------


def run_shards(argv: list[str], gpus: int, events: EventWriter) -> None:
    """Start one copy of this command per GPU (CUDA_VISIBLE_DEVICES=i, --shard i/N), wait for all.

    The children share this process group, so a stop of the run reaches them.
    """
    procs = []
    for shard in range(gpus):
        env = shard_env(shard)
        cmd = [sys.executable, os.path.abspath(__file__)] + argv + ["--shard", f"{shard}/{gpus}"]
        say(f"shard {shard}/{gpus} on GPU {shard}")
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        raise WorkerError(f"shard exit codes {codes}: see the lines above")


# ---------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------


def audio_samples_16k(path: str) -> tuple[int, int]:
    """(samples at 16 kHz, original rate): how long the tokenizer will see the clip."""
    try:
        import soundfile  # in the official requirements

        info = soundfile.info(path)
        frames, rate = info.frames, info.samplerate
    except ImportError:
        import wave

        with wave.open(path, "rb") as wav:
            frames, rate = wav.getnframes(), wav.getframerate()
    if rate == SAMPLE_RATE:
        return frames, rate
    return int(math.ceil(frames * SAMPLE_RATE / rate)), rate


def expected_tokens(samples_16k: int) -> int:
    """(L - 1) // 1280 + 1 per 30 s chunk of L samples: GLM-4-Voice's 12.5 Hz rate."""
    total = 0
    for start in range(0, max(samples_16k, 1), CHUNK_SAMPLES):
        length = min(CHUNK_SAMPLES, samples_16k - start)
        total += (max(length, 1) - 1) // SAMPLES_PER_TOKEN + 1
    return total


def check_token_count(path: str, tokens: list[int], offset: int) -> str | None:
    samples, rate = audio_samples_16k(path)
    want = expected_tokens(samples)
    slack = 0 if rate == SAMPLE_RATE else 1  # resampling may round the length by a sample
    if abs(len(tokens) - want) > slack:
        return (f"{len(tokens)} tokens for {samples / SAMPLE_RATE:.2f} s of audio, expected {want} at 12.5 Hz: "
                "the audio tokenizer is not GLM-4-Voice's, or the file's header lies about its length")
    bad = [t for t in tokens if t < offset]
    if bad:
        return f"token {bad[0]} is below kimia_token_offset {offset}: the codes were not offset"
    return None


def load_prompt_manager(base_model: str):
    """The official prompt manager, built as the official extraction script builds it."""
    config = json.loads((Path(base_model) / "config.json").read_text(encoding="utf-8"))
    from kimia_infer.api.prompt_manager import KimiAPromptManager

    offset = int(config["kimia_token_offset"])
    manager = KimiAPromptManager(
        model_path=base_model,
        kimia_token_offset=offset,
        kimia_text_audiodelaytokens=config.get("kimia_mimo_audiodelaytokens"),
    )
    return manager, offset


def cmd_extract(args: argparse.Namespace, events: EventWriter) -> int:
    jobs = []
    for item in args.split:
        name, _, rest = item.partition("=")
        source, _, target = rest.partition(":")
        jobs.append((name, Path(source), Path(target)))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shard, shards = parse_shard(args.shard)
    if args.gpus > 1 and args.shard is None:
        argv = [a for a in sys.argv[1:]]
        run_shards(argv, args.gpus, events)
        return merge_extract(jobs, work, args.gpus, events)
    enter_checkout(args)
    data = {name: read_jsonl(src) for name, src, _ in jobs}
    recorded = {name: RecordedAudio.beside(src) for name, src, _ in jobs}
    mine = [(name, i) for name, _, _ in jobs for i in range(len(data[name])) if i % shards == shard]
    done: dict[tuple[str, int], dict] = {}
    files = {}
    for name, _, _ in jobs:
        part = work / f"{name}.shard-{shard}-of-{shards}.jsonl"
        for record in read_done_lines(part):
            if "sample" in record:  # errors are retried: the file may have been fixed since
                done[(name, record["index"])] = record
        files[name] = part
    todo = [key for key in mine if key not in done]
    say(f"extract shard {shard}/{shards}: {len(mine)} samples, {len(mine) - len(todo)} already done, {len(todo)} to do")
    if not todo:
        return 0 if shards > 1 else merge_extract(jobs, work, 1, events)
    manager, offset = load_prompt_manager(args.base_model)
    handles = {name: open(path, "a", encoding="utf-8") for name, path in files.items()}
    total, count, failed = len(mine), len(mine) - len(todo), 0
    started = time.time()
    try:
        for name, index in todo:
            sample = data[name][index]
            record: dict = {"index": index}
            path = ""
            try:
                for message in audio_messages(sample):
                    path = str(message["content"])
                    if not os.path.isfile(path):
                        raise WorkerError(f"audio file not found: {path}")
                    check_recorded(recorded[name], path)
                    tokens = [int(t) for t in manager._tokenize_audio(path)]
                    problem = check_token_count(path, tokens, offset)
                    if problem:
                        raise WorkerError(problem)
                    message["audio_tokens"] = tokens
                record["sample"] = sample
            except WorkerError as exc:
                record["error"] = str(exc)
            except Exception as exc:  # a bad file is one sample's problem, never the end of the run
                detail = str(exc).strip() or "the audio could not be decoded"
                record["error"] = f"{path}: {type(exc).__name__}: {detail}"
            if "error" in record:
                failed += 1
                say(f"  skipped {name} line {index + 1} ({sample_id(sample)}): {record['error']}")
                events.error(f"{name} line {index + 1}: {record['error']}", split=name, line=index + 1)
            handles[name].write(json.dumps(record, ensure_ascii=False) + "\n")
            handles[name].flush()
            count += 1
            events.progress(count, total, split=name)
            if count % 50 == 0 or count == total:
                rate = (count - (total - len(todo))) / max(time.time() - started, 1e-9)
                say(f"  [{count}/{total}] {rate:.1f} samples/s")
    finally:
        for handle in handles.values():
            handle.close()
    if shards > 1:
        return 0
    return merge_extract(jobs, work, 1, events)


def merge_extract(jobs, work: Path, shards: int, events: EventWriter) -> int:
    """Write each split's tokenised JSONL in input order, and the list of skipped samples."""
    any_ok = False
    report = {}
    for name, source, target in jobs:
        n_lines = len(read_jsonl(source))
        records: dict[int, dict] = {}
        for shard in range(shards):
            for record in read_done_lines(work / f"{name}.shard-{shard}-of-{shards}.jsonl"):
                previous = records.get(record["index"])
                if previous is None or "sample" in record:
                    records[record["index"]] = record
        missing = [i for i in range(n_lines) if i not in records]
        if missing:
            raise WorkerError(f"{name}: {len(missing)} samples were not processed (first: line {missing[0] + 1}); "
                              "run extract again to finish them")
        good = [records[i]["sample"] for i in range(n_lines) if "sample" in records[i]]
        skipped = [{"line": i + 1, "id": "", "error": records[i]["error"]} for i in range(n_lines) if "error" in records[i]]
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in good))
        report[name] = {"source": str(source), "output": str(target), "samples": len(good), "skipped": skipped}
        say(f"{name}: {len(good)} samples with audio tokens -> {target}; {len(skipped)} skipped")
        events.artifact("jsonl", target, split=name, samples=len(good), skipped=len(skipped))
        any_ok = any_ok or (name == "train" and len(good) > 0)
    atomic_write(work / "extract_report.json", json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    if not any_ok:
        raise WorkerError("no training sample has audio tokens: see the skipped samples above")
    return 0


# ---------------------------------------------------------------------------
# official (convert, export)
# ---------------------------------------------------------------------------


def merge_lora(adapter: Path, base: Path, merged: Path) -> None:
    """LoRA adapters folded into the converted model, so the official export reads a full model."""
    import torch
    from finetune_codes.model import KimiAudioModel
    from peft import PeftModel

    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    stored = config.get("torch_dtype") or config.get("dtype") or "float32"  # transformers 5 says "dtype"
    dtype = getattr(torch, stored, torch.float32)  # a bf16 converted model (convert_bf16) stays bf16: half the disk
    say(f"merging the LoRA adapters of {adapter} into {base} ({stored}) -> {merged}")
    model = KimiAudioModel.from_pretrained(str(base), torch_dtype=dtype)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tmp = merged.with_name(merged.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(merged, ignore_errors=True)
    os.replace(tmp, merged)


def copy_tokenizer(base: Path, export: Path) -> None:
    """The export writes no tokenizer; without these files inference downloads Kimi-Audio-7B-Instruct's."""
    missing = [name for name in TOKENIZER_FILES if not (base / name).is_file()]
    if missing:
        raise WorkerError(f"{base} lacks {', '.join(missing)}: point [kimi_audio] base_model at a full copy of "
                          "moonshotai/Kimi-Audio-7B")
    for name in TOKENIZER_FILES:
        shutil.copy2(base / name, export / name)
    say(f"copied {', '.join(TOKENIZER_FILES)} from {base}")


def to_bf16(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    before = after = 0
    for path in sorted(folder.rglob("*.safetensors")):
        before += path.stat().st_size
        tensors = load_file(str(path))
        if all(v.dtype == torch.bfloat16 or not v.is_floating_point() for v in tensors.values()):
            after += path.stat().st_size  # written in bf16 already (--default-dtype)
            continue
        tensors = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, path)
        after += path.stat().st_size
    for config in folder.rglob("config.json"):
        data = json.loads(config.read_text(encoding="utf-8"))
        data["torch_dtype"] = "bfloat16"
        atomic_write(config, json.dumps(data, indent=2) + "\n")
    say(f"bf16: {before / 1e9:.2f} GB -> {after / 1e9:.2f} GB")


#: Runs ``python -m MODULE ARGS`` with torch's default dtype set first: the official convert and export
#: build their models without a dtype, so this makes them build, load and save in bf16 (no fp32 copy).
#: It also skips the random initialisation of the models they build and then overwrite whole with a
#: strict ``load_state_dict`` (a missing weight would still raise): torch's CPU ``normal_`` in bf16 runs at
#: ~30 M values/s, so initialising 10.4 B discarded weights would cost ~6 minutes of each stage.
DTYPE_RUNNER = (
    "import runpy, sys, torch; torch.set_default_dtype(getattr(torch, sys.argv[1]))\n"
    "try:\n    from transformers.modeling_utils import no_init_weights\n"
    "except ImportError:\n    from transformers.initialization import no_init_weights\n"
    "assert sys.argv[2] == '-m', sys.argv; module = sys.argv[3]; sys.argv = [module] + sys.argv[4:]\n"
    "with no_init_weights():\n    runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def with_default_dtype(command: list[str], dtype: str | None) -> list[str]:
    """The official ``python -m finetune_codes.model ...`` command, run under ``dtype`` when given."""
    if not dtype:
        return command
    if len(command) < 3 or command[1] != "-m":
        raise WorkerError(f"--default-dtype needs a `python -m MODULE ...` command, not {' '.join(command[:3])}")
    return [command[0], "-c", DTYPE_RUNNER, dtype] + command[1:]


def cmd_official(args: argparse.Namespace, command: list[str], events: EventWriter) -> int:
    if not command:
        raise WorkerError("official: nothing to run after --")
    enter_checkout(args)
    if args.merge_lora:
        adapter, base, merged = (Path(p) for p in args.merge_lora)
        events.emit("stage", name="merge-lora")
        merge_lora(adapter, base, merged)
    events.emit("stage", name=" ".join(command[1:4]))
    say("$ " + " ".join(command) + (f"   (torch default dtype {args.default_dtype})" if args.default_dtype else ""))
    proc = subprocess.Popen(with_default_dtype(command, args.default_dtype))
    code = proc.wait()
    if code != 0:
        say(f"the official command failed with exit code {code}")
        return code
    if args.copy_tokenizer:
        base, export = (Path(p) for p in args.copy_tokenizer)
        copy_tokenizer(base, export)
    if args.bf16:
        to_bf16(Path(args.bf16))
    if args.merge_lora and not args.keep_merged:
        shutil.rmtree(args.merge_lora[2], ignore_errors=True)  # derived, and as large as the model
    for output in args.output or []:
        events.artifact("model", output)
    return 0


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def training_arguments(args: argparse.Namespace, ds_config: dict | None):
    """TrainingArguments with the names the installed transformers accepts (seed failure 1)."""
    import dataclasses

    import transformers

    names = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    strategy = "eval_strategy" if "eval_strategy" in names else "evaluation_strategy"
    kwargs = dict(
        output_dir=args.output,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,  # 1 on the official path: its collate asserts it
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        lr_scheduler_type=args.lr_scheduler,
        max_grad_norm=args.max_grad_norm,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit or None,
        logging_steps=args.logging_steps,
        seed=args.seed,
        bf16=args.bf16,
        report_to=[],
        dataloader_pin_memory=False,
        remove_unused_columns=False,
        deepspeed=ds_config,
        prediction_loss_only=True,  # the evaluation loss is all that is logged; no logits are gathered
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and the guard), not the running mean
    )
    if "warmup_ratio" not in names:  # transformers 5 folded it into warmup_steps (a float below 1 is a ratio)
        kwargs["warmup_steps"] = kwargs.pop("warmup_ratio")
    kwargs[strategy] = "steps" if args.eval_ratio > 0 else "no"
    if args.eval_ratio > 0:
        kwargs["eval_steps"] = args.save_steps
    if args.device == "cpu":
        kwargs["use_cpu"] = True
    return transformers.TrainingArguments(**kwargs)


def make_callback(events: EventWriter, total: int, is_main: bool):
    """The shared training events (trainer_events.trainer_events_callback); the Trainer's step count checked
    against the plan's. ``is_main`` is False on torchrun's other ranks: they write no events."""

    def check_total(args, state) -> None:
        if state.max_steps != total:
            say(f"note: the Trainer counts {state.max_steps} optimizer steps, the plan said {total}")

    return trainer_events_callback(events if is_main else EventWriter(os.devnull), on_begin=check_total)


def load_for_training(args: argparse.Namespace, training_args):
    """The converted model as the train stage trains it (bf16 base + LoRA on the LM, or every weight),
    and the base model's text tokenizer."""
    import torch
    from transformers import AutoTokenizer

    from finetune_codes.model import KimiAudioModel

    dtype = torch.bfloat16 if (args.bf16 and args.method == "lora") else None
    load_kwargs = {"device_map": None}
    if dtype is not None:
        load_kwargs["torch_dtype"] = dtype
    if args.zero_stage != 3:
        load_kwargs["low_cpu_mem_usage"] = True
    model = KimiAudioModel.from_pretrained(args.model, **load_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=True)
    offset = model.config.kimia_token_offset

    if args.method == "lora":
        from peft import LoraConfig, get_peft_model

        for parameter in model.parameters():
            parameter.requires_grad_(False)
        # Adapters go on the language model's modules only; the Whisper encoder stays frozen.
        targets = sorted(name for name, _ in model.named_modules()
                         if name.rsplit(".", 1)[-1] in args.lora_targets and not name.startswith("whisper_model"))
        if not targets:
            raise WorkerError(f"no module of the language model is named {' or '.join(args.lora_targets)}: "
                              "set [kimi_audio] lora_targets to names the model has (e.g. q_proj)")
        lora = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=targets, bias="none")
        model = get_peft_model(model, lora)
        if training_args.gradient_checkpointing:
            model.enable_input_require_grads()
    def numel(p) -> int:
        return int(getattr(p, "ds_numel", 0) or p.numel())  # ZeRO-3 leaves an empty shard in p

    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    total_params = sum(numel(p) for p in model.parameters())
    say(f"{args.method}: {trainable:,} of {total_params:,} parameters train")
    if trainable == 0:
        raise WorkerError("no parameter of the model is trainable")
    return model, tokenizer, offset


def cmd_train(args: argparse.Namespace, events: EventWriter) -> int:
    one_gpu_unless_torchrun()
    enter_checkout(args)
    rank = int(os.environ.get("RANK", "0"))
    is_main = rank == 0
    if not is_main:
        events = EventWriter(os.devnull)
    os.environ.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "1")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    ds_config = None
    if args.zero_stage:
        import torch

        cuda = torch.cuda.is_available() and args.device != "cpu"
        ds_config = prepare_deepspeed(output, args.zero_stage, args.offload_optimizer, args.offload_param, cuda, is_main)
    training_args = training_arguments(args, ds_config)  # before the model: ZeRO-3 builds it sharded

    import torch
    from transformers import AutoTokenizer, Trainer

    from finetune import compute_loss  # the official loss: text CE + audio CE over the masks
    from finetune_codes.datasets import LazySupervisedDataset
    from finetune_codes.model import KimiAudioModel

    samples = read_jsonl(Path(args.data))
    missing = [i + 1 for i, s in enumerate(samples) if any("audio_tokens" not in m for m in audio_messages(s))]
    if missing:
        raise WorkerError(f"{args.data}: line {missing[0]} has an audio message without audio_tokens; run extract")
    n_eval = int(len(samples) * args.eval_ratio)  # the official split: the first fraction, unshuffled
    eval_data, train_data = samples[:n_eval], samples[n_eval:]
    if not train_data:
        raise WorkerError(f"{args.data}: no training sample left after holding out {n_eval} for evaluation")

    events.emit("stage", name="load model")
    model, tokenizer, offset = load_for_training(args, training_args)

    whisper = model.whisper_model if hasattr(model, "whisper_model") else model.get_base_model().whisper_model
    train_set = LazySupervisedDataset(train_data, whisper_model=whisper, text_tokenizer=tokenizer,
                                      max_len=args.model_max_length, kimia_token_offset=offset)
    eval_set = (LazySupervisedDataset(eval_data, whisper_model=whisper, text_tokenizer=tokenizer,
                                      max_len=args.model_max_length, kimia_token_offset=offset) if eval_data else None)
    # After the events callback: it may set a poisoned checkpoint aside before anyone else sees it.
    guard = training_guard(output, resume_from=args.resume_from or None, say=say)
    trainer_class, collator, loss_function, features = Trainer, train_set.collate_fn, compute_loss, None
    if args.batching == "kimi-tui":
        # Padded batches around the official model, the official loss per sample (kimi_audio_batching.py).
        features = batching.install(model)
        train_set = batching.KeyedDataset(train_set, train_data)
        eval_set = batching.KeyedDataset(eval_set, eval_data) if eval_set is not None else None
        trainer_class = batching.batched_trainer_class(Trainer, train_set.lengths)
        collator, loss_function = batching.collate, batching.batched_loss
        say(f"batching: {args.batch_size} sample(s) per forward, drawn by length; Whisper features "
            + ("computed once per clip (Whisper is frozen)" if features.cache else "computed every step (Whisper trains)"))
    elif args.batch_size != 1:
        raise WorkerError(f"--batch-size {args.batch_size} with --batching official: the official collate asserts 1")
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        # A compute_loss_func tells the Trainer the loss is final: it is not divided by the accumulation
        # steps, on both paths, as in the official finetune.py.
        compute_loss_func=loss_function,
        callbacks=[make_callback(events, args.total_steps, is_main), guard],
    )
    resume = args.resume_from or None
    if resume:
        say(f"resuming from {resume}")
    events.emit("stage", name="train")
    final = output / "final"
    partial = output / "final.partial"
    try:
        trainer.train(resume_from_checkpoint=resume)
        guard.verdict.raise_if_tripped(WorkerError)  # stopped early: no final model
        if features is not None and features.cache:
            say(f"Whisper ran {features.computed} time(s) for {len(features.kept)} clip(s) over the whole run")
        trainer.save_state()
        if is_main:
            shutil.rmtree(partial, ignore_errors=True)
        trainer.save_model(str(partial))  # every rank: ZeRO-3 gathers the 16-bit weights collectively
    except WorkerError:
        raise
    except Exception as exc:  # torch and safetensors report a full disk as their own errors
        if not is_disk_full(exc, output):
            raise
        if is_main:
            shutil.rmtree(partial, ignore_errors=True)
            raise WorkerError(handle_disk_full(output, exc)) from None
        raise WorkerError("disk full (see rank 0)") from None
    guard_final_model(guard, partial, WorkerError, step=trainer.state.global_step)
    if is_main:
        if args.method == "lora":
            atomic_write(partial / LORA_NOTE, json.dumps({"base": str(Path(args.model).resolve()),
                                                          "rank": args.lora_rank}, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        say(f"final model -> {final}")
        events.artifact("model", final)
    return 0


def cmd_check_batching(args: argparse.Namespace, events: EventWriter) -> int:
    """kimi-tui's batched loss and gradients against the official single-sample forwards, on this model."""
    from types import SimpleNamespace

    enter_checkout(args)
    import torch

    from finetune import compute_loss
    from finetune_codes.datasets import LazySupervisedDataset

    samples = [s for s in read_jsonl(Path(args.data)) if all("audio_tokens" in m for m in audio_messages(s))]
    if len(samples) < 2:
        raise WorkerError(f"{args.data}: at least 2 samples with audio_tokens are needed; run extract")
    samples = samples[: max(args.samples, args.batch_size)]
    model, tokenizer, offset = load_for_training(args, SimpleNamespace(gradient_checkpointing=False))
    cuda = torch.cuda.is_available() and args.device != "cpu"
    model.to("cuda" if cuda else "cpu")
    whisper = batching.unwrap(model).whisper_model
    dataset = LazySupervisedDataset(samples, whisper_model=whisper, text_tokenizer=tokenizer,
                                    max_len=args.model_max_length, kimia_token_offset=offset)
    keyed = batching.KeyedDataset(dataset, samples)
    began = time.time()
    with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=args.bf16):  # as the Trainer runs
        report = batching.check_equivalence(model, keyed, dataset.collate_fn, compute_loss, args.batch_size)
    report["seconds"] = round(time.time() - began, 2)
    report["tolerance"] = args.tolerance
    report["passed"] = report["gradient_relative_error"] <= args.tolerance and all(
        abs(a - b) <= args.tolerance * max(1.0, abs(a))
        for a, b in zip(report["official_losses"], report["batched_losses"]))
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if args.report:
        atomic_write(Path(args.report), text + "\n")
    if not report["passed"]:
        raise WorkerError(f"the batched path differs from the official one beyond {args.tolerance}: see the report")
    return 0


# ---------------------------------------------------------------------------
# transcribe
# ---------------------------------------------------------------------------


def model_kind(folder: Path) -> str:
    if (folder / "adapter_config.json").is_file():
        return "lora"
    if (folder / "whisper-large-v3").is_dir() and (folder / "tokenizer_config.json").is_file():
        return "standalone"  # the base model, or an export
    return "checkpoint"  # full fine-tuning weights of KimiAudioModel (LM + whisper_model.*)


def load_state_dict_files(folder: Path) -> dict:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if files:
        state: dict = {}
        for path in files:
            state.update(load_file(str(path)))
        return state
    import torch

    state = {}
    for path in sorted(folder.glob("pytorch_model*.bin")):
        state.update(torch.load(str(path), map_location="cpu", weights_only=True))
    if not state:
        raise WorkerError(f"{folder}: no weights (*.safetensors or pytorch_model*.bin)")
    return state


def load_kimi_audio(name: str, folder: Path, shell: Path):
    """KimiAudio for a model folder. Checkpoints are not self-contained (no tokenizer, no Whisper
    folder): the base model gives the shell and the checkpoint's weights replace its own."""
    from kimia_infer.api.kimia import KimiAudio

    kind = model_kind(folder)
    if kind == "standalone":
        return KimiAudio(model_path=str(folder), load_detokenizer=False), kind
    model = KimiAudio(model_path=str(shell), load_detokenizer=False)
    if kind == "lora":
        from peft import PeftModel

        model.alm = PeftModel.from_pretrained(model.alm, str(folder)).merge_and_unload()
        return model, kind
    state = load_state_dict_files(folder)
    whisper = {k[len("whisper_model."):]: v for k, v in state.items() if k.startswith("whisper_model.")}
    lm = {k: v for k, v in state.items() if not k.startswith("whisper_model.")}
    missing, unexpected = model.alm.load_state_dict(lm, strict=False)
    if unexpected or len(missing) > 0 and len(missing) == len(list(model.alm.state_dict())):
        raise WorkerError(f"{name}: {folder} does not hold Kimi-Audio weights ({len(unexpected)} unexpected keys)")
    if whisper:
        model.prompt_manager.whisper_model.load_state_dict(whisper, strict=False)
    return model, kind


def strip_special(text: str) -> str:
    import re

    return re.sub(r"<\|[^|>]*\|>", "", text).strip()


def cmd_transcribe(args: argparse.Namespace, events: EventWriter) -> int:
    shard, shards = parse_shard(args.shard)
    out = Path(args.output)
    if args.gpus > 1 and args.shard is None:
        try:
            run_shards(sys.argv[1:], args.gpus, events)
        finally:  # a model that failed in one shard keeps its shard files; the finished ones are merged
            for name, _ in (item.split("=", 1) for item in args.model):
                merge_predictions(out / name, args.gpus)
        return 0
    enter_checkout(args)
    models = [tuple(item.split("=", 1)) for item in args.model]
    splits = [tuple(item.split("=", 1)) for item in args.jsonl]
    data = {split: read_jsonl(Path(path)) for split, path in splits}
    args.recorded = {split: RecordedAudio.beside(path) for split, path in splits}
    total = len(models) * sum(len(v) for v in data.values())
    count = 0
    failures: list[str] = []
    for name, folder in models:
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        mine = sum(1 for samples in data.values() for i, _ in enumerate(samples) if i % shards == shard)
        write_model_status(target, (shard, shards), "running", path=folder, of=mine)
        # One model that cannot be loaded (its checkpoint deleted under the evaluation, broken
        # weights) fails alone, recorded with its error; the next model is transcribed.
        try:
            count = transcribe_one(args, events, name, folder, target, data, shard, shards, count, total)
        except (WorkerError, OSError, ValueError, RuntimeError, ImportError) as exc:
            if not Path(folder).exists():
                message = f"{folder} does not exist (deleted after the evaluation was planned?)"
            else:
                message = str(exc) if isinstance(exc, WorkerError) else f"{type(exc).__name__}: {exc}"
            write_model_status(target, (shard, shards), "failed", path=folder, error=message)
            say(f"{name}: failed: {message}")
            events.error(f"transcribe {name}: {message}")
            failures.append(name)
            continue
        write_model_status(target, (shard, shards), "complete", path=folder, of=mine,
                           clips=len(read_done_lines(target / prediction_name(shard, shards))))
    if failures:
        raise WorkerError(f"{', '.join(failures)} could not be transcribed (see the lines above); the other models were")
    return 0


def prediction_name(shard: int, shards: int) -> str:
    return f"predictions.shard-{shard}-of-{shards}.jsonl" if shards > 1 else "predictions.jsonl"


def check_recorded(recorded: RecordedAudio, path: str) -> None:
    """A clip truncated or replaced since prepare recorded it is named, never tokenized or
    transcribed as the silence it now decodes to."""
    samples, _ = audio_samples_16k(path)
    try:
        recorded.check_decoded(path, samples, SAMPLE_RATE)
    except AudioChangedError as exc:
        raise WorkerError(str(exc)) from None


def transcribe_one(args: argparse.Namespace, events: EventWriter, name: str, folder: str, target: Path, data: dict,
                   shard: int, shards: int, count: int, total: int) -> int:
    """Every clip of this shard not yet written, with one model; returns the running count."""
    part = target / prediction_name(shard, shards)
    done = {(r["split"], r["id"]) for r in read_done_lines(part)}
    todo = [(split, s) for split, samples in data.items() for i, s in enumerate(samples)
            if i % shards == shard and (split, sample_id(s)) not in done]
    count += sum(1 for split, samples in data.items() for i, _ in enumerate(samples) if i % shards == shard) - len(todo)
    if not todo:
        say(f"{name}: all predictions already written")
        return count
    events.emit("stage", name=f"transcribe {name}")
    model, kind = load_kimi_audio(name, Path(folder), Path(args.shell))
    failed = 0
    say(f"transcribe with {name} ({kind}, {folder}): {len(todo)} clips")
    with open(part, "a", encoding="utf-8") as fh:
        for split, sample in todo:
            conversation = sample["conversation"]
            messages = [m for m in conversation if m.get("role") == "user"]
            for m in messages:
                m.pop("audio_tokens", None)
            reference = inspect_sample(sample).transcript or ""
            audio = audio_messages(sample)[0]["content"]
            began = time.time()
            try:
                check_recorded(args.recorded[split], audio)
                _, text = model.generate(
                    messages, output_type="text",
                    text_temperature=0.0, text_top_k=5,
                    text_repetition_penalty=args.text_repetition_penalty, text_repetition_window_size=16,
                    audio_temperature=0.8, audio_top_k=10, audio_repetition_penalty=1.0,
                    audio_repetition_window_size=64,
                    max_new_tokens=args.max_new_tokens,  # never -1: ~7,500 steps when no end token comes
                )
            except Exception as exc:  # one unreadable clip is scored as missing, never the end of the run
                detail = str(exc).strip() or "the audio could not be decoded"
                failed += 1
                say(f"  no transcript for {name} {split} {sample_id(sample)} ({audio}): {type(exc).__name__}: {detail}")
                events.error(f"{name} {split} {sample_id(sample)}: {type(exc).__name__}: {detail}")
                count += 1
                continue
            hypothesis = strip_special(text or "")
            samples_16k, _ = audio_samples_16k(audio)
            record = {"model": name, "split": split, "id": sample_id(sample), "audio": audio,
                      "reference": reference, "hypothesis": hypothesis,
                      "seconds": round(time.time() - began, 4),
                      "audio_seconds": round(samples_16k / SAMPLE_RATE, 3)}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            count += 1
            events.progress(count, total, model=name, split=split)
            say(f"[{count}/{total}] {name} {split} {record['id']}: {hypothesis}")
    del model
    if failed == len(todo):
        raise WorkerError(f"{name}: no clip could be transcribed (see the lines above)")
    if failed:
        say(f"{name}: {failed} clip(s) without a transcript; they are scored as missing (all deletions)")
    if shards == 1:
        events.artifact("predictions", part, model=name)
    return count


def merge_predictions(target: Path, shards: int) -> None:
    statuses = [target / f"status.shard-{shard}-of-{shards}.json" for shard in range(shards)]
    states = []
    for path in statuses:
        try:
            states.append(json.loads(path.read_text(encoding="utf-8")).get("state"))
        except (OSError, ValueError):
            states.append(None)
    if not all(s == "complete" for s in states):
        return  # failed or cut short in a shard: its files stay as the record (and for a resume)
    records = []
    for shard in range(shards):
        records += read_done_lines(target / f"predictions.shard-{shard}-of-{shards}.jsonl")
    write_model_status(target, (0, 1), "complete", clips=len(records))
    atomic_write(target / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kimi_tui.workers.kimi_audio_worker")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--checkout", required=True, help="root of the Kimi-Audio checkout")
        p.add_argument("--link", action="append", default=[], metavar="HUB_ID=FOLDER")

    p = sub.add_parser("official", help="run an official command offline: ... -- ARGV")
    common(p)
    p.add_argument("--merge-lora", nargs=3, metavar=("ADAPTER", "BASE", "MERGED"))
    p.add_argument("--keep-merged", action="store_true")
    p.add_argument("--copy-tokenizer", nargs=2, metavar=("BASE", "EXPORT"))
    p.add_argument("--bf16", metavar="FOLDER")
    p.add_argument("--default-dtype", choices=("bfloat16", "float16", "float32"),
                   help="torch's default dtype for the official command (its models are built without one)")
    p.add_argument("--output", action="append", metavar="FOLDER")

    p = sub.add_parser("extract", help="semantic audio tokens for every audio message")
    common(p)
    p.add_argument("--base-model", required=True)
    p.add_argument("--split", action="append", required=True, metavar="NAME=IN.jsonl:OUT.jsonl")
    p.add_argument("--work", required=True, help="folder for the resumable per-shard files")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--shard")

    p = train_parser = sub.add_parser("train", help="fine-tune on the official model and data classes")
    common(p)
    p.add_argument("--model", required=True, help="the converted model (finetune_codes.model output)")
    p.add_argument("--tokenizer", required=True, help="the base model folder (its text tokenizer)")
    p.add_argument("--data", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--method", choices=("full", "lora"), default="lora")
    p.add_argument("--batch-size", type=int, default=1, help="samples per forward on each GPU")
    p.add_argument("--batching", choices=("kimi-tui", "official"), default="kimi-tui",
                   help="kimi-tui: padded batches by length + Whisper features once per clip; official: micro-batch 1")
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--learning-rate", type=float, default=1e-5)
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup-ratio", type=float, default=0.0)
    p.add_argument("--lr-scheduler", default="linear")
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--save-steps", type=int, required=True)
    p.add_argument("--save-total-limit", type=int, default=0)
    p.add_argument("--logging-steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--eval-ratio", type=float, default=0.0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--model-max-length", type=int, default=8192)
    p.add_argument("--total-steps", type=int, default=0, help="the plan's step count, checked against the Trainer's")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=int, default=16)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--lora-targets", nargs="+", default=["q_proj", "k_proj", "v_proj", "o_proj"])
    p.add_argument("--zero-stage", type=int, choices=(2, 3))
    p.add_argument("--offload-optimizer", action="store_true")
    p.add_argument("--offload-param", action="store_true")
    p.add_argument("--resume-from")

    p = sub.add_parser("check-batching", parents=[train_parser], add_help=False, conflict_handler="resolve",
                       help="batched loss and gradients against the official micro-batch-1 forwards, on this model")
    p.add_argument("--output", default="", help=argparse.SUPPRESS)
    p.add_argument("--save-steps", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--samples", type=int, default=4, help="samples compared (the longest and the shortest ones)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest relative error of the gradients and the losses (bf16 needs ~3e-2)")
    p.add_argument("--report", help="write the report (JSON) here too")

    p = sub.add_parser("transcribe", help="greedy text with KimiAudio into NAME/predictions.jsonl")
    common(p)
    p.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER")
    p.add_argument("--jsonl", action="append", required=True, metavar="SPLIT=FILE")
    p.add_argument("--output", required=True)
    p.add_argument("--shell", required=True, help="base model folder that gives checkpoints a tokenizer and Whisper")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--text-repetition-penalty", type=float, default=1.0)
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--shard")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split_at = argv.index("--")
        argv, command = argv[:split_at], argv[split_at + 1:]
    args = build_parser().parse_args(argv)
    events = EventWriter()
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def body() -> int:
        if args.command == "official":
            return cmd_official(args, command, events)
        code = {"extract": cmd_extract, "train": cmd_train, "transcribe": cmd_transcribe,
                "check-batching": cmd_check_batching}[args.command](args, events)
        if code == 0:
            end_process_group()
        return code

    # An unexpected exception keeps Python's own traceback and exit status 1.
    return run_command(body, events, failed=lambda message: (f"kimi-audio {args.command} failed: {message}", message),
                       stopped=(f"kimi-audio {args.command}: stopped", ""))


if __name__ == "__main__":
    exit_rank(main())
