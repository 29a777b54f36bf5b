"""Kimi-Audio at full size on one GPU: the official micro-batch-1 loop, kimi-tui's batched LoRA, and the
seed's ZeRO-3 + CPU offload fix, on the same model and data in one call.

Why: the product's claim is that its batched LoRA trains Kimi-Audio-7B many times faster than the official
loop on the same GPU (and far faster than the offload the seed fell back to). A claim like that is only
worth a ratio measured in one run, against baselines run the same way: the same random-initialised model of
the published architecture (built with the official classes, benchmarks/kimi_audio_gpu/build_checkpoint.py),
the same samples (8 s clips: 100 audio tokens, a 30-character transcript, ~150 tokens), the same Trainer.

Each setup runs in a process of its own (clean peak memory; DeepSpeed needs its own), capped at 80 GB of the
GPU (``torch.cuda.set_per_process_memory_fraction``) to hold the "fits one 80 GB GPU" claim:
  official   LoRA r=8 on the LM's q/k/v/o, the official collate_fn and finetune.compute_loss, micro-batch 1,
             gradient accumulation 4 (the official loop shape; Whisper recomputed every step)
  batched    the same LoRA through kimi_tui/workers/kimi_audio_batching.py, batch sizes tried from the
             largest down, the largest that fits 80 GB reported (Whisper features once per clip)
  offload    full fine-tuning with kimi-tui's DeepSpeed ZeRO-3 config, optimizer and parameters offloaded
             to the CPU, micro-batch 1, accumulation 4: the seed's fix, at the depth the host RAM allows
             (stated in the output; ~27 bytes of host RAM per parameter)
For each: samples/s, tokens/s, peak GPU memory (NVML, sampled by the driver, and torch's own peak), the
process's peak host RSS, and the LM's model FLOP utilisation (4 x the LM's matrix parameters per token for
LoRA, 6 x for full fine-tuning, against 790 TFLOP/s of dense bf16 measured on an H200; embeddings excluded).

Runs under the test bed's interpreter (the official code's packages: transformers 4.49, peft, deepspeed):
    python benchmarks/kimi_audio_gpu.py --checkout CK --whisper DIR [--size full|tiny] [--out results.json]
``--size tiny`` runs the same code on a CPU in seconds (a dry run, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE / "kimi_audio_gpu"))

PEAK_TFLOPS = 790.0  # dense bf16 on an H200, measured here (../.library/device/KINDS.md)
CAP_BYTES = 80 * 1024**3


def say(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------------------
# One setup, in its own process
# ---------------------------------------------------------------------------


def synthetic_samples(folder: Path, n: int, seconds, chars, offset: int, seed: int = 0) -> list[dict]:
    """n ASR samples in the official JSONL shape: a noise clip, its GLM-4 tokens (12.5 Hz), a transcript.
    ``seconds`` and ``chars`` are one value for all, or a list (one per sample)."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(seed)
    text = "今天天气很好我们一起去公园散步然后回家吃饭晚上看书学习早点休息明天继续工作"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        clip_s = seconds[i % len(seconds)] if isinstance(seconds, list) else seconds
        n_chars = chars[i % len(chars)] if isinstance(chars, list) else chars
        frames = int(clip_s * 16000)
        path = folder / f"clip{i:03d}.wav"
        if not path.exists():
            soundfile.write(str(path), (rng.standard_normal(frames) * 0.1).astype("float32"), 16000)
        tokens = (offset + rng.integers(0, 16384, (frames - 1) // 1280 + 1)).tolist()
        start = int(rng.integers(0, len(text)))
        transcript = (text * 3)[start:start + n_chars]
        samples.append({"task_type": "understanding", "conversation": [
            {"role": "user", "message_type": "text", "content": "请将语音内容转录为文字。"},
            {"role": "user", "message_type": "audio", "content": str(path), "audio_tokens": tokens},
            {"role": "assistant", "message_type": "text", "content": transcript}]})
    return samples


def build_model(args, layers: int | None = None):
    """KimiAudioModel of the published architecture (or fewer layers), random, bf16, on the GPU if any."""
    import torch
    from build_checkpoint import LM_FULL, LM_TINY, build

    from finetune_codes.configuration_moonshot_kimia import KimiAudioConfig
    from finetune_codes.model import KimiAudioModel

    values = dict(LM_FULL if args.size == "full" else LM_TINY)
    if layers is not None:  # the offload setup: as deep as the host RAM allows, one MIMO layer
        values.update(num_hidden_layers=layers, kimia_mimo_layers=1, kimia_mimo_transformer_from_layer_index=layers - 1)
    device = "cuda" if torch.cuda.is_available() and layers is None else "cpu"
    # Whisper comes from from_pretrained inside the constructor, which leaves it on the CPU: move it all.
    return build(KimiAudioModel, KimiAudioConfig(**values), device, torch.bfloat16).to(device)


def lm_matrix_params(model) -> int:
    lm = model.get_base_model() if hasattr(type(model), "get_base_model") else model
    return sum(p.numel() for n, p in lm.named_parameters()
               if not n.startswith("whisper_model") and "embed_tokens" not in n and "lora_" not in n)


def add_lora(model):
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad_(False)
    targets = sorted(n for n, _ in model.named_modules()
                     if n.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj") and not n.startswith("whisper_model"))
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets, bias="none"))


class StepClock:
    """Wall time of each optimizer step, the first ones (warm-up) left out of the rate."""

    def __init__(self):
        self.times = []

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                clock.times.append(time.perf_counter())

        return Clock()

    def rate(self, warmup: int) -> tuple[float, int]:
        """(seconds per optimizer step, steps measured)."""
        kept = self.times[warmup:]
        if len(kept) < 2:
            raise RuntimeError(f"only {len(self.times)} steps timed")
        return (kept[-1] - kept[0]) / (len(kept) - 1), len(kept) - 1


def train_once(args, model, samples, tokenizer, *, batch: int, accumulation: int, batched: bool, steps: int,
               deepspeed: dict | None = None) -> dict:
    import torch
    from transformers import Trainer, TrainingArguments

    import kimi_tui.workers.kimi_audio_batching as batching
    from finetune import compute_loss
    from finetune_codes.datasets import LazySupervisedDataset

    whisper = batching.unwrap(model).whisper_model
    dataset = LazySupervisedDataset(samples, whisper_model=whisper, text_tokenizer=tokenizer, max_len=8192,
                                    kimia_token_offset=batching.unwrap(model).config.kimia_token_offset)
    tokens = [int(dataset[i]["input_ids"].shape[-1]) for i in range(len(dataset))]
    trainer_class, collator, loss = Trainer, dataset.collate_fn, compute_loss
    train_set = dataset
    if batched:
        batching.install(model)
        train_set = batching.KeyedDataset(dataset, samples)
        trainer_class = batching.batched_trainer_class(Trainer, train_set.lengths)
        collator, loss = batching.collate, batching.batched_loss
    out = Path(args.work) / f"trainer-{os.getpid()}"
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
        max_steps=steps, learning_rate=1e-5, bf16=torch.cuda.is_available() or deepspeed is None,
        logging_steps=10**6, save_strategy="no", report_to=[], dataloader_pin_memory=False,
        remove_unused_columns=False, deepspeed=deepspeed, use_cpu=not torch.cuda.is_available(),
        prediction_loss_only=True,
    )
    clock = StepClock()
    trainer = trainer_class(model=model, args=targs, train_dataset=train_set, data_collator=collator,
                            compute_loss_func=loss, callbacks=[clock.callback()])
    began = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - began
    warmup = min(3, max(1, steps // 4))
    per_step, measured = clock.rate(warmup)
    per_sample_tokens = sum(tokens) / len(tokens)
    samples_per_step = batch * accumulation
    return {"batch": batch, "accumulation": accumulation, "steps": steps, "steps_timed": measured,
            "s_per_step": per_step, "samples_per_s": samples_per_step / per_step,
            "tokens_per_s": samples_per_step * per_sample_tokens / per_step, "tokens_per_sample": per_sample_tokens,
            "train_wall_s": wall}


def peak_rss_gb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    return 0.0


def run_one(args) -> dict:
    import torch

    import kimi_tui.workers.kimi_audio_worker as worker

    checkout = Path(args.checkout).resolve()
    os.chdir(checkout)
    sys.path.insert(0, str(checkout))
    worker.link_hub_ids(checkout, [f"openai/whisper-large-v3={args.whisper}"])
    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_BYTES / torch.cuda.get_device_properties(0).total_memory))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, trust_remote_code=True)
    offset = 152064
    samples = synthetic_samples(Path(args.work) / "clips", args.samples, args.seconds, args.chars, offset)
    result: dict = {"setup": args.one}
    began = time.perf_counter()
    if args.one == "offload":
        from kimi_tui.workers.deepspeed_setup import prepare_deepspeed

        for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                           "MASTER_PORT": str(29500 + os.getpid() % 1000)}.items():
            os.environ.setdefault(key, value)
        ds = prepare_deepspeed(Path(args.work) / "ds", 3, True, True, torch.cuda.is_available(), True)
        model = build_model(args, layers=args.offload_layers)
        result["layers"] = args.offload_layers
        result["trained_params"] = sum(p.numel() for p in model.parameters())
        result["lm_matrix_params"] = lm_matrix_params(model)
        result["build_s"] = time.perf_counter() - began
        result.update(train_once(args, model, samples, tokenizer, batch=1, accumulation=4, batched=False,
                                 steps=args.offload_steps, deepspeed=ds))
        flops_per_token = 6 * result["lm_matrix_params"]
    else:
        model = add_lora(build_model(args))
        result["lm_matrix_params"] = lm_matrix_params(model)
        result["trained_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        result["build_s"] = time.perf_counter() - began
        flops_per_token = 4 * result["lm_matrix_params"]
        if args.one == "batched" and args.check_batches:
            # The proof at full size, on this model, before its speed is worth anything (bf16: rounding only).
            import kimi_tui.workers.kimi_audio_batching as batching
            from finetune import compute_loss
            from finetune_codes.datasets import LazySupervisedDataset

            lm = batching.unwrap(model)
            mixed = synthetic_samples(Path(args.work) / "varied", 4, [8.0, 2.0, 5.0, 3.0], [30, 6, 18, 10], offset, 1)
            dataset = LazySupervisedDataset(mixed, whisper_model=lm.whisper_model, text_tokenizer=tokenizer,
                                            max_len=8192, kimia_token_offset=lm.config.kimia_token_offset)
            varied = batching.KeyedDataset(dataset, mixed)
            with torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16):
                result["equivalence"] = batching.check_equivalence(model, varied, dataset.collate_fn, compute_loss, 4)
            model.train()
            lm.forward = type(lm).forward.__get__(lm)  # train_once installs the batched forward afresh
        if args.one == "official":
            result.update(train_once(args, model, samples, tokenizer, batch=1, accumulation=4, batched=False,
                                     steps=args.steps))
        else:
            tried = []
            for batch in args.batch_sizes:
                try:
                    result.update(train_once(args, model, samples, tokenizer, batch=batch, accumulation=1,
                                             batched=True, steps=args.steps))
                    break
                except torch.cuda.OutOfMemoryError:
                    tried.append(batch)
                    say(f"batch {batch}: out of memory under the 80 GB cap; trying a smaller one")
                    import gc

                    gc.collect()
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
            result["did_not_fit"] = tried
    result["mfu"] = result["tokens_per_s"] * flops_per_token / (PEAK_TFLOPS * 1e12)
    result["torch_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9 if torch.cuda.is_available() else 0.0
    result["host_rss_peak_gb"] = peak_rss_gb()
    return result


# ---------------------------------------------------------------------------
# The driver: each setup in a child, NVML sampled from here
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", required=True)
    parser.add_argument("--whisper", required=True, help="a whisper-large-v3 folder of the test bed")
    parser.add_argument("--tokenizer", required=True, help="the test bed's base model folder (its text tokenizer)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full")
    parser.add_argument("--setups", default="official,batched,offload")
    parser.add_argument("--batch-sizes", default="48,32,24,16", help="tried from the first down until one fits")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--offload-steps", type=int, default=5)
    parser.add_argument("--offload-layers", type=int, default=4, help="LM layers of the offload setup (host RAM)")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--chars", type=int, default=30)
    parser.add_argument("--work", default="/tmp/kimi_audio_gpu_bench")
    parser.add_argument("--out", default="")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a setup may take")
    parser.add_argument("--check-batches", type=int, default=1, help="1: check_equivalence on the model first")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in str(args.batch_sizes).split(",")]
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0

    from gpu_sampling import GpuSampler

    results = []
    for setup in args.setups.split(","):
        say(f"== {setup}")
        cmd = [sys.executable, __file__, "--one", setup] + [a for a in (argv if argv is not None else sys.argv[1:])]
        began = time.perf_counter()
        with GpuSampler(interval=0.2) as gpus:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                output, code = proc.stdout + proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as exc:
                output, code = (exc.stdout or b"").decode() + (exc.stderr or b"").decode(), "timeout"
        found = [json.loads(line[7:]) for line in output.splitlines() if line.startswith("RESULT ")]
        if not found:
            say(f"{setup}: no result (exit {code}); last lines:\n" + "\n".join(output.splitlines()[-25:]))
            results.append({"setup": setup, "failed": str(code)})
            continue
        result = found[0]
        peaks = gpus.peak_mib_per_gpu()
        result["nvml_peak_gib"] = max(peaks.values()) / 1024 if peaks else 0.0
        result["process_wall_s"] = time.perf_counter() - began
        results.append(result)
        say(json.dumps(result))
    say("\nsetup      batch x acc  samples/s  tokens/s   MFU   GPU peak GiB (NVML / torch)  host RSS GB")
    for r in results:
        if "failed" in r:
            say(f"{r['setup']:10} failed ({r['failed']})")
            continue
        say(f"{r['setup']:10} {r['batch']:>5} x {r['accumulation']:<3} {r['samples_per_s']:9.2f} {r['tokens_per_s']:9.0f} "
            f"{100 * r['mfu']:5.1f}%  {r['nvml_peak_gib']:8.1f} / {r['torch_peak_gb'] / 1.0737:6.1f}        "
            f"{r['host_rss_peak_gb']:6.1f}" + (f"   ({r['layers']} LM layers)" if "layers" in r else ""))
    by = {r["setup"]: r for r in results if "failed" not in r}
    ratios = {}
    if "official" in by and "batched" in by:
        ratios["batched_over_official_samples_per_s"] = by["batched"]["samples_per_s"] / by["official"]["samples_per_s"]
    if "offload" in by and "batched" in by:
        ratios["batched_over_offload_samples_per_s"] = by["batched"]["samples_per_s"] / by["offload"]["samples_per_s"]
    for key, value in ratios.items():
        say(f"{key}: {value:.1f}x")
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "ratios": ratios, "size": args.size,
                                              "date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    return 0 if all("failed" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
