"""A third engine, defined outside the package, to hold the engine contract to its word.

Registered only through KIMI_TUI_ENGINES="toy=toy_engine:ToyEngine" (tests/ on PYTHONPATH): if
adding it needed a change anywhere in kimi_tui/ outside engines/, the contract would be leaking.
Its "model" remembers the training transcripts by id; its stages are tiny real processes
(tests/toy_engine_worker.py) that write what kimi-tui's readers expect: data/*.jsonl,
checkpoint-N folders complete by kimi_tui.checkpoints' rules, predictions the evaluate stage scores.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from kimi_tui.engines import (
    STAGES,
    compute_schedule,
    count_lines,
    evaluated_models,
    require_checkpoints,
    scoring_args,
)
from kimi_tui.engines.base import Engine
from kimi_tui.errors import KimiTuiError
from kimi_tui.runs import StagePlan

WORKER = [sys.executable, str(Path(__file__).with_name("toy_engine_worker.py"))]


class ToyEngine(Engine):
    name = "toy"
    label = "a model that remembers its training transcripts, for tests"
    stages = STAGES

    def plan_stage(self, stage, project, resume):
        root = project.root
        if stage == "prepare":
            d = project.config.data
            args = ["--train", str(project.path(d.train_jsonl)), "--train-out", str(project.train_jsonl)]
            if d.test_jsonl:
                args += ["--test", str(project.path(d.test_jsonl)), "--test-out", str(project.test_jsonl)]
            return self._plan(project, "prepare", args, [str(project.train_jsonl)], "copy the data files")
        if stage == "extract":
            self._needs(project.train_jsonl, "prepare")
            return self._plan(project, "extract", ["--train", str(project.train_jsonl), "--output",
                                                   str(project.features_dir)], [str(project.features_dir)],
                              "count the clips")
        if stage == "convert":
            self._needs(project.features_dir / "clips.json", "extract")
            return self._plan(project, "convert", ["--output", str(project.base_model_dir)],
                              [str(project.base_model_dir)], "an empty memory")
        if stage == "train":
            self._needs(project.base_model_dir / "config.json", "convert")
            t = project.config.train
            sched = compute_schedule(count_lines(project.train_jsonl), epochs=t.epochs, batch_size=t.batch_size,
                                     gradient_accumulation_steps=t.gradient_accumulation_steps,
                                     save_steps=t.save_steps)
            require_checkpoints(sched, t, project.config.engine.device)
            steps = ",".join(map(str, sched.checkpoint_steps))
            return self._plan(project, "train", ["--train", str(project.train_jsonl), "--output",
                                                 str(project.training_dir), "--steps", steps],
                              [str(project.training_dir)], f"remember the transcripts; checkpoints at steps {steps}")
        if stage == "export":
            final = project.training_dir / "final"
            self._needs(final / "config.json", "train")
            return self._plan(project, "export", ["--input", str(final), "--output", str(project.export_dir)],
                              [str(project.export_dir)], "copy the final model")
        models = evaluated_models(project, str(project.base_model_dir), str(project.export_dir)
                                  if (project.export_dir / "config.json").exists() else None)
        splits = [(s, p) for s, p in (("test", project.test_jsonl), ("train", project.train_jsonl))
                  if s in project.config.eval.splits and p.exists()]
        if not models or not splits:
            raise KimiTuiError("nothing to evaluate: run prepare, convert and train first")
        out = project.evaluations_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
        transcribe = WORKER + ["transcribe", "--output", str(out)]
        transcribe += [a for n, p in models for a in ("--model", f"{n}={p}")]
        transcribe += [a for s, p in splits for a in ("--jsonl", f"{s}={p}")]
        argv = [sys.executable, "-m", "kimi_tui.workers.evaluate", "--output", str(out), "--train-jsonl",
                str(project.train_jsonl), *scoring_args(project.config.eval), "--"] + transcribe
        return StagePlan(stage="evaluate", argv=argv, env={"PYTHONUNBUFFERED": "1"}, cwd=str(root),
                         inputs=[p for _, p in models], outputs=[str(out)], description="recall, then score")

    def _needs(self, path: Path, stage: str) -> None:
        if not path.exists():
            raise KimiTuiError(f"{path} does not exist yet: run the {stage} stage first")

    def _plan(self, project, stage, args, outputs, description) -> StagePlan:
        return StagePlan(stage=stage, argv=WORKER + [stage] + args, env={"PYTHONUNBUFFERED": "1"},
                         cwd=str(project.root), outputs=outputs, description=description)

    def lint(self, project):
        from kimi_tui.lint import Lint

        if project.config.engine.model != "tiny":
            return [Lint("note", "engine.model", "the toy engine has one model; engine.model is ignored.",
                         'Set engine.model = "tiny".')]
        return []


class NoExportToyEngine(ToyEngine):
    """The toy engine without an export stage: the stages an engine declares are the ones kimi-tui
    offers and runs (the Run panel, `run all`, `kimi-tui run`, python -m kimi_tui.pipeline)."""

    name = "toy-no-export"
    stages = ("prepare", "extract", "convert", "train", "evaluate")
