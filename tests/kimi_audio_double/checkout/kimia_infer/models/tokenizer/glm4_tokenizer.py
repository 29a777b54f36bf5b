"""Glm4Tokenizer double: 12.5 Hz codes ((L-1)//1280+1 per 30 s chunk) from the clip's energy."""
import os

import numpy as np
import soundfile

from kimia_infer.hub import local_folder

CODEBOOK = 64


class ToyCodeTokenizer:
    def __init__(self, name):
        folder = local_folder(name)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise OSError(f"{folder}: no config.json")

    def to(self, device):
        return self

    def tokenize(self, audio_path):
        import torch

        wav, rate = soundfile.read(audio_path, dtype="float32", always_2d=True)
        wav = wav.mean(axis=1)
        if rate != 16000:
            n = int(np.ceil(len(wav) * 16000 / rate))
            wav = np.interp(np.linspace(0, len(wav) - 1, n), np.arange(len(wav)), wav).astype("float32")
        if len(wav) == 0:
            raise ValueError(f"{audio_path}: no samples")
        codes = []
        for start in range(0, len(wav), 480000):
            chunk = wav[start:start + 480000]
            for i in range((len(chunk) - 1) // 1280 + 1):
                piece = chunk[i * 1280:(i + 1) * 1280]
                codes.append(int(min(CODEBOOK - 1, np.abs(piece).mean() * 400)))
        return torch.tensor([codes])
