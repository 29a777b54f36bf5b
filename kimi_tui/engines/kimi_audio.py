"""The kimi-audio engine: plans that drive the user's checkout of the official Kimi-Audio code.

Every plan runs with the checkout root as working directory (the official code
opens ``finetune_codes/...`` and hub-id folders relative to it), under the
interpreter of the user's Kimi-Audio environment (``[kimi_audio] python``), offline:
the worker links ``openai/whisper-large-v3``, ``THUDM/glm-4-voice-tokenizer`` and
``moonshotai/Kimi-Audio-7B(-Instruct)`` in the checkout to the configured folders and
``HF_HUB_OFFLINE=1`` is set, so no stage can start a 43 GB download.

That interpreter lacks kimi-tui's dependencies, so the worker and the event
writer (stdlib-only modules) are copied into ``<project>/.kimi-tui/lib`` and the
copy is run as a file; ``PYTHONPATH`` holds the checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kimi_tui.checkpoints import list_checkpoints
from kimi_tui.engines import (OFFLINE_ENV, STAGES, Schedule, audio_unchanged, count_lines, evaluated_models,
    prepare_plan, require_checkpoints, schedule_args, scoring_args, torchrun, train_schedule, trains_on)
from kimi_tui.engines.base import Engine
from kimi_tui.errors import KimiTuiError
from kimi_tui.project import Project
from kimi_tui.runs import StagePlan

if TYPE_CHECKING:
    from kimi_tui.lint import Lint

#: The stdlib-only files the worker needs, relative to the kimi_tui package.
WORKER_FILES = ("__init__.py", "events.py", "data/fingerprints.py", "workers/__init__.py", "workers/deepspeed_setup.py", "workers/disk_full.py",
                "workers/gpus.py", "workers/kimi_audio_batching.py", "workers/kimi_audio_worker.py", "workers/runtime.py",
                "workers/trainer_events.py", "workers/training_guards.py")
WHISPER_ID = "openai/whisper-large-v3"
GLM4_ID = "THUDM/glm-4-voice-tokenizer"
BASE_IDS = ("moonshotai/Kimi-Audio-7B", "moonshotai/Kimi-Audio-7B-Instruct")


#: Interpreter probes by (interpreter, its modification time): one subprocess per environment per session.
_PROBES: dict[tuple[str, float], dict] = {}
#: Preflight fields that name a package of the environment: the user fixes them through kimi_audio.python.
_ENVIRONMENT_FIELDS = ("kimi_audio.transformers", "kimi_audio.eval_strategy", "kimi_audio.torch", "kimi_audio.cuda",
                       "kimi_audio.flash_attn", "kimi_audio.deepspeed")


def _cached_probe(python: str) -> dict:
    from kimi_tui.engines.kimi_audio_preflight import probe_interpreter

    try:
        key = (os.path.abspath(python), os.stat(python).st_mtime)
    except OSError:
        return probe_interpreter(python)
    if key not in _PROBES:
        _PROBES[key] = probe_interpreter(python)
    return _PROBES[key]


class KimiAudioEngine(Engine):
    name = "kimi-audio"
    label = "the official Kimi-Audio fine-tuning"
    stages = STAGES
    resumable_stages = ("train", "evaluate")
    trains_in_fp32 = False  # its Whisper encoder runs in bf16 only
    worker_files = WORKER_FILES

    # -- configuration ------------------------------------------------------

    def _folder(self, project: Project, key: str, *, required: bool = True) -> Path | None:
        value = getattr(project.config.kimi_audio, key)
        path = project.path(value) if value else None
        if path is None:
            if required:
                raise KimiTuiError(f"kimi-tui.toml [kimi_audio] {key} is not set: give the folder's path")
            return None
        if not path.is_dir():
            raise KimiTuiError(f"kimi-tui.toml [kimi_audio] {key} = {value!r}: the folder {path} does not exist")
        return path.resolve()

    def checkout(self, project: Project) -> Path:
        path = self._folder(project, "checkout")
        missing = [p for p in ("finetune.py", "finetune_codes/model.py", "kimia_infer/api/kimia.py")
                   if not (path / p).is_file()]
        if missing:
            raise KimiTuiError(
                f"kimi-tui.toml [kimi_audio] checkout: {path} is not a Kimi-Audio checkout (no {', '.join(missing)}). "
                "Clone it with `git clone --recursive https://github.com/MoonshotAI/Kimi-Audio` and point checkout at it."
            )
        return path

    def base_model(self, project: Project) -> Path:
        path = self._folder(project, "base_model")
        if not (path / "config.json").is_file():
            raise KimiTuiError(f"kimi-tui.toml [kimi_audio] base_model: {path} has no config.json; point it at a "
                               "local copy of moonshotai/Kimi-Audio-7B")
        return path

    def python(self, project: Project) -> str:
        value = project.config.kimi_audio.python
        if not value:
            return sys.executable
        path = project.path(value)
        if path is not None and path.is_file():
            return str(path)  # a venv's bin/python is a symlink: keep it, it selects the venv
        found = shutil.which(value)
        if found:
            return found
        raise KimiTuiError(f"kimi-tui.toml [kimi_audio] python = {value!r}: no such interpreter; give the path of "
                           "the python of your Kimi-Audio environment (e.g. ~/kimi-env/bin/python)")

    def links(self, project: Project) -> list[str]:
        base = self.base_model(project)
        whisper = self._folder(project, "whisper", required=False)
        if whisper is None and (base / "whisper-large-v3").is_dir():
            whisper = base / "whisper-large-v3"
        glm4 = self._folder(project, "glm4_tokenizer", required=False)
        links = [f"{hub_id}={base}" for hub_id in BASE_IDS]
        if whisper is not None:
            links.append(f"{WHISPER_ID}={whisper}")
        if glm4 is not None:
            links.append(f"{GLM4_ID}={glm4}")
        return [arg for link in links for arg in ("--link", link)]

    def _env(self, project: Project, checkout: Path, **extra: str) -> dict[str, str]:
        env = dict(OFFLINE_ENV)
        env["PYTHONPATH"] = str(checkout)
        env.update(extra)
        return env

    def worker_script(self, project: Project) -> str:
        return str(self.worker_lib(project) / "kimi_tui" / "workers" / "kimi_audio_worker.py")

    def _worker(self, project: Project, command: str) -> tuple[list[str], Path]:
        checkout = self.checkout(project)
        argv = [self.python(project), self.worker_script(project), command, "--checkout", str(checkout)]
        return argv + self.links(project), checkout

    # -- data ---------------------------------------------------------------

    def tokens_jsonl(self, project: Project, split: str) -> Path:
        return project.features_dir / f"{split}.jsonl"

    def schedule(self, project: Project) -> Schedule:
        data = self.tokens_jsonl(project, "train")
        if not data.exists():
            raise KimiTuiError(f"{data} does not exist yet: run the extract stage first")
        t = project.config.train
        n = count_lines(data)
        return train_schedule(n - int(n * t.eval_ratio), t)  # the official split holds out the first fraction

    # -- plans --------------------------------------------------------------

    def _plan_prepare(self, project: Project) -> StagePlan:
        if project.config.data.max_duration_s <= 0 or project.config.data.max_duration_s > 30:
            raise KimiTuiError(
                f"kimi-tui.toml [data] max_duration_s = {project.config.data.max_duration_s:g}: Kimi-Audio needs clips "
                "of 30 s or less (longer ones are cut in 30 s chunks and have hung multi-GPU runs). Set it to 30."
            )
        plan = prepare_plan(project)  # the same JSONL: one audio per sample, absolute paths
        plan.description += " (Kimi-Audio: one audio per sample, at most 30 s)"
        return plan

    def _plan_extract(self, project: Project) -> StagePlan:
        if not project.train_jsonl.exists():
            raise KimiTuiError(f"{project.train_jsonl} does not exist yet: run the prepare stage first")
        audio_unchanged(project)  # the audio is what prepare checked, or the stage refuses
        argv, checkout = self._worker(project, "extract")
        argv += ["--base-model", str(self.base_model(project))]
        splits = [("train", project.train_jsonl)]
        if project.test_jsonl.exists():
            splits.append(("test", project.test_jsonl))
        for name, path in splits:
            argv += ["--split", f"{name}={path}:{self.tokens_jsonl(project, name)}"]
        argv += ["--work", str(project.features_dir / "extract"), "--gpus", str(project.config.train.num_gpus)]
        return StagePlan(
            stage="extract", argv=argv, env=self._env(project, checkout), cwd=str(checkout),
            inputs=[str(p) for _, p in splits], outputs=[str(project.features_dir)],
            description=("GLM-4-Voice semantic tokens (12.5 Hz) for every audio message through the official "
                         "prompt manager; resumable, bad files skipped and listed"),
        )

    def _plan_convert(self, project: Project) -> StagePlan:
        argv, checkout = self._worker(project, "official")
        out = project.base_model_dir
        if project.config.kimi_audio.convert_bf16:
            argv += ["--default-dtype", "bfloat16"]
        argv += ["--output", str(out), "--", self.python(project), "-m", "finetune_codes.model",
                 "--model_name", str(self.base_model(project)), "--output_dir", str(out)]
        return StagePlan(
            stage="convert", argv=argv, env=self._env(project, checkout), cwd=str(checkout),
            inputs=[str(self.base_model(project))], outputs=[str(out)],
            description=("the official finetune_codes.model CLI: the base model + Whisper encoder as one trainable model"
                         + (" (in bf16: torch's default dtype set before the official code runs)"
                            if project.config.kimi_audio.convert_bf16 else "")),
        )

    def _plan_train(self, project: Project, resume: bool = False) -> StagePlan:
        if not (project.base_model_dir / "config.json").exists():
            raise KimiTuiError(f"{project.base_model_dir} has no model yet: run the convert stage first")
        cfg = project.config
        t, ka, ds = cfg.train, cfg.kimi_audio, cfg.deepspeed
        if not t.bf16:
            from kimi_tui.engines.kimi_audio_preflight import BF16_FIX, BF16_WHY
            raise KimiTuiError(f"kimi-tui.toml [train] bf16 = false: {BF16_WHY} {BF16_FIX}")
        if t.batch_size != 1 and ka.batching == "official":
            raise KimiTuiError(
                f"kimi-tui.toml [train] batch_size = {t.batch_size} with [kimi_audio] batching = \"official\": the "
                "official loop only trains with a micro batch of 1. Set batching = \"kimi-tui\" (batches padded "
                "with attention masks, proven equal to the official loss), or batch_size = 1."
            )
        sched = self.schedule(project)
        require_checkpoints(sched, t, cfg.engine.device)
        audio_unchanged(project)  # the official loader reads the audio again for Whisper features
        checkout = self.checkout(project)
        python = self.python(project)
        distributed = t.num_gpus > 1 or t.num_nodes > 1 or ds.enabled
        if distributed:
            launcher = torchrun(python, t.num_gpus, t.num_nodes, t.rdzv_endpoint, f"kimi-tui-{project.root.name}")
            argv = launcher + [self.worker_script(project), "train"]
        else:
            argv = [python, self.worker_script(project), "train"]
        argv += ["--checkout", str(checkout)] + self.links(project)
        argv += [
            "--model", str(project.base_model_dir),
            "--tokenizer", str(self.base_model(project)),
            "--data", str(self.tokens_jsonl(project, "train")),
            "--output", str(project.training_dir),
            "--method", ka.method,
            "--batch-size", str(t.batch_size),
            "--batching", ka.batching,
            *schedule_args(t, sched, cfg.engine.device),
            "--max-grad-norm", repr(t.max_grad_norm),
            "--eval-ratio", repr(t.eval_ratio),
            "--total-steps", str(sched.total_steps),
        ]
        if t.bf16:
            argv.append("--bf16")
        if ka.method == "lora":
            argv += ["--lora-rank", str(ka.lora_rank), "--lora-alpha", str(ka.lora_alpha),
                     "--lora-dropout", repr(ka.lora_dropout), "--lora-targets", *ka.lora_targets]
        if ds.enabled:
            argv += ["--zero-stage", str(ds.stage)]
            argv += ["--offload-optimizer"] if ds.offload_optimizer else []
            argv += ["--offload-param"] if ds.offload_param and ds.stage == 3 else []
        if resume:
            complete = [c for c in list_checkpoints(project.training_dir) if c.complete]
            if not complete:
                raise KimiTuiError(f"--resume: {project.training_dir} has no complete checkpoint to resume from")
            argv += ["--resume-from", str(complete[-1].path)]
        where = trains_on(t, cfg.engine.device)
        how = "LoRA" if ka.method == "lora" else "full fine-tuning"
        if ds.enabled:
            how += f", DeepSpeed ZeRO-{ds.stage}" + (" + optimizer offload" if ds.offload_optimizer else "") + (
                " + parameter offload" if ds.offload_param and ds.stage == 3 else "")
        how += (f", batches of {t.batch_size} by length" if ka.batching == "kimi-tui" and t.batch_size > 1
                else ", the official micro-batch 1 loop" if ka.batching == "official" else ", micro-batch 1")
        if ka.batching == "kimi-tui" and ka.method == "lora":
            how += ", Whisper features computed once per clip"
        return StagePlan(
            stage="train", argv=argv,
            env=self._env(project, checkout, CUDA_DEVICE_MAX_CONNECTIONS="1"), cwd=str(checkout),
            inputs=[str(project.base_model_dir), str(self.tokens_jsonl(project, "train"))],
            outputs=[str(project.training_dir)],
            description=(f"{how} on {where}: {sched.total_steps} optimizer steps ({sched.steps_per_epoch}/epoch), "
                         f"checkpoints at steps {', '.join(map(str, sched.checkpoint_steps))} and the final model"),
        )

    def _plan_export(self, project: Project) -> StagePlan:
        final = project.training_dir / "final"
        lora = (final / "adapter_config.json").is_file()
        if not lora and not (final / "config.json").is_file():
            raise KimiTuiError(f"{final} does not exist yet: run the train stage first")
        argv, checkout = self._worker(project, "official")
        base = self.base_model(project)
        source = final
        if lora:
            source = project.training_dir / "final-merged"
            argv += ["--merge-lora", str(final), str(project.base_model_dir), str(source)]
        argv += ["--copy-tokenizer", str(base), str(project.export_dir)]
        if project.config.kimi_audio.export_bf16:
            # bf16 from the start (no fp32 copy on disk or in memory), then every file checked
            argv += ["--default-dtype", "bfloat16", "--bf16", str(project.export_dir)]
        argv += ["--output", str(project.export_dir), "--", self.python(project), "-m", "finetune_codes.model",
                 "--action", "export_model", "--input_dir", str(source), "--output_dir", str(project.export_dir)]
        steps = (["merge the LoRA adapters into the converted model"] if lora else []) + [
            "the official export", "tokenizer files copied from the base model"] + (
            ["weights to bf16"] if project.config.kimi_audio.export_bf16 else [])
        return StagePlan(
            stage="export", argv=argv, env=self._env(project, checkout), cwd=str(checkout),
            inputs=[str(final)], outputs=[str(project.export_dir)], description="; ".join(steps),
        )

    def evaluated_models(self, project: Project) -> list[tuple[str, str]]:
        base = str(self.base_model(project)) if project.config.eval.include_base else None
        export = str(project.export_dir) if (project.export_dir / "config.json").exists() else None
        return evaluated_models(project, base, export)

    def unfinished_evaluation(self, project: Project) -> Path:
        folders = sorted(p for p in project.evaluations_dir.glob("*") if p.is_dir()) if project.evaluations_dir.exists() else []
        if not folders or (folders[-1] / "metrics.json").exists():
            raise KimiTuiError(f"--resume: no unfinished evaluation in {project.evaluations_dir} (the last one has "
                               "its metrics); start a new one without --resume")
        return folders[-1]

    def _plan_evaluate(self, project: Project, resume: bool = False) -> StagePlan:
        models = self.evaluated_models(project)
        if not models:
            raise KimiTuiError("nothing to evaluate: check [eval] in kimi-tui.toml, or run train/export first")
        splits = {"test": project.test_jsonl, "train": project.train_jsonl}
        chosen = [(s, splits[s]) for s in project.config.eval.splits if splits[s].exists()]
        if not chosen:
            raise KimiTuiError("no prepared split to evaluate: run the prepare stage first")
        audio_unchanged(project)
        if resume:  # predictions already written are kept; only the missing clips are transcribed
            out = self.unfinished_evaluation(project)
        else:
            out = project.evaluations_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
        transcribe, checkout = self._worker(project, "transcribe")
        for name, path in models:
            transcribe += ["--model", f"{name}={path}"]
        for split, path in chosen:
            transcribe += ["--jsonl", f"{split}={path}"]
        ev = project.config.eval
        transcribe += [
            "--output", str(out), "--shell", str(self.base_model(project)),
            "--max-new-tokens", str(ev.max_new_tokens),
            "--text-repetition-penalty", repr(project.config.kimi_audio.text_repetition_penalty),
            "--gpus", str(project.config.train.num_gpus),
        ]
        argv = [sys.executable, "-m", "kimi_tui.workers.evaluate", "--output", str(out),
                "--train-jsonl", str(project.train_jsonl), *scoring_args(ev), "--"] + transcribe
        env = self._env(project, checkout)
        # The scorer is kimi-tui's own (its interpreter); only the transcriber needs the checkout.
        return StagePlan(
            stage="evaluate", argv=argv, env=env, cwd=str(checkout),
            inputs=[p for _, p in models], outputs=[str(out)],
            description=(f"KimiAudio greedy text (max_new_tokens {ev.max_new_tokens}) on "
                         f"{', '.join(s for s, _ in chosen)} with {', '.join(n for n, _ in models)}, then score"),
        )

    # -- configuration and findings -------------------------------------------

    def train_defaults(self, model: str, n_samples: int | None) -> dict[str, Any]:
        """The [train] part of the kimi-audio-lora-1gpu preset, for the default LoRA method (lr 1e-4)."""
        from kimi_tui.presets import PRESETS

        return {key: value for key, value in PRESETS["kimi-audio-lora-1gpu"][1].items() if key.startswith("train.")}

    def jsonl_audio_base(self, project: Project) -> Path | None:
        checkout = project.config.kimi_audio.checkout
        return project.path(checkout) if checkout.strip() else None

    def lint(self, project: Project) -> list["Lint"]:
        """The kimi-audio engine's settings, then the preflight of the official code (its environment,
        checkout, memory, disk); the schedule and GPU split are checked by the common checks."""
        from kimi_tui.engines.kimi_audio_preflight import bf16_finding, preflight
        from kimi_tui.lint import Lint

        out: list[Lint] = []
        cfg = project.config
        ka, t, ds = cfg.kimi_audio, cfg.train, cfg.deepspeed
        if not 0 < cfg.data.max_duration_s <= 30:
            out.append(Lint(
                "error", "data.max_duration_s",
                f"max_duration_s = {cfg.data.max_duration_s:g}: Kimi-Audio takes clips of 30 s or less (longer audio is cut "
                "in 30 s chunks and has hung multi-GPU ZeRO-3 runs).", "Set data.max_duration_s = 30.",
            ))
        if t.batch_size != 1 and ka.batching == "official":
            out.append(Lint(
                "error", "train.batch_size",
                f'batch_size = {t.batch_size} with kimi_audio.batching = "official": the official loop asserts a micro '
                "batch of 1 (twice).",
                f'Set kimi_audio.batching = "kimi-tui" (padded batches, the official loss per sample), or batch_size = 1 '
                f"and gradient_accumulation_steps = {t.batch_size * t.gradient_accumulation_steps} for the same effective batch.",
            ))
        if (finding := bf16_finding(t.bf16)) is not None:
            out.append(finding)
        paths: dict[str, Path | None] = {}
        for key, what in (("checkout", "your clone of MoonshotAI/Kimi-Audio (git clone --recursive)"),
                          ("base_model", "a local copy of moonshotai/Kimi-Audio-7B (huggingface-cli download "
                                         "moonshotai/Kimi-Audio-7B --local-dir DIR)")):
            try:
                paths[key] = getattr(self, key)(project)
            except KimiTuiError as exc:
                paths[key] = None
                out.append(Lint("error", f"kimi_audio.{key}", str(exc).split(": ", 1)[-1], f"Set it to {what}."))
        for key in ("glm4_tokenizer", "whisper"):
            try:
                paths[key] = self._folder(project, key, required=False)
            except KimiTuiError as exc:
                paths[key] = None
                out.append(Lint("error", f"kimi_audio.{key}", str(exc).split(": ", 1)[-1],
                                'Give the folder\'s path, or "" to use the Hugging Face cache.'))
        try:
            python = self.python(project)
        except KimiTuiError as exc:
            out.append(Lint("error", "kimi_audio.python", str(exc).split(": ", 1)[-1],
                            "Give the python of your Kimi-Audio environment (e.g. ~/kimi-env/bin/python)."))
            return out
        for finding in preflight(
            checkout=paths["checkout"], python=python, base_model=paths["base_model"], n_samples=None,
            epochs=t.epochs, batch_size=t.batch_size, grad_accum=t.gradient_accumulation_steps, save_steps=t.save_steps,
            num_gpus=t.num_gpus * t.num_nodes, method=ka.method, zero_stage=ds.stage if ds.enabled else 0,
            offload_optimizer=ds.enabled and ds.offload_optimizer, offload_param=ds.enabled and ds.offload_param,
            max_audio_tokens=ka.max_audio_tokens, output_dir=project.training_dir, save_total_limit=t.save_total_limit,
            bf16=t.bf16, probe=_cached_probe(python), whisper=paths["whisper"], batching=ka.batching,
            device=cfg.engine.device,
        ):
            if ((finding.field == "train.save_steps" and "not known" in finding.message)
                    or finding.field in ("train.batch_size", "train.bf16")):
                continue  # checked above, and the common schedule check counts the samples itself
            if finding.field in _ENVIRONMENT_FIELDS:
                finding = Lint(finding.level, "kimi_audio.python", finding.message, finding.fix)
            if finding.field == "kimi_audio.checkout" and paths["checkout"] is None:
                continue
            out.append(finding)
        return out

    # -- doctor -----------------------------------------------------------------

    def doctor_header(self, project: Project | None, picked: str | None) -> str:
        if project is None:
            return ("doctor: checking the official Kimi-Audio fine-tuning (the kimi-audio engine; "
                    "--engine whisper or --project DIR checks another)")
        return (f"doctor: checking the kimi-audio engine (the official Kimi-Audio fine-tuning) of {project.root} "
                f'(engine.device = "{project.config.engine.device}"{self.picked_note(project, picked)})')

    def preflight(self, args: argparse.Namespace, project: Project | None,
                  progress: Callable[[str], None]) -> Iterable["Lint"]:
        """The official Kimi-Audio fine-tuning's findings, from the flags and the project's [kimi_audio] settings."""
        from kimi_tui.engines.kimi_audio_preflight import iter_preflight

        values = {
            "n_samples": args.samples, "epochs": args.epochs, "batch_size": args.batch_size,
            "grad_accum": args.grad_accum, "save_steps": args.save_steps, "num_gpus": args.gpus,
            "save_total_limit": args.save_total_limit, "zero_stage": args.zero_stage,
            "offload_optimizer": args.offload_optimizer or None, "offload_param": args.offload_param or None,
            "output_dir": args.output,
        }
        bf16 = True  # what the official recipe trains in; a project says its own
        whisper = None  # the base model's whisper-large-v3/ unless the project names one
        if project is not None:
            from kimi_tui.lint import count_training_samples

            t, ds = project.config.train, project.config.deepspeed
            n, _where = count_training_samples(project)
            from_project = {
                "n_samples": n, "epochs": t.epochs, "batch_size": t.batch_size,
                "grad_accum": t.gradient_accumulation_steps, "save_steps": t.save_steps, "num_gpus": t.num_gpus,
                "save_total_limit": t.save_total_limit, "zero_stage": ds.stage if ds.enabled else None,
                "offload_optimizer": ds.offload_optimizer if ds.enabled else None,
                "offload_param": ds.offload_param if ds.enabled else None,
                "output_dir": str(project.training_dir),
            }
            values = {k: (v if v is not None else from_project.get(k)) for k, v in values.items()}
            bf16 = t.bf16
            ka = project.config.kimi_audio
            args.checkout = args.checkout or (str(project.path(ka.checkout)) if ka.checkout else None)
            args.base_model = args.base_model or (str(project.path(ka.base_model)) if ka.base_model else None)
            whisper = project.path(ka.whisper) if ka.whisper else None
            if not args.python and ka.python:
                args.python = self.python(project)
            args.method = args.method or ka.method
            if ds.enabled is False and args.zero_stage is None and args.method == "full":
                values["zero_stage"] = 0  # the project trains without DeepSpeed
        args.method = args.method or "full"
        defaults = {"epochs": 5, "batch_size": 1, "grad_accum": 1, "save_steps": 1000, "num_gpus": 1,
                    "save_total_limit": 10, "zero_stage": 3, "offload_optimizer": False, "offload_param": False}
        values = {k: (defaults.get(k) if v is None else v) for k, v in values.items()}
        save_steps = values["save_steps"]
        if isinstance(save_steps, str) and save_steps != "auto":
            try:
                save_steps = int(save_steps)
            except ValueError:
                raise KimiTuiError(f"--save-steps must be a whole number or 'auto', not {save_steps!r}") from None
        return iter_preflight(
            checkout=Path(args.checkout) if args.checkout else None,
            python=args.python,
            base_model=Path(args.base_model) if args.base_model else None,
            n_samples=values["n_samples"], epochs=values["epochs"], batch_size=values["batch_size"],
            grad_accum=values["grad_accum"], save_steps=save_steps, num_gpus=values["num_gpus"],
            method=args.method, zero_stage=values["zero_stage"], offload_optimizer=values["offload_optimizer"],
            offload_param=values["offload_param"], max_audio_tokens=args.tokens or 500,
            output_dir=Path(values["output_dir"]) if values["output_dir"] else None,
            save_total_limit=values["save_total_limit"], bf16=bf16, gpu_memory_gb=args.gpu_memory_gb,
            host_ram=args.host_ram_gb, whisper=whisper, progress=progress,
            device=project.config.engine.device if project is not None else "auto",
        )
