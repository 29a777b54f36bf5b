"""The whisper engine: the Kimi-Audio pipeline's shape on a Hugging Face Whisper model.

It runs every stage on a CPU in minutes with the "tiny" model (built from a
config and the training transcripts' characters, no download), which is what
makes the pipeline testable end to end, and it drives any pretrained Whisper
folder on disk (what users compare Kimi-Audio against) on CUDA when present.
All heavy work happens in kimi_tui.workers.whisper_worker.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kimi_tui.engines import (OFFLINE_ENV, STAGES, Schedule, audio_unchanged, count_lines, evaluated_models,
    prepare_plan, require_checkpoints, schedule_args, scoring_args, torchrun, train_schedule, trains_on)
from kimi_tui.engines.base import Engine
from kimi_tui.errors import KimiTuiError
from kimi_tui.project import TINY_SCHEDULE, Project
from kimi_tui.runs import StagePlan

if TYPE_CHECKING:
    from kimi_tui.config import ProjectConfig
    from kimi_tui.lint import Lint

WORKER = [sys.executable, "-m", "kimi_tui.workers.whisper_worker"]

#: doctor's options that only the kimi-audio engine's check reads (the official code's environment and recipe).
KIMI_AUDIO_ONLY_OPTIONS = {"checkout": "--checkout", "python": "--python", "base_model": "--base-model",
                           "method": "--method", "zero_stage": "--zero-stage",
                           "offload_optimizer": "--offload-optimizer", "offload_param": "--offload-param",
                           "tokens": "--tokens"}


class WhisperEngine(Engine):
    name = "whisper"
    label = "a Hugging Face Whisper model, tiny or pretrained, in kimi-tui's own environment"
    stages = STAGES
    resumable_stages = ("train",)

    def model_source(self, project: Project) -> str:
        model = project.config.engine.model
        if model == "tiny":
            return "tiny"
        path = project.path(model)
        if path is None or not (path / "config.json").is_file():
            raise KimiTuiError(
                f"kimi-tui.toml [engine] model = {model!r}: not 'tiny' and not a folder holding a "
                "Whisper checkpoint (config.json). Point it at a local copy, e.g. of openai/whisper-small."
            )
        return str(path)

    def schedule(self, project: Project) -> Schedule:
        if not project.train_jsonl.exists():
            raise KimiTuiError(f"{project.train_jsonl} does not exist yet: run the prepare stage first")
        return train_schedule(count_lines(project.train_jsonl), project.config.train)

    def _plan(self, project: Project, stage: str, args: list[str], **kw) -> StagePlan:
        return StagePlan(stage=stage, argv=WORKER + [stage] + args, env=dict(OFFLINE_ENV), cwd=str(project.root), **kw)

    def _plan_prepare(self, project: Project) -> StagePlan:
        return prepare_plan(project)

    def _plan_extract(self, project: Project) -> StagePlan:
        if not project.train_jsonl.exists():
            raise KimiTuiError(f"{project.train_jsonl} does not exist yet: run the prepare stage first")
        audio_unchanged(project)  # the audio is what prepare checked, or the stage refuses
        args = ["--model", self.model_source(project), "--train-jsonl", str(project.train_jsonl)]
        if project.test_jsonl.exists():
            args += ["--test-jsonl", str(project.test_jsonl)]
        args += ["--output", str(project.features_dir)]
        return self._plan(project, "extract", args, inputs=[str(project.train_jsonl)],
                          outputs=[str(project.features_dir)],
                          description="log-mel features of every clip, computed once for all epochs")

    def _plan_convert(self, project: Project) -> StagePlan:
        if not (project.features_dir / "feature_extractor").exists():
            raise KimiTuiError(f"{project.features_dir} has no features yet: run the extract stage first")
        args = [
            "--model", self.model_source(project),
            "--train-jsonl", str(project.train_jsonl),
            "--features", str(project.features_dir),
            "--output", str(project.base_model_dir),
            "--seed", str(project.config.train.seed),
        ]
        return self._plan(project, "convert", args, inputs=[str(project.features_dir)],
                          outputs=[str(project.base_model_dir)],
                          description="the starting model: tiny built from the transcripts, or a pretrained copy")

    def _plan_train(self, project: Project, resume: bool = False) -> StagePlan:
        if not (project.base_model_dir / "config.json").exists():
            raise KimiTuiError(f"{project.base_model_dir} has no model yet: run the convert stage first")
        t = project.config.train
        sched = self.schedule(project)
        require_checkpoints(sched, t, project.config.engine.device)
        audio_unchanged(project)
        args = [
            "--model", str(project.base_model_dir),
            "--features", str(project.features_dir),
            "--output", str(project.training_dir),
            "--batch-size", str(t.batch_size),
            *schedule_args(t, sched, project.config.engine.device),
        ]
        if t.bf16:
            args.append("--bf16")
        if resume:
            args.append("--resume")
        ds = project.config.deepspeed
        how = ""
        if ds.enabled:
            # The same ZeRO configuration the kimi-audio engine trains with (workers/deepspeed_setup.py).
            args += ["--zero-stage", str(ds.stage)]
            args += ["--offload-optimizer"] if ds.offload_optimizer else []
            args += ["--offload-param"] if ds.offload_param and ds.stage == 3 else []
            how = f"DeepSpeed ZeRO-{ds.stage}" + (" + optimizer offload" if ds.offload_optimizer else "") + (
                " + parameter offload" if ds.offload_param and ds.stage == 3 else "") + ": "
        where = " on " + trains_on(t, project.config.engine.device)
        plan = self._plan(
            project, "train", args, inputs=[str(project.base_model_dir), str(project.features_dir)],
            outputs=[str(project.training_dir)],
            description=(
                f"{how}{sched.total_steps} optimizer steps ({sched.steps_per_epoch}/epoch){where}, "
                f"checkpoints at steps {', '.join(map(str, sched.checkpoint_steps))} and the final model"
            ),
        )
        if t.num_gpus > 1 or t.num_nodes > 1 or ds.enabled:
            # One process per GPU (DDP or DeepSpeed through the Trainer); on a CPU, gloo processes.
            # DeepSpeed wants torchrun's rank variables even on one GPU.
            launcher = torchrun(sys.executable, t.num_gpus, t.num_nodes, t.rdzv_endpoint, f"kimi-tui-{project.root.name}")
            plan.argv = launcher + ["-m", "kimi_tui.workers.whisper_worker", "train"] + args
        return plan

    def _plan_export(self, project: Project) -> StagePlan:
        final = project.training_dir / "final"
        if not (final / "config.json").exists():
            raise KimiTuiError(f"{final} does not exist yet: run the train stage first")
        args = ["--input", str(final), "--base", str(project.base_model_dir), "--output", str(project.export_dir)]
        return self._plan(project, "export", args, inputs=[str(final)], outputs=[str(project.export_dir)],
                          description="a self-contained inference model (weights, tokenizer, feature extractor)")

    def evaluated_models(self, project: Project) -> list[tuple[str, str]]:
        base = str(project.base_model_dir) if (project.base_model_dir / "config.json").exists() else None
        export = str(project.export_dir) if (project.export_dir / "config.json").exists() else None
        return evaluated_models(project, base, export)

    def _plan_evaluate(self, project: Project) -> StagePlan:
        models = self.evaluated_models(project)
        if not models:
            raise KimiTuiError("nothing to evaluate: run convert/train/export first, or check [eval] in kimi-tui.toml")
        splits = {"test": project.test_jsonl, "train": project.train_jsonl}
        chosen = [(s, splits[s]) for s in project.config.eval.splits if splits[s].exists()]
        if not chosen:
            raise KimiTuiError("no prepared split to evaluate: run the prepare stage first")
        audio_unchanged(project)
        from datetime import datetime

        out = project.evaluations_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
        transcribe = WORKER + ["transcribe"]
        for name, path in models:
            transcribe += ["--model", f"{name}={path}"]
        for split, path in chosen:
            transcribe += ["--jsonl", f"{split}={path}"]
        transcribe += [
            "--output", str(out),
            "--base", str(project.base_model_dir),
            "--batch-size", str(project.config.eval.batch_size),
            "--max-new-tokens", str(project.config.eval.max_new_tokens),
            "--device", project.config.engine.device,
            "--gpus", str(project.config.train.num_gpus),
        ]
        argv = [sys.executable, "-m", "kimi_tui.workers.evaluate", "--output", str(out),
                "--train-jsonl", str(project.train_jsonl), *scoring_args(project.config.eval), "--"] + transcribe
        return StagePlan(
            stage="evaluate", argv=argv, env=dict(OFFLINE_ENV), cwd=str(project.root),
            inputs=[p for _, p in models], outputs=[str(out)],
            description=f"transcribe {', '.join(s for s, _ in chosen)} with {', '.join(n for n, _ in models)}, then score",
        )

    # -- configuration and findings -------------------------------------------

    def from_scratch(self, config: "ProjectConfig") -> bool:
        return config.engine.model == "tiny"

    def train_defaults(self, model: str, n_samples: int | None) -> dict[str, Any]:
        """tiny: the sample's measured schedule (TINY_SCHEDULE) with batch_size = min(9, n); a
        pretrained folder: the whisper-small-finetune preset's [train] part (see
        kimi_tui.project.engine_train_defaults for why)."""
        if model == "tiny":
            settings = {f"train.{key}": value for key, value in TINY_SCHEDULE.items()}
            if n_samples is not None and n_samples >= 1:
                settings["train.batch_size"] = min(TINY_SCHEDULE["batch_size"], n_samples)
            return {**settings, "train.save_steps": "auto", "train.eval_ratio": 0.0}
        from kimi_tui.presets import PRESETS

        return {key: value for key, value in PRESETS["whisper-small-finetune"][1].items() if key.startswith("train.")}

    def lint(self, project: Project) -> list["Lint"]:
        """engine.model: "tiny", or a folder holding a Whisper checkpoint's config.json."""
        from kimi_tui.lint import Lint

        engine = project.config.engine
        if engine.model == "tiny":
            return []
        path = project.path(engine.model)
        if path is None or not path.exists():
            return [Lint(
                "error", "engine.model",
                f"{engine.model!r} is not \"tiny\" and the folder {path} does not exist.",
                'Point it at a local copy of a Whisper checkpoint (e.g. openai/whisper-small, the folder '
                'holding config.json), or use "tiny".',
            )]
        config_json = path / "config.json"
        if not path.is_dir() or not config_json.is_file():
            return [Lint(
                "error", "engine.model",
                f"{path} is not a Whisper checkpoint folder (it has no config.json).",
                "Point it at the folder that holds config.json and the model weights.",
            )]
        try:
            model_type = json.loads(config_json.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError):
            model_type = None
        if model_type is not None and model_type != "whisper":
            return [Lint(
                "error", "engine.model",
                f"{path} holds a {model_type!r} model, not a Whisper one (config.json model_type).",
                "Point it at a Whisper checkpoint folder, or use \"tiny\".",
            )]
        return []

    def lint_training(self, project: Project, on_cpu: bool) -> list["Lint"]:
        """DeepSpeed in kimi-tui's own interpreter (installed; ZeRO-3 on gloo needs a fixed one), and
        eval_ratio, which this engine's train worker does not use."""
        from kimi_tui import lint  # its deepspeed_installed and _installed_version, as tests replace them

        cfg = project.config
        t, ds = cfg.train, cfg.deepspeed
        out: list[Lint] = []
        if ds.enabled and ds.stage == 3 and on_cpu and lint.deepspeed_installed():
            finding = lint.zero3_cpu_gather_finding(lint._installed_version("deepspeed"), t.num_gpus * t.num_nodes,
                                                    sys.executable)
            if finding is not None:
                out.append(finding)
        if ds.enabled and not lint.deepspeed_installed():
            out.append(lint.Lint(
                "error", "deepspeed.enabled",
                f"deepspeed is not installed for {sys.executable}, which runs the whisper engine's training.",
                "pip install 'kimi-tui[deepspeed]' in this environment, or set deepspeed.enabled = false.",
            ))
        if t.eval_ratio > 0:
            out.append(lint.Lint(
                "note", "train.eval_ratio", "the whisper engine does not hold out a validation split yet; eval_ratio is ignored.",
                "Keep eval_ratio = 0, and compare checkpoints on the test set in the Evaluation panel.",
            ))
        return out

    # -- doctor -----------------------------------------------------------------

    def doctor_header(self, project: Project | None, picked: str | None) -> str:
        if project is None:
            return ("doctor: checking the whisper engine (kimi-tui's own environment and this machine; "
                    "--project DIR checks a project's settings too)")
        e = project.config.engine
        return (f'doctor: checking the whisper engine of {project.root} (engine.model = "{e.model}", '
                f'engine.device = "{e.device}"{self.picked_note(project, picked)})')

    def preflight(self, args: argparse.Namespace, project: Project | None,
                  progress: Callable[[str], None]) -> Iterable["Lint"]:
        """The whisper engine's findings: the project's settings with doctor's --epochs, --save-steps, ... applied."""
        from pathlib import Path

        from kimi_tui.engines.whisper_preflight import iter_preflight
        from kimi_tui.lint import Lint

        ignored = [flag for key, flag in KIMI_AUDIO_ONLY_OPTIONS.items() if getattr(args, key, None) not in (None, False)]
        if args.samples is not None and project is not None:
            ignored.append("--samples (the project's data is counted)")
        if project is not None:
            from dataclasses import replace

            from kimi_tui.config import set_field

            config = project.config
            for key, value in (("engine.name", "whisper"), ("train.epochs", args.epochs),
                               ("train.batch_size", args.batch_size),
                               ("train.gradient_accumulation_steps", args.grad_accum),
                               ("train.save_steps", args.save_steps), ("train.save_total_limit", args.save_total_limit),
                               ("train.num_gpus", args.gpus)):
                if value is not None:
                    config = set_field(config, key, value, source="doctor")
            project = replace(project, config=config)
        elif any(getattr(args, k) is not None for k in ("samples", "epochs", "batch_size", "grad_accum", "save_steps",
                                                            "save_total_limit", "gpus", "output")):
            ignored.append("the schedule options (--samples, --epochs, ...: they need --project)")
        if ignored:
            yield Lint("note", "doctor", f"{', '.join(ignored)}: not used by the whisper engine's check (its stages run "
                       f"in kimi-tui's interpreter, {sys.executable}).", "Leave them out, or pass --engine kimi-audio.")
        yield from iter_preflight(project, output_dir=Path(args.output) if args.output else None,
                                  gpu_memory_gb=args.gpu_memory_gb, host_ram=args.host_ram_gb, progress=progress)
