"""A project is a folder; every stage reads and writes only inside it.

Layout (paths are fixed so readers never need the config to find outputs):

    kimi-tui.toml      the typed config (comments kept on save)
    sample/            the bundled sample, copied here by `init --sample`
    data/              prepare: train.jsonl, test.jsonl, findings.json
    features/          extract: per-split features/tokens
    models/base/       convert: the starting model (untrained tiny, or the pretrained copy)
    training/          train: checkpoint-N/ folders and final/
    exports/final/     export: the self-contained inference model
    evaluations/<run>/ evaluate: <model>/predictions.jsonl, metrics.json, report.md
    runs/<run>/        one folder per stage run (see runs.py)

The user's own data is referenced, never copied or written to.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kimi_tui.config import (
    CONFIG_FILENAME,
    ProjectConfig,
    load_config,
    render_default_config,
    resolve_path,
)
from kimi_tui.errors import KimiTuiError
from kimi_tui.fsutil import atomic_write_text
from kimi_tui.workers.disk_full import free_bytes, is_disk_full

SAMPLE_FILES = ("audio", "test_audio", "split_lingyin_audio_test.csv", "split_lingyin_audio_answer.csv")


def bundled_path(name: str) -> Path:
    """sample_data/ or styles/: inside the wheel, or at the top of a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / name, here.parent / name):
        if candidate.exists():
            return candidate
    raise KimiTuiError(f"the bundled {name}/ folder is missing from this installation ({here})")


@dataclass
class Project:
    root: Path
    config: ProjectConfig

    @classmethod
    def load(cls, root: str | Path) -> "Project":
        root = Path(root).expanduser().resolve()
        return cls(root=root, config=load_config(root / CONFIG_FILENAME))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    def path(self, value: str) -> Path | None:
        return resolve_path(self.root, value)

    data_dir = property(lambda self: self.root / "data")
    runs_dir = property(lambda self: self.root / "runs")
    features_dir = property(lambda self: self.root / "features")
    base_model_dir = property(lambda self: self.root / "models" / "base")
    training_dir = property(lambda self: self.root / "training")
    export_dir = property(lambda self: self.root / "exports" / "final")
    evaluations_dir = property(lambda self: self.root / "evaluations")
    def load_split(self, split: str, *, paths_only: bool = False, cwd: Path | None = None):
        """The split's manifest as [data] in kimi-tui.toml describes it, or None when no source
        is configured for it. Raises the data reader's DataError for an unusable source.

        A JSONL's relative audio paths are looked up as kimi_tui.data.manifest.jsonl_audio_bases
        says, with [kimi_audio] checkout first for a kimi-audio project. Its last resort, "the
        current folder", is the project folder, where the stages run, not the folder the TUI or
        `init` was started from: what the Dataset panel and `init` show is then what prepare does. ``paths_only``:
        look the audio files up without reading them (init's check); ``cwd``: another
        "current folder" (init asks whether the folder it was started from would have found them)."""
        from kimi_tui.data import load_split  # numpy/soundfile: not at start-up

        d = self.config.data
        csv, audio, jsonl = (d.train_csv, d.train_audio, d.train_jsonl) if split == "train" else (
            d.test_csv, d.test_audio, d.test_jsonl)
        if not (csv or jsonl):
            return None
        from kimi_tui.engines import get_engine

        checkout = get_engine(self.config.engine.name).jsonl_audio_base(self)
        return load_split(
            split,
            csv_path=self.path(csv) if csv else None,
            audio_dir=self.path(audio) if audio else None,
            jsonl_path=self.path(jsonl) if jsonl else None,
            id_column=d.id_column or None,
            text_column=d.text_column or None,
            encoding=d.encoding,
            max_duration_s=d.max_duration_s,
            checkout=checkout,
            cwd=self.root if cwd is None else cwd,
            cwd_what="the project folder (where the stages run)" if cwd is None else "the current folder",
            paths_only=paths_only,
        )

    train_jsonl = property(lambda self: self.root / "data" / "train.jsonl")
    test_jsonl = property(lambda self: self.root / "data" / "test.jsonl")
    findings_json = property(lambda self: self.root / "data" / "findings.json")


def sample_config() -> ProjectConfig:
    """The sample project's config: the tiny engine, a schedule that memorises nine clips on a CPU."""
    cfg = ProjectConfig()
    cfg.project.name = "kimi-tui sample (nine Mandarin clips)"
    cfg.data.train_csv = "sample/split_lingyin_audio_test.csv"
    cfg.data.train_audio = "sample/audio"
    cfg.data.test_csv = "sample/split_lingyin_audio_answer.csv"
    cfg.data.test_audio = "sample/test_audio"
    cfg.engine.name = "whisper"
    cfg.engine.model = "tiny"
    cfg.engine.device = "auto"
    cfg.train.epochs = TINY_SCHEDULE["epochs"]
    cfg.train.learning_rate = TINY_SCHEDULE["learning_rate"]
    cfg.train.batch_size = TINY_SCHEDULE["batch_size"]
    cfg.train.gradient_accumulation_steps = TINY_SCHEDULE["gradient_accumulation_steps"]
    cfg.train.warmup_ratio = TINY_SCHEDULE["warmup_ratio"]
    cfg.train.weight_decay = TINY_SCHEDULE["weight_decay"]
    cfg.train.lr_scheduler = TINY_SCHEDULE["lr_scheduler"]
    cfg.train.logging_steps = TINY_SCHEDULE["logging_steps"]
    return cfg


# Measured on a 2-core CPU (seeds 1-4): the tiny model (d_model 128, 2+2 layers) memorises
# the nine sample clips to 0% training CER in about 20 s of training; 150 epochs also did,
# 60 epochs of a larger model did not (46% CER).
TINY_SCHEDULE = {
    "epochs": 200,
    "learning_rate": 3e-3,
    "batch_size": 9,
    "gradient_accumulation_steps": 1,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "lr_scheduler": "linear",
    "logging_steps": 10,
}


def engine_train_defaults(engine: str, model: str, n_samples: int | None) -> dict[str, Any]:
    """The [train] settings a new project of this engine starts with, as {"train.key": value}: the
    engine's ``train_defaults`` (kimi_tui/engines/), which today give what follows.

    Why per engine: no one schedule learns on every engine. The config's own defaults are the seed
    report's small-data table for a full fine-tune of Kimi-Audio (lr 3e-6, 10 epochs, batch 1 x
    accumulation 4); on the tiny model built from scratch that moved the training loss from 13.47
    to 13.42 and left the CER at 879 %, while the lint said the learning rate "looks far too low".

    * tiny whisper: the sample's measured schedule (TINY_SCHEDULE), with batch_size = min(9, n):
      nine clips per step is what was measured (the whole sample in one batch, 200 optimizer steps
      at lr 3e-3); fewer clips than that cannot fill a batch anyway, so the config says what
      happens, and more clips keep the measured batch (and its learning rate) rather than a larger
      one nobody tried; the step count then grows with the data, which a model that starts from
      nothing needs. ``n_samples`` None (not countable yet): the measured 9.
    * pretrained whisper: the whisper-small-finetune preset (lr 1e-5, 3 epochs, batch 8).
    * kimi-audio: the [train] part of the kimi-audio-lora-1gpu preset, for the default LoRA method
      (lr 1e-4): the seed's 3e-6 was for full fine-tuning, at which LoRA adapters barely move.
    """
    from kimi_tui.engines import get_engine  # the engines import this module

    return get_engine(engine).train_defaults(model, n_samples)


def apply_engine_defaults(project: Project) -> ProjectConfig:
    """``project``'s config with its engine's [train] defaults for its training data (counted as
    the lint counts it: the CSV or JSONL before prepare)."""
    from kimi_tui.config import set_field
    from kimi_tui.lint import count_training_samples  # lint imports this module for types only

    n, _ = count_training_samples(project)
    config = project.config
    engine = config.engine
    for dotted, value in engine_train_defaults(engine.name, engine.model, n).items():
        config = set_field(config, dotted, value, source=f"the {engine.name} engine's defaults")
    return config


#: The folders the stages write (see the module docstring); a file of one of these names
#: in a new project would fail the first stage that writes there.
OUTPUT_FOLDERS = ("data", "features", "models", "training", "exports", "evaluations", "runs")


def _refuse_unusable_target(root: Path, config_path: Path) -> None:
    """Refuse, before anything is written, a target that cannot hold a project: a file, a folder
    this user may not search or write, a file where an output folder goes."""
    import os

    try:
        if root.exists() and not root.is_dir():
            raise KimiTuiError(f"{root} is a file, not a folder: pick a folder for the project "
                               "(a new name is created)")
        if config_path.is_dir():
            raise KimiTuiError(f"{config_path} is a folder, where the project's settings file belongs: "
                               "move it away or pick another folder (nothing was changed)")
        if config_path.exists():
            return  # an existing project: init refuses it or (--exist-ok) opens it, read-only is fine
        existing = root
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise KimiTuiError(f"cannot create {root}: {existing} is a file, not a folder")
        for name in OUTPUT_FOLDERS:
            if (root / name).exists() and not (root / name).is_dir():
                raise KimiTuiError(f"{root / name} is a file, where kimi-tui keeps its {name}/ folder: "
                                   "move it away or pick another folder (nothing was changed)")
    except PermissionError as exc:
        raise KimiTuiError(f"cannot create a project at {root}: {exc.filename} may not be read by this user "
                           f"(uid {os.geteuid()}): pick a folder you can read and write, or fix its permissions") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise KimiTuiError(f"cannot create a project at {root}: {existing} is not writable by this user "
                           f"(uid {os.geteuid()}): pick a folder you can write to, or fix its permissions "
                           "(nothing was changed)")


def init_project(
    root: str | Path,
    *,
    sample: bool = False,
    train_csv: str | None = None,
    train_audio: str | None = None,
    test_csv: str | None = None,
    test_audio: str | None = None,
    train_jsonl: str | None = None,
    test_jsonl: str | None = None,
    exist_ok: bool = False,
) -> Project:
    root = Path(root).expanduser().resolve()
    config_path = root / CONFIG_FILENAME
    _refuse_unusable_target(root, config_path)
    if config_path.exists():
        if exist_ok:
            return Project.load(root)
        raise KimiTuiError(
            f"{config_path} already exists: {root} is a kimi-tui project. "
            "Open it with `kimi-tui run ... --project` or pick another folder (nothing was changed)."
        )
    if sample:
        cfg = sample_config()
        target = root / "sample"
        if target.exists():
            raise KimiTuiError(f"{target} already exists; refusing to overwrite it. Pick an empty folder.")
        source = bundled_path("sample_data")
        created = _make_root(root)
        try:
            target.mkdir()
            for name in SAMPLE_FILES:
                src = source / name
                if src.is_dir():
                    shutil.copytree(src, target / name)
                else:
                    shutil.copy2(src, target / name)
            atomic_write_text(config_path, render_default_config(cfg))
        except (OSError, shutil.Error) as exc:
            # A half-copied sample would make the next `init` refuse ("sample already exists").
            shutil.rmtree(target, ignore_errors=True)
            if created:
                shutil.rmtree(root, ignore_errors=True)
            if is_disk_full(exc):  # shutil.Error (copytree) keeps only the text of each file's error
                raise _disk_full(root, source) from None
            raise
        return Project.load(root)
    else:
        if not (train_csv or train_jsonl):
            raise KimiTuiError("init needs --sample, or --train-csv with --train-audio, or --train-jsonl")
        if train_csv and not train_audio:
            raise KimiTuiError("--train-csv needs --train-audio (the folder holding the training audio)")
        if test_csv and not test_audio:
            raise KimiTuiError("--test-csv needs --test-audio (the folder holding the test audio)")
        cfg = ProjectConfig()
        cfg.project.name = root.name
        for option, value, want_dir in (
            ("--train-csv", train_csv, False),
            ("--train-audio", train_audio, True),
            ("--test-csv", test_csv, False),
            ("--test-audio", test_audio, True),
            ("--train-jsonl", train_jsonl, False),
            ("--test-jsonl", test_jsonl, False),
        ):
            if not value:
                continue
            path = Path(value).expanduser().resolve()
            if want_dir and not path.is_dir():
                raise KimiTuiError(f"{option} {value}: no such folder")
            if not want_dir and not path.is_file():
                raise KimiTuiError(f"{option} {value}: no such file")
            setattr(cfg.data, option[2:].replace("-", "_"), str(path))
        cfg = apply_engine_defaults(Project(root=root, config=cfg))
        created = _make_root(root)
        try:
            atomic_write_text(config_path, render_default_config(cfg))
        except OSError as exc:
            if created:
                shutil.rmtree(root, ignore_errors=True)
            if is_disk_full(exc):
                raise _disk_full(root, None) from None
            raise
    return Project.load(root)


#: The findings that mean a row's audio file cannot be found (rather than read).
AUDIO_NOT_FOUND = ("missing_audio", "ambiguous_audio")


@dataclass
class SplitAudioCheck:
    """What init found of one split's audio files."""

    split: str
    rows: int = 0
    missing: list[Any] = field(default_factory=list)  # the Findings of rows whose audio is not found
    bases: list[Any] = field(default_factory=list)  # the "audio_base" notes: where relative paths were read
    error: str = ""  # the source cannot be read at all
    #: Of the missing, how many a relative path from the folder init was started from would find
    #: (the stages run in the project folder, so those are missing for them all the same).
    found_from_cwd: int = 0
    cwd: str = ""


def check_audio_paths(project: Project) -> list[SplitAudioCheck]:
    """Look up every configured split's audio files as prepare will (no header is read, so it stays
    quick on a large corpus): init reports the rows whose audio cannot be found before it
    recommends a run."""
    from kimi_tui.errors import DataError

    out: list[SplitAudioCheck] = []
    for split in ("train", "test"):
        try:
            manifest = project.load_split(split, paths_only=True)
        except DataError as exc:
            out.append(SplitAudioCheck(split, error=str(exc)))
            continue
        if manifest is None:
            continue
        missing = [f for f in manifest.findings if f.code in AUDIO_NOT_FOUND]
        bases = [f for f in manifest.findings if f.code == "audio_base"]
        check = SplitAudioCheck(split, rows=manifest.n_rows, missing=missing, bases=bases)
        cwd = Path.cwd()
        if missing and cwd != project.root:
            again = project.load_split(split, paths_only=True, cwd=cwd)
            still = sum(1 for f in again.findings if f.code in AUDIO_NOT_FOUND) if again is not None else len(missing)
            check.found_from_cwd, check.cwd = max(0, len(missing) - still), str(cwd)
        out.append(check)
    return out


def _make_root(root: Path) -> bool:
    """Create the project folder; whether it was created here (so a failed init removes it)."""
    existed = root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise _disk_full(root, None) from None
        raise
    return not existed


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _disk_full(root: Path, sample: Path | None) -> KimiTuiError:
    """A full disk during init, in one message: where, how much is free, and that nothing was left."""
    usage = free_bytes(root)
    free = f"{usage[0] / 1e6:,.1f} MB free" if usage is not None else "free space unknown"
    need = f"; the sample needs {_tree_bytes(sample) / 1e6:,.1f} MB" if sample is not None else ""
    return KimiTuiError(
        f"cannot create the project in {root}: the disk holding it is full ({free}{need}). "
        f"Nothing was left behind: free space there (or pick a folder on another disk), then run "
        f"`kimi-tui init {root}{' --sample' if sample is not None else ''}` again.")
