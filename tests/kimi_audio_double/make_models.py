"""Build the model folders the kimi-audio engine is configured with, for the checkout double.

Usage: python make_models.py OUT_DIR [TRANSCRIPT ...]
Creates OUT_DIR/Kimi-Audio-7B (LM weights, config, tokenizer files, whisper-large-v3/),
OUT_DIR/glm-4-voice-tokenizer and OUT_DIR/whisper-large-v3.
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "checkout"))

TOKENIZER = '''from transformers import PreTrainedTokenizer


class KimiaCharTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "tiktoken.model"}
    model_input_names = ["input_ids"]

    def __init__(self, vocab_file, **kwargs):
        with open(vocab_file, encoding="utf-8") as fh:
            self.pieces = fh.read().split("\\n")
        self.ids = {p: i for i, p in enumerate(self.pieces)}
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return len(self.pieces)

    def get_vocab(self):
        return dict(self.ids)

    def _tokenize(self, text):
        return list(text)

    def _convert_token_to_id(self, token):
        return self.ids.get(token, 0)

    def _convert_id_to_token(self, index):
        return self.pieces[index] if 0 <= index < len(self.pieces) else "<unk>"

    def convert_tokens_to_string(self, tokens):
        return "".join(tokens)

    def encode(self, text, bos=False, eos=False, **kwargs):
        return [self.ids.get(c, 0) for c in text]

    def decode(self, ids, **kwargs):
        return "".join(self._convert_id_to_token(int(i)) for i in ids)
'''


def main(out, texts):
    from finetune_codes.configuration_moonshot_kimia import ToyKimiaConfig
    from finetune_codes.modeling_kimia import ToyTwoStreamLM
    from kimia_infer.models.tokenizer.whisper_Lv3.whisper import save_whisper
    from kimia_infer.utils.special_tokens import NAMES
    import torch

    torch.manual_seed(0)
    chars = sorted({c for t in texts for c in t} - {"\n"})
    pieces = ["<unk>"] + [f"<|im_{n}|>" for n in NAMES] + chars
    assert len(pieces) < 512, "too many characters for the double's vocabulary"
    base = os.path.join(out, "Kimi-Audio-7B")
    model = ToyTwoStreamLM(ToyKimiaConfig())
    model.save_pretrained(base)
    save_whisper(os.path.join(base, "whisper-large-v3"))
    save_whisper(os.path.join(out, "whisper-large-v3"))
    with open(os.path.join(base, "tiktoken.model"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(pieces))
    with open(os.path.join(base, "tokenization_kimia.py"), "w") as fh:
        fh.write(TOKENIZER)
    with open(os.path.join(base, "tokenizer_config.json"), "w") as fh:
        json.dump({"auto_map": {"AutoTokenizer": ["tokenization_kimia.KimiaCharTokenizer", None]},
                   "tokenizer_class": "KimiaCharTokenizer"}, fh)
    with open(os.path.join(base, "special_tokens_map.json"), "w") as fh:
        json.dump({}, fh)
    glm = os.path.join(out, "glm-4-voice-tokenizer")
    os.makedirs(glm, exist_ok=True)
    with open(os.path.join(glm, "config.json"), "w") as fh:
        json.dump({"model_type": "whisper_vq", "codebook_size": 64}, fh)
    return base


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
