"""A toy model behind the documented name MoonshotKimiaForCausalLM: two token streams (audio, text) summed, one causal attention layer,
continuous Whisper features added on the audio positions, two heads (audio logits, text logits)."""
from dataclasses import dataclass
from typing import Optional

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_moonshot_kimia import ToyKimiaConfig


@dataclass
class ToyOutput(ModelOutput):
    logits: Optional[tuple] = None


class Attention(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.q_proj, self.k_proj = torch.nn.Linear(h, h), torch.nn.Linear(h, h)
        self.v_proj, self.o_proj = torch.nn.Linear(h, h), torch.nn.Linear(h, h)

    def forward(self, x):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        return self.o_proj(torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))


class Layer(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.self_attn = Attention(h)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(h, 2 * h), torch.nn.GELU(), torch.nn.Linear(2 * h, h))

    def forward(self, x):
        x = x + self.self_attn(x)
        return x + self.mlp(x)


class Trunk(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.adaptor = torch.nn.Linear(4 * config.whisper_width, config.hidden_size)
        self.layers = torch.nn.ModuleList([Layer(config.hidden_size)])


class ToyTwoStreamLM(PreTrainedModel):
    config_class = ToyKimiaConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = Trunk(config)
        self.audio_head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.text_head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(module.weight, std=0.1)
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            torch.nn.init.zeros_(module.bias)

    def forward(self, input_ids=None, text_input_ids=None, whisper_input_feature=None, is_continuous_mask=None,
                attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None, labels=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, generation_mode=None,
                return_dict=None):
        h = self.model.embed_tokens(input_ids) + self.model.embed_tokens(text_input_ids)
        if whisper_input_feature is not None and is_continuous_mask is not None and bool(is_continuous_mask.any()):
            feats = self.model.adaptor(whisper_input_feature.to(h.dtype))
            idx = is_continuous_mask[0].nonzero().squeeze(-1)
            n = min(len(idx), feats.shape[1])
            add = torch.zeros_like(h)
            add[0, idx[:n]] = feats[0, :n]
            h = h + add
        for layer in self.model.layers:
            h = layer(h)
        return ToyOutput(logits=(self.audio_head(h), self.text_head(h)))

# The documented name the engine's worker imports; the class above is a toy of our own.
MoonshotKimiaForCausalLM = ToyTwoStreamLM
