"""The contract every engine keeps, so nothing outside kimi_tui/engines/ asks which engine it is.

The pipeline plans stages through :meth:`Engine.plan`, the lint asks the engine for its own
findings, `kimi-tui doctor` for its preflight, a new project for its [train] defaults. An engine
is added by subclassing :class:`Engine` and registering it (one line in ``ENGINES`` of
kimi_tui/engines/__init__.py, or ``KIMI_TUI_ENGINES="name=module:Class"`` from outside the
package); the hooks with a default need overriding only where the engine differs.

What a complete checkpoint is (trainer_state.json and weights) is kimi_tui/checkpoints.py's
one definition for every engine: a train worker writes checkpoint-N folders that satisfy it.
"""

from __future__ import annotations

import abc
import argparse
import difflib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kimi_tui.engines import STAGES
from kimi_tui.errors import KimiTuiError

if TYPE_CHECKING:
    from kimi_tui.config import ProjectConfig
    from kimi_tui.lint import Lint
    from kimi_tui.project import Project
    from kimi_tui.runs import StagePlan


class Engine(abc.ABC):
    #: The name kimi-tui.toml's [engine] name gives it (its registry key).
    name: ClassVar[str]
    #: What it is, for people: doctor's header, messages.
    label: ClassVar[str]
    #: The stages it plans, in order: what `run all` runs, the Run panel lists and `kimi-tui run` accepts.
    stages: ClassVar[tuple[str, ...]] = STAGES
    #: The stages whose plan takes resume=True (`kimi-tui run STAGE --resume`).
    resumable_stages: ClassVar[tuple[str, ...]] = ()
    #: Whether its training can run in fp32 (the lint advises bf16 = false on a CPU only then).
    trains_in_fp32: ClassVar[bool] = True
    #: kimi_tui files (relative to the package) its workers run as copies, in <project>/.kimi-tui/lib,
    #: for an interpreter that lacks kimi-tui's dependencies; () when its workers run in kimi-tui's own.
    worker_files: ClassVar[tuple[str, ...]] = ()

    # -- plans ----------------------------------------------------------------

    def plan(self, stage: str, project: "Project", resume: bool = False) -> "StagePlan":
        """The stage's complete plan; KimiTuiError for an unknown stage, a resume it cannot do, or
        what the stage needs first ("run the prepare stage first")."""
        if stage not in self.stages:
            close = difflib.get_close_matches(stage, [*self.stages, "all"], n=1, cutoff=0.6)
            raise KimiTuiError(f"unknown stage {stage!r}" + (f"; did you mean '{close[0]}'?" if close else "")
                               + f" The {self.name} engine's stages are {', '.join(self.stages)}, and all.")
        if resume and stage not in self.resumable_stages:
            raise KimiTuiError(
                f"--resume applies to {' and '.join(self.resumable_stages) or 'no stage'} on the {self.name} "
                f"engine, not to {stage}")
        return self.plan_stage(stage, project, resume)

    def plan_stage(self, stage: str, project: "Project", resume: bool) -> "StagePlan":
        """The plan of a stage of ``stages`` (resume only for one of ``resumable_stages``). Default: the
        engine's ``_plan_<stage>(project)`` method, called with ``resume=True`` when resuming."""
        method = getattr(self, f"_plan_{stage}")
        return method(project, resume=True) if resume else method(project)

    def worker_lib(self, project: "Project") -> Path:
        """Copies of ``worker_files``, refreshed when kimi-tui changes; the folder to put on the path."""
        import kimi_tui
        from kimi_tui.fsutil import atomic_write_text

        package = Path(kimi_tui.__file__).parent
        lib = project.root / ".kimi-tui" / "lib"
        for rel in self.worker_files:
            source = package / rel
            target = lib / "kimi_tui" / rel
            text = source.read_text(encoding="utf-8")
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, text)
        return lib

    # -- configuration ----------------------------------------------------------

    def from_scratch(self, config: "ProjectConfig") -> bool:
        """Whether the model starts untrained (the lint's learning-rate range: 1e-3-ish, not 1e-5-ish)."""
        return False

    def train_defaults(self, model: str, n_samples: int | None) -> dict[str, Any]:
        """The [train] settings a new project of this engine starts with, {"train.key": value};
        {} keeps the config's own defaults."""
        return {}

    def jsonl_audio_base(self, project: "Project") -> Path | None:
        """A folder a JSONL's relative audio paths are looked up in first (a checkout), or None."""
        return None

    # -- findings ---------------------------------------------------------------

    def lint(self, project: "Project") -> list["Lint"]:
        """Its own findings on the project's settings (kimi_tui.lint adds the common ones)."""
        return []

    def lint_training(self, project: "Project", on_cpu: bool) -> list["Lint"]:
        """Its findings on the [train]/[deepspeed] settings, given whether training lands on the CPU."""
        return []

    def doctor_header(self, project: "Project | None", picked: str | None) -> str:
        """`kimi-tui doctor`'s first line: what is checked, and where the choice of engine came from."""
        if project is None:
            return f"doctor: checking the {self.name} engine ({self.label})"
        return (f'doctor: checking the {self.name} engine of {project.root} '
                f'(engine.device = "{project.config.engine.device}"{self.picked_note(project, picked)})')

    @staticmethod
    def picked_note(project: "Project", picked: str | None) -> str:
        """'; --engine X, the project's is Y' when doctor was told to check another engine than the project's."""
        name = project.config.engine.name
        return f"; --engine {picked}, the project's is {name}" if picked and picked != name else ""

    def preflight(self, args: argparse.Namespace, project: "Project | None",
                  progress: Callable[[str], None]) -> Iterable["Lint"]:
        """`kimi-tui doctor`'s findings, yielded as they are known. ``args`` holds doctor's options;
        ``progress`` takes a line on slow work. Default: the project's lint with this machine's GPUs."""
        from kimi_tui.lint import Lint, lint_project

        if project is None:
            yield Lint("note", "doctor", f"the {self.name} engine checks a project's settings only.",
                       "Pass --project DIR.")
            return
        from kimi_tui.gpu import read_gpus

        yield from lint_project(project, gpus=read_gpus())
