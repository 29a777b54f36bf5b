"""A kimi-tui project on the kimi-audio engine, driving the checkout test double (tests/kimi_audio_double)."""

from __future__ import annotations

import atexit
import csv
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kimi_tui.config import save_config, set_field
from kimi_tui.project import Project, bundled_path, init_project

DOUBLE = Path(__file__).parent / "kimi_audio_double"


def sample_transcripts() -> list[str]:
    texts = []
    for csv_path in bundled_path("sample_data").glob("*.csv"):
        with open(csv_path, encoding="utf-8") as fh:
            texts += [row[-1] for row in csv.reader(fh)]
    return texts


@functools.cache
def _built_models() -> Path:
    """The double's model folders, built once a test process (a subprocess that imports torch and
    transformers: ~5 s on 2 cores, for 400 KB of files every test then copies)."""
    where = Path(tempfile.mkdtemp(prefix="kimi-double-models-"))
    atexit.register(shutil.rmtree, where, ignore_errors=True)
    subprocess.run([sys.executable, str(DOUBLE / "make_models.py"), str(where / "models"), *sample_transcripts()],
                   check=True, capture_output=True)
    return where / "models"


def make_double(where: Path) -> tuple[Path, Path]:
    """(checkout, models folder): a fresh copy of the checkout double and its model folders, the test's own."""
    checkout = where / "Kimi-Audio"
    shutil.copytree(DOUBLE / "checkout", checkout, ignore=shutil.ignore_patterns("__pycache__"))
    models = where / "models"
    shutil.copytree(_built_models(), models, symlinks=True)
    return checkout, models


def kimi_project(where: Path, **settings) -> Project:
    checkout, models = make_double(where)
    root = where / "project"
    init_project(root, sample=True)
    project = Project.load(root)
    config = project.config
    values = {
        "engine.name": "kimi-audio",
        "engine.device": "cpu",
        "kimi_audio.checkout": str(checkout),
        "kimi_audio.python": sys.executable,
        "kimi_audio.base_model": str(models / "Kimi-Audio-7B"),
        "kimi_audio.glm4_tokenizer": str(models / "glm-4-voice-tokenizer"),
        "kimi_audio.whisper": str(models / "whisper-large-v3"),
        "train.epochs": 3,
        "train.learning_rate": 1e-2,
        "train.gradient_accumulation_steps": 1,
        "train.batch_size": 1,
        "train.bf16": True,  # the official Whisper encoder runs in bf16 only
        "train.save_steps": "auto",
        "eval.max_new_tokens": 12,
        **settings,
    }
    for key, value in values.items():
        config = set_field(config, key, value)
    save_config(project.config_path, config)
    return Project.load(root)
