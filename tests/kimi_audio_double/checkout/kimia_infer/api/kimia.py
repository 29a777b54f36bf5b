"""KimiAudio double: greedy text from the text head; max_new_tokens=-1 means ~7,500 steps (documented)."""
import torch

from finetune_codes.datasets import tokenize_conversation
from finetune_codes.modeling_kimia import ToyTwoStreamLM

from .prompt_manager import ToyPromptManager


class ToyKimiAudio:
    def __init__(self, model_path: str, load_detokenizer: bool = True):
        if load_detokenizer:
            raise RuntimeError("the detokenizer needs CUDA extensions: pass load_detokenizer=False for text output")
        self.alm = ToyTwoStreamLM.from_pretrained(model_path).eval()
        config = self.alm.config
        self.prompt_manager = ToyPromptManager(model_path=model_path, kimia_token_offset=config.kimia_token_offset,
                                                 kimia_text_audiodelaytokens=config.kimia_mimo_audiodelaytokens)
        self.extra_tokens = self.prompt_manager.extra_tokens

    @torch.inference_mode()
    def generate(self, chats, output_type="text", audio_temperature=0.0, audio_top_k=5, text_temperature=0.0,
                 text_top_k=5, audio_repetition_penalty=1.0, audio_repetition_window_size=64,
                 text_repetition_penalty=1.0, text_repetition_window_size=16, max_new_tokens=-1):
        assert output_type == "text"
        chats = [dict(m) for m in chats]
        for m in chats:
            if m["message_type"] == "audio":
                m["audio_tokens"] = self.prompt_manager._tokenize_audio(m["content"])
                feats = self.prompt_manager.extract_whisper_feat(m["content"])
        tok = self.prompt_manager.text_tokenizer
        x = self.extra_tokens
        audio, text, cont, _, _ = tokenize_conversation(chats, tok, x, with_answer=False)
        audio.append(x.kimia_assistant_msg_start)
        text.append(x.kimia_text_blank)
        cont.append(False)
        steps = 7500 if max_new_tokens == -1 else max_new_tokens
        out = []
        for _ in range(steps):
            t = lambda v, d=torch.long: torch.tensor([v], dtype=d)  # noqa: E731
            _, logits = self.alm(input_ids=t(audio), text_input_ids=t(text), whisper_input_feature=feats,
                                 is_continuous_mask=t(cont, torch.bool)).logits
            nxt = int(logits[0, -1].argmax())
            if nxt == x.kimia_text_eos:
                break
            out.append(nxt)
            audio.append(x.kimia_text_blank)
            text.append(nxt)
            cont.append(False)
        return None, tok.decode(out)

# The documented name the engine's worker imports; the class above is a toy of our own.
KimiAudio = ToyKimiAudio
