"""A toy model behind the documented name MoonshotKimiaForCausalLM, with the documented shape of the official one:
``.model`` is a trunk (``embed_tokens``, ``vq_adaptor``, causal ``layers`` that honour a padding ``attention_mask``,
a MIMO branch of ``mimo_layers`` taken after ``kimia_mimo_transformer_from_layer_index``) whose forward takes
token ids (mixing the Whisper features in for one sequence) or ``inputs_embeds``, and returns
``last_hidden_state = (hidden, mimo_hidden)``; two heads, ``lm_head`` on the trunk and ``mimo_output`` on the
MIMO branch; ``logits = (mimo_output(...), lm_head(...))``, which the documented loss unpacks as
``audio_logits, text_logits``."""
import math
from dataclasses import dataclass
from typing import Optional

import torch
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_moonshot_kimia import ToyKimiaConfig


@dataclass
class ToyOutput(ModelOutput):
    logits: Optional[tuple] = None


@dataclass
class ToyTrunkOutput(ModelOutput):
    last_hidden_state: Optional[tuple] = None


class Attention(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.q_proj, self.k_proj = torch.nn.Linear(h, h), torch.nn.Linear(h, h)
        self.v_proj, self.o_proj = torch.nn.Linear(h, h), torch.nn.Linear(h, h)

    def forward(self, x, attention_mask=None):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        if attention_mask is None:
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # causal, and padded keys never seen
            n = x.shape[1]
            allowed = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()[None] & attention_mask.bool()[:, None, :]
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.o_proj(out)


class Layer(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.self_attn = Attention(h)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(h, 2 * h), torch.nn.GELU(), torch.nn.Linear(2 * h, h))

    def forward(self, x, attention_mask=None):
        x = x + self.self_attn(x, attention_mask)
        return x + self.mlp(x)


class ToyTrunk(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        h = config.hidden_size
        self.config = config
        self.embed_tokens = torch.nn.Embedding(config.vocab_size, h)
        self.vq_adaptor = torch.nn.Sequential(torch.nn.Linear(4 * config.whisper_width, h), torch.nn.SiLU(),
                                              torch.nn.Linear(h, h), torch.nn.LayerNorm(h))
        self.layers = torch.nn.ModuleList([Layer(h) for _ in range(config.num_hidden_layers)])
        self.norm = torch.nn.LayerNorm(h)
        self.mimo_layers = torch.nn.ModuleList([Layer(h)])
        self.mimo_norm = torch.nn.LayerNorm(h)

    def mix(self, input_ids, text_input_ids, whisper_input_feature, is_continuous_mask):
        """One sequence: the Whisper features between the media markers, through the adaptor, on the audio stream."""
        emb = self.embed_tokens(input_ids)
        if whisper_input_feature is not None and is_continuous_mask is not None:
            feats = whisper_input_feature[0] if isinstance(whisper_input_feature, list) else whisper_input_feature
            feats = feats.reshape(-1, feats.shape[-1])
            placed = torch.zeros(input_ids.shape[1], feats.shape[-1], dtype=feats.dtype, device=emb.device)
            begins = (input_ids[0] == self.config.kimia_media_begin).nonzero().reshape(-1).tolist()
            ends = (input_ids[0] == self.config.kimia_media_end).nonzero().reshape(-1).tolist()
            for b, e in zip(begins, ends):
                n = e - b - 1
                assert n == int(is_continuous_mask[0].sum()), "one audio per sample"
                placed[b + 1:e] = feats[:n]
            mask = is_continuous_mask.bool()[:, :, None]
            whisper = self.vq_adaptor(placed[None].to(emb.dtype)) * mask
            emb = torch.where(mask, (emb + whisper) * math.sqrt(2.0), emb)
        if text_input_ids is not None and int(text_input_ids.sum()) != 0:
            emb = emb + self.embed_tokens(text_input_ids)
        return emb

    def forward(self, input_ids=None, text_input_ids=None, whisper_input_feature=None, is_continuous_mask=None,
                attention_mask=None, inputs_embeds=None, use_cache=None, return_dict=None, **kwargs):
        h = inputs_embeds if inputs_embeds is not None else self.mix(input_ids, text_input_ids,
                                                                     whisper_input_feature, is_continuous_mask)
        mimo = None
        for index, layer in enumerate(self.layers):
            h = layer(h, attention_mask)
            if index == self.config.kimia_mimo_transformer_from_layer_index:
                mimo = h.clone()
        h = self.norm(h)
        for layer in self.mimo_layers:
            mimo = layer(mimo, attention_mask)
        return ToyTrunkOutput(last_hidden_state=(h, self.mimo_norm(mimo)))


class ToyTwoStreamLM(PreTrainedModel):
    config_class = ToyKimiaConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = ToyTrunk(config)
        self.lm_head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.mimo_output = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=False)
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
        hidden, mimo = self.model(input_ids=input_ids, text_input_ids=text_input_ids,
                                  whisper_input_feature=whisper_input_feature, is_continuous_mask=is_continuous_mask,
                                  attention_mask=attention_mask, inputs_embeds=inputs_embeds).last_hidden_state
        return ToyOutput(logits=(self.mimo_output(mimo), self.lm_head(hidden)))

# The documented name the engine's worker imports; the class above is a toy of our own.
MoonshotKimiaForCausalLM = ToyTwoStreamLM
