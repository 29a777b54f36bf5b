from transformers import PretrainedConfig


class ToyKimiaConfig(PretrainedConfig):
    model_type = "kimia_double"

    def __init__(self, vocab_size=576, hidden_size=32, kimia_token_offset=512, kimia_mimo_audiodelaytokens=5,
                 whisper_width=8, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.kimia_token_offset = kimia_token_offset
        self.kimia_mimo_audiodelaytokens = kimia_mimo_audiodelaytokens
        self.whisper_width = whisper_width
        super().__init__(**kwargs)
