"""flash-attn's padding helpers, for the SDPA stand-in (see __init__.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def index_first_axis(tensor, indices):
    return tensor[indices]


def unpad_input(hidden_states, attention_mask, *args):
    lengths = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = F.pad(torch.cumsum(lengths, dim=0, dtype=torch.int32), (1, 0))
    flat = hidden_states.reshape((-1,) + tuple(hidden_states.shape[2:]))
    return flat[indices], indices, cu_seqlens, int(lengths.max().item())


def pad_input(hidden_states, indices, batch, seqlen):
    out = hidden_states.new_zeros((batch * seqlen,) + tuple(hidden_states.shape[1:]))
    out[indices] = hidden_states
    return out.reshape((batch, seqlen) + tuple(hidden_states.shape[1:]))
