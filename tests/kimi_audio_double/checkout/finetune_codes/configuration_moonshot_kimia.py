from transformers import PretrainedConfig


class ToyKimiaConfig(PretrainedConfig):
    model_type = "kimia_double"

    def __init__(self, vocab_size=576, hidden_size=32, num_hidden_layers=2, kimia_token_offset=512,
                 kimia_mimo_audiodelaytokens=5, kimia_mimo_transformer_from_layer_index=0, whisper_width=8,
                 kimia_media_begin=3, kimia_media_end=4, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.kimia_token_offset = kimia_token_offset
        self.kimia_mimo_audiodelaytokens = kimia_mimo_audiodelaytokens
        self.kimia_mimo_transformer_from_layer_index = kimia_mimo_transformer_from_layer_index
        self.whisper_width = whisper_width
        # ids of <|im_media_begin|> / <|im_media_end|> in make_models.py's vocabulary
        self.kimia_media_begin = kimia_media_begin
        self.kimia_media_end = kimia_media_end
        super().__init__(**kwargs)
