"""Tiny WAV files for tests: silence of a given length, rate and channel count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def wav(path: Path, seconds: float = 0.25, sr: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * sr)
    shape = (n, channels) if channels > 1 else (n,)
    sf.write(path, np.zeros(shape, dtype=np.int16), sr, subtype="PCM_16")
    return path
