"""WhisperEncoder double: waveform -> 50 Hz frames of a learned feature (one Linear)."""
import os

import torch
from safetensors.torch import load_file, save_file

from kimia_infer.hub import local_folder

FRAME = 320  # 16 kHz / 50 Hz
CHUNK = 30 * 16000
WIDTH = 8


class ToyWhisperEncoder(torch.nn.Module):
    def __init__(self, model_path, mel_batch_size=20, unfreeze_online_whisper_model=False):
        super().__init__()
        folder = local_folder(model_path)
        self.speech_encoder = torch.nn.Linear(1, WIDTH)
        state = load_file(os.path.join(folder, "model.safetensors"))
        state = {k.replace("encoder.", ""): v for k, v in state.items()}
        params = list(self.speech_encoder.parameters())
        if any(hasattr(p, "ds_id") for p in params):
            # Built inside ZeRO-3's zero.Init the parameters are empty shards; the real encoder's
            # WhisperModel.from_pretrained gathers them to load, and so does this double.
            import deepspeed

            with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
                self.speech_encoder.load_state_dict(state)
        else:
            self.speech_encoder.load_state_dict(state)

    def forward(self, wav):
        """[1, samples] -> [1, frames, WIDTH]: per 30 s chunk of L samples, 4 x ((L - 1) // 1280 + 1) frames
        (the documented 12.5 Hz rule, four 50 Hz frames a token)."""
        wav = wav.float().to(self.speech_encoder.weight.device)
        chunks = []
        for start in range(0, max(wav.shape[-1], 1), CHUNK):
            piece = wav[..., start:start + CHUNK]
            tokens = (max(piece.shape[-1], 1) - 1) // (4 * FRAME) + 1
            piece = torch.nn.functional.pad(piece, (0, tokens * 4 * FRAME - piece.shape[-1]))
            chunks.append(piece.reshape(wav.shape[0], tokens * 4, FRAME).abs().mean(-1, keepdim=True))
        return self.speech_encoder(torch.cat(chunks, 1).to(self.speech_encoder.weight.dtype))

    tokenize_waveform = forward


def save_whisper(folder, seed=0):
    torch.manual_seed(seed)
    layer = torch.nn.Linear(1, WIDTH)
    os.makedirs(folder, exist_ok=True)
    save_file({"encoder.weight": layer.weight.detach().contiguous(), "encoder.bias": layer.bias.detach().contiguous()},
              os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write('{"model_type": "whisper", "num_mel_bins": 128}\n')


class ToyWhisperFolder:
    """The export's ``WhisperModel.from_pretrained("openai/whisper-large-v3")`` + save_pretrained."""

    def __init__(self, folder):
        self.folder = folder
        self.state = {}

    @classmethod
    def from_pretrained(cls, name):
        return cls(local_folder(name))

    def load_state_dict(self, state, strict=False):
        self.state = {k: v.detach().contiguous() for k, v in state.items()}
        return [], []

    def save_pretrained(self, folder):
        os.makedirs(folder, exist_ok=True)
        save_file(self.state, os.path.join(folder, "model.safetensors"))
        with open(os.path.join(folder, "config.json"), "w") as fh:
            fh.write('{"model_type": "whisper", "num_mel_bins": 128}\n')
