from types import SimpleNamespace

NAMES = ("kimia_text_blank", "kimia_text_eos", "media_begin", "media_end", "kimia_user_msg_start",
         "kimia_assistant_msg_start", "msg_end")


def instantiate_extra_tokens(tokenizer):
    vocab = tokenizer.get_vocab()
    return SimpleNamespace(**{name: vocab[f"<|im_{name}|>"] for name in NAMES})
