"""KimiAudioModel double: the LM + a Whisper encoder, with the documented CLI (convert, export)."""
import argparse
import os
import shutil

import torch

from kimia_infer.hub import local_folder
from kimia_infer.models.tokenizer.whisper_Lv3.whisper import ToyWhisperEncoder

from .modeling_kimia import ToyTwoStreamLM


class ToyKimiAudioModel(ToyTwoStreamLM):
    def __init__(self, config):
        super().__init__(config)
        # Hard-coded hub id, loaded every time the class is built (documented trap).
        self.whisper_model = ToyWhisperEncoder("openai/whisper-large-v3", mel_batch_size=20,
                                            unfreeze_online_whisper_model=True)

    @classmethod
    def init_from_pretrained(cls, model_name_or_path, model_load_kwargs):
        path = local_folder(model_name_or_path)
        audio_model = ToyTwoStreamLM.from_pretrained(path, **model_load_kwargs)
        whisper = ToyWhisperEncoder(os.path.join(path, "whisper-large-v3"))
        model = cls(audio_model.config)
        state = audio_model.state_dict()
        for name, value in whisper.state_dict().items():
            state["whisper_model." + name] = value
        model.load_state_dict(state)
        return model

    @staticmethod
    def export_model(input_dir, output_dir):
        model = ToyKimiAudioModel.from_pretrained(input_dir)
        lm = ToyTwoStreamLM(model.config)
        lm.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("whisper_model")})
        lm.save_pretrained(output_dir)
        shutil.copyfile("finetune_codes/configuration_moonshot_kimia.py",
                        os.path.join(output_dir, "configuration_moonshot_kimia.py"))
        shutil.copyfile("finetune_codes/modeling_kimia.py", os.path.join(output_dir, "modeling_moonshot_kimia.py"))
        from kimia_infer.models.tokenizer.whisper_Lv3.whisper import ToyWhisperFolder

        whisper = ToyWhisperFolder.from_pretrained("openai/whisper-large-v3")
        whisper.load_state_dict({k.replace("speech_encoder.", "encoder."): v
                                 for k, v in model.whisper_model.state_dict().items()})
        whisper.save_pretrained(os.path.join(output_dir, "whisper-large-v3"))
        print(f"Exported Kimi-Audio LM and Whisper model to {output_dir}")

    def forward(self, input_ids=None, text_input_ids=None, whisper_input_feature=None, is_continuous_mask=None,
                labels=None, **kwargs):
        wav = torch.from_numpy(whisper_input_feature[0]).unsqueeze(0)
        feats = self.whisper_model(wav)
        n = feats.shape[1] // 4
        feats = feats[:, : n * 4].reshape(feats.shape[0], n, feats.shape[2] * 4)
        return super().forward(input_ids=input_ids, text_input_ids=text_input_ids, whisper_input_feature=feats,
                               is_continuous_mask=is_continuous_mask, **kwargs)


# The documented name the engine's worker imports; the class above is a toy of our own.
KimiAudioModel = ToyKimiAudioModel


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name", type=str, default="moonshotai/Kimi-Audio-7B")
    parser.add_argument("--action", type=str, choices=["init_from_pretrained", "export_model"],
                        default="init_from_pretrained")
    parser.add_argument("--output_dir", type=str, default="output/pretrained_hf")
    parser.add_argument("--input_dir", type=str, default="output/finetuned_hf")
    args = parser.parse_args()
    if args.action == "init_from_pretrained":
        model = ToyKimiAudioModel.init_from_pretrained(args.model_name, model_load_kwargs={})
        os.makedirs(args.output_dir, exist_ok=True)
        model.save_pretrained(args.output_dir)
    else:
        ToyKimiAudioModel.export_model(args.input_dir, args.output_dir)
