import os

import soundfile
import torch
from transformers import AutoTokenizer

from kimia_infer.hub import local_folder
from kimia_infer.models.tokenizer.glm4_tokenizer import ToyCodeTokenizer
from kimia_infer.models.tokenizer.whisper_Lv3.whisper import ToyWhisperEncoder
from kimia_infer.utils.special_tokens import instantiate_extra_tokens


class ToyPromptManager:
    def __init__(self, model_path: str, kimia_token_offset: int, kimia_text_audiodelaytokens: int):
        self.audio_tokenizer = ToyCodeTokenizer("THUDM/glm-4-voice-tokenizer")  # hard-coded hub id
        self.whisper_model = ToyWhisperEncoder(os.path.join(model_path, "whisper-large-v3"), mel_batch_size=20)
        if os.path.exists(os.path.join(model_path, "tokenizer_config.json")):
            self.text_tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)
        else:  # the documented trap: an export without tokenizer files falls back to the hub
            self.text_tokenizer = AutoTokenizer.from_pretrained(local_folder("moonshotai/Kimi-Audio-7B-Instruct"),
                                                                trust_remote_code=True)
        self.extra_tokens = instantiate_extra_tokens(self.text_tokenizer)
        self.kimia_token_offset = kimia_token_offset
        self.kimia_text_audiodelaytokens = kimia_text_audiodelaytokens

    def _tokenize_audio(self, wav_path):
        tokens = self.audio_tokenizer.tokenize(audio_path=wav_path) + self.kimia_token_offset
        return tokens.squeeze(0).cpu().numpy().tolist()

    def extract_whisper_feat(self, wav_path):
        data, _ = soundfile.read(wav_path, dtype="float32", always_2d=True)
        feats = self.whisper_model.tokenize_waveform(torch.from_numpy(data.mean(axis=1)).unsqueeze(0))
        n = feats.shape[1] // 4
        return feats[:, : n * 4].reshape(feats.shape[0], n, feats.shape[2] * 4)

# The documented name the engine's worker imports; the class above is a toy of our own.
KimiAPromptManager = ToyPromptManager
