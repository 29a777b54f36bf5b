"""Is an evaluation folder finished, and if not, what is missing and why?

A folder of predictions looks the same whether the evaluation finished, was stopped, or lost a
checkpoint half-way (deleted while an earlier model was being transcribed): a model whose
predictions are missing used to be scored as all deletions, CER 100 %, as if it had transcribed
nothing. Every reader (``kimi-tui report``, ``kimi-tui status``, the Evaluation panel) asks this
module instead, so all of them say the same thing: which models are complete, which have some of
their clips (and how many of how many), which failed and with what error, and whether the
evaluate run is still going.

What it reads, all written by the evaluate stage (kimi_tui.workers.evaluate and the engines'
transcribers) and never by this module:

    evaluation.json             the plan, written before transcription starts: models, their folders,
                                which of them existed then, splits, clips per split; and once the
                                transcriber has ended, ``finished`` and its exit code
    references.jsonl            one line per clip to transcribe (the denominator)
    <model>/status.json         the transcriber's word on that model: running, complete or failed
                                (with the error); status.shard-I-of-N.json per GPU shard
    <model>/predictions.jsonl   the clips it has (predictions.shard-I-of-N.jsonl while sharded)
    runs/<id>-evaluate/         the run whose plan outputs the folder: still running, stopped, failed

A folder written before this existed (no ``format`` in evaluation.json) with a metrics.json is
taken as complete, as it was then.

The numbers belong to the folder that was transcribed, not to its name: a re-train moves
training/ aside (training.<time>/) and its next checkpoint-10 is another model. The plan records
each model folder's identity (device and inode, which a rename keeps), so a reader can say
"checkpoint-10 here is what is now training.<time>/checkpoint-10" instead of passing old numbers
off as the new checkpoint's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

FORMAT = 2
#: Folder states, most to least final.
STATES = ("complete", "partial", "failed", "running")
#: A model's state: complete, partial (some clips, the evaluation has ended), failed (an error),
#: running (being transcribed now), pending (no clip yet; "not transcribed" once it has ended).
MODEL_STATES = ("complete", "partial", "failed", "running", "pending")


@dataclass
class ModelState:
    name: str
    state: str
    clips: int  # clips with a prediction (unique, among the references)
    of: int  # clips planned
    error: str | None = None
    path: str | None = None
    #: Set when the folder transcribed is no longer at ``path``: where it is now (a re-train moved it),
    #: or that it is gone; ``path`` may then hold another model of the same name.
    moved: str | None = None

    @property
    def scorable(self) -> bool:
        """Numbers may be shown: complete, or over the clips it has (partial/running, marked)."""
        return self.state == "complete" or self.state in ("partial", "running") and self.clips > 0

    def describe(self) -> str:
        """One phrase: 'checkpoint-20 has 3 of 9 clips', 'checkpoint-30 failed (...)'."""
        if self.state == "complete":
            return f"{self.name} complete ({self.clips} of {self.of} clips)"
        if self.state == "failed":
            return f"{self.name} failed ({self.error or 'no reason recorded'})" + (
                f", {self.clips} of {self.of} clips" if self.clips else "")
        if self.state == "pending":
            return f"{self.name} not transcribed (0 of {self.of} clips)"
        return f"{self.name} has {self.clips} of {self.of} clips" + (" so far" if self.state == "running" else "")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvaluationState:
    path: Path
    state: str  # complete, partial, failed, running
    models: list[ModelState]
    reasons: list[str] = field(default_factory=list)  # why it is not complete, for people
    run_id: str | None = None
    run_state: str | None = None

    def model(self, name: str) -> ModelState | None:
        return next((m for m in self.models if m.name == name), None)

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    def notes(self) -> list[str]:
        """Numbers that are right but may be read as another model's: one line per moved model."""
        return [f"{m.name} here is {m.moved}" for m in self.models if m.moved]

    def missing(self) -> str:
        """What is missing, in one line: '' when complete."""
        parts = []
        partial = [m for m in self.models if m.state in ("partial", "running", "pending")]
        failed = [m for m in self.models if m.state == "failed"]
        if partial:
            parts.append(("running: " if self.state == "running" else "partial: ")
                         + "; ".join(m.describe() for m in partial))
        if failed:
            parts.append("failed: " + "; ".join(
                f"{m.name} ({m.error or 'no reason recorded'})" for m in failed))
        extra = [r for r in self.reasons if not any(m.name in r for m in partial + failed)]
        return "; ".join(parts + extra)

    def summary(self) -> str:
        """'<folder> <state> <models>: what is missing' (the `kimi-tui status` line)."""
        done = sum(1 for m in self.models if m.state == "complete")
        line = f"{self.path.name}  {self.state}  {done}/{len(self.models)} models complete"
        missing = self.missing()
        return f"{line}: {missing}" if missing else line

    def to_dict(self) -> dict:
        return {"path": str(self.path), "state": self.state, "models": [m.to_dict() for m in self.models],
                "reasons": list(self.reasons), "missing": self.missing(), "notes": self.notes(),
                "run_id": self.run_id, "run_state": self.run_state}


def jsonl_rows(path: Path) -> Iterator[dict]:
    """The objects of a JSONL file the evaluate stage writes, skipping a last line cut short by a
    killed writer (and anything that is not an object). Opening it may raise OSError."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield row


def folder_identity(path: str | os.PathLike[str]) -> str | None:
    """'device:inode' of a model folder (kept by a rename, new for a new folder); None if unreadable."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return f"{st.st_dev}:{st.st_ino}"


def _where_now(path: Path, identity: str) -> str | None:
    """None while ``path`` is still the folder that was transcribed; else where it went, in words.

    pipeline.keep_previous_outputs renames training/ to training.<time>/ (a checkpoint moves with
    its parent) and exports/final to exports/final.<time>: those are the places looked in."""
    if folder_identity(path) == identity:
        return None
    candidates: list[Path] = []
    for folder, inside in ((path.parent, path.name), (path, None)):
        try:
            siblings = sorted(folder.parent.glob(f"{folder.name}.*"), reverse=True)
        except (OSError, ValueError):
            continue
        candidates += [s / inside if inside else s for s in siblings]
    shown_root = path.parent.parent
    for candidate in candidates:
        if folder_identity(candidate) == identity:
            try:
                where = candidate.relative_to(shown_root)
            except ValueError:
                where = candidate
            now = path.relative_to(shown_root) if path.is_relative_to(shown_root) else path
            tail = f"; {now} is now another model" if path.exists() else ""
            return f"what is now {where} (a later run moved it there{tail})"
    if path.exists():
        return f"an earlier model of that name: {path} has been replaced since"
    return f"a model no longer on disk ({path} is gone)"


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _keys(path: Path) -> set[tuple[str, str]]:
    """(split, id) of every complete line of a predictions file."""
    try:
        return {(str(row.get("split", "")), str(row.get("id"))) for row in jsonl_rows(path)}
    except OSError:
        return set()


def prediction_files(model_dir: Path) -> list[Path]:
    """predictions.jsonl, else the per-GPU shards a sharded transcription has not merged yet."""
    merged = model_dir / "predictions.jsonl"
    if merged.exists():
        return [merged]
    return sorted(model_dir.glob("predictions.shard-*-of-*.jsonl"))


def _transcriber_status(model_dir: Path) -> tuple[str | None, str | None]:
    """(state, error) from status.json or the shards' status files: failed if any shard failed,
    complete if all of them (all N) say so."""
    one = _read_json(model_dir / "status.json")
    if one is not None:
        return one.get("state"), one.get("error")
    shards = sorted(model_dir.glob("status.shard-*-of-*.json"))
    if not shards:
        return None, None
    states = [(_read_json(p) or {}) for p in shards]
    failed = [s for s in states if s.get("state") == "failed"]
    if failed:
        return "failed", failed[0].get("error")
    try:
        n = int(shards[0].name.rsplit("-of-", 1)[1].split(".")[0])
    except (IndexError, ValueError):
        n = len(shards) + 1
    if len(states) == n and all(s.get("state") == "complete" for s in states):
        return "complete", None
    return "running", None


def _reference_keys(folder: Path) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    path = folder / "references.jsonl"
    if path.exists():
        for split, utt in _keys(path):
            keys.add((split, utt))
    return keys


def find_evaluate_run(folder: Path, runs_dir: Path | None = None):
    """The latest evaluate run whose plan writes this folder (read-only), or None."""
    from kimi_tui.runs import list_runs

    runs_dir = runs_dir if runs_dir is not None else folder.parent.parent / "runs"
    target = str(folder.resolve())
    found = None
    for info in list_runs(runs_dir):
        if info.stage != "evaluate":
            continue
        plan = _read_json(info.path / "plan.json") or {}
        outputs = [str(Path(o).resolve()) for o in plan.get("outputs") or []]
        argv = plan.get("argv") or []
        if target in outputs or any(str(Path(a).resolve()) == target for a, prev in zip(argv[1:], argv)
                                    if prev == "--output"):
            found = info
    return found


def evaluation_state(folder: Path, runs_dir: Path | None = None, run=None) -> EvaluationState:
    """The state of one evaluation folder. ``run`` (a kimi_tui.runs.RunInfo) saves looking it up."""
    folder = Path(folder)
    meta = _read_json(folder / "evaluation.json")
    if run is None:
        try:
            run = find_evaluate_run(folder, runs_dir)
        except OSError:
            run = None
    if isinstance(run, _NoRun):
        run = None
    run_id = run.run_id if run is not None else None
    run_state = run.state if run is not None else None
    active = run is not None and run.active
    if meta is None:
        state = "running" if active else "failed"
        why = ("the evaluation is starting" if active else
               f"no readable evaluation.json in {folder} (the evaluate stage ended before it wrote its plan)")
        return EvaluationState(folder, state, [], [why], run_id, run_state)

    refs = _reference_keys(folder)
    planned = meta.get("clips")  # split -> clips, written up front
    of = sum(planned.values()) if isinstance(planned, dict) else len(refs)
    legacy = "format" not in meta
    finished = meta.get("finished") is not None or (legacy and (folder / "metrics.json").exists())
    present = meta.get("model_present") or {}
    paths = meta.get("model_paths") or {}
    ids = meta.get("model_ids") or {}
    exit_code = meta.get("transcriber_exit")
    crashed = (finished and exit_code not in (None, 0)) or (run is not None and run.state == "failed")
    models: list[ModelState] = []
    for name in meta.get("models") or []:
        model_dir = folder / name
        have: set[tuple[str, str]] = set()
        for path in prediction_files(model_dir):
            have |= _keys(path)
        clips = len(have & refs) if refs else len(have)
        status, error = _transcriber_status(model_dir)
        path = paths.get(name)
        if status == "failed" or (error and status != "complete"):
            if path and present.get(name) and not Path(path).exists():
                detail = f"; {error}" if error else ""
                error = f"{name} was deleted during the evaluation ({path}{detail})"
            state = "failed"
        elif status == "running" and crashed:
            state = "failed"
            code = exit_code if exit_code not in (None, 0) else run.exit_code if run is not None else None
            error = f"the transcriber failed (exit code {code}) while on this model: see the evaluate run's log"
        elif status == "complete" or (legacy and finished) or (of and clips >= of):
            state = "complete"
        elif finished or not active:
            state = "partial" if clips else "pending"
        else:
            state = "running" if clips or status == "running" else "pending"
        identity = ids.get(name)
        moved = _where_now(Path(path), identity) if path and isinstance(identity, str) and state != "failed" else None
        models.append(ModelState(name, state, clips, of, error, path, moved))

    reasons: list[str] = []
    for m in models:
        if m.state == "failed":
            reasons.append(f"{m.name} failed: {m.error or 'no reason recorded'}")
    if active and not finished:
        state = "running"
    elif any(m.state == "failed" for m in models):
        state = "failed"
    elif all(m.state == "complete" for m in models) and models:
        state = "complete"
    else:
        if crashed:
            state = "failed"
            code = exit_code if exit_code not in (None, 0) else run.exit_code if run is not None else None
            who = f"the evaluate run {run.run_id}" if run is not None else "the transcriber"
            reasons.append(f"{who} failed (exit code {code}) before every model was transcribed: see its log")
        else:
            state = "partial"
            if run is not None and run.state in ("stopped", "interrupted"):
                reasons.append(f"the evaluate run {run.run_id} was {run.state}")
            elif run is None and not finished:
                reasons.append("the evaluation did not finish (no evaluate run found for it)")
            if not models:
                reasons.append("no model in evaluation.json")
    return EvaluationState(folder, state, models, reasons, run_id, run_state)


def evaluation_states(evaluations_dir: Path, runs_dir: Path | None = None) -> list[EvaluationState]:
    """Every evaluation folder under evaluations/, oldest first (their names are start times)."""
    if not evaluations_dir.is_dir():
        return []
    from kimi_tui.runs import list_runs

    runs_dir = runs_dir if runs_dir is not None else evaluations_dir.parent / "runs"
    runs = [r for r in list_runs(runs_dir) if r.stage == "evaluate"]
    by_output: dict[str, object] = {}
    for info in runs:  # oldest first: a later run of the same folder (a resume) wins
        plan = _read_json(info.path / "plan.json") or {}
        for out in plan.get("outputs") or []:
            by_output[str(Path(out).resolve())] = info
    out = []
    for folder in sorted(p for p in evaluations_dir.iterdir() if p.is_dir()):
        run = by_output.get(str(folder.resolve()))
        out.append(evaluation_state(folder, runs_dir, run=run if run is not None else _NO_RUN))
    return out


class _NoRun:
    """Marker: the caller looked, there is no run (do not search again)."""


_NO_RUN = _NoRun()
