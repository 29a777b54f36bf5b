"""A stand-in for flash-attn on torch's scaled_dot_product_attention, for the GPU test bed only.

The official ``modeling_kimia.py`` refuses to import without flash-attn, and the device
cannot build it (no internet, no wheel for its torch). This package lives in the test
bed's own ``PYTHONPATH`` and never in kimi-tui's package or the user's checkout. It
implements the two calls the official model makes, with flash-attn's tensor layout
([batch, seq, heads, dim] and the unpadded [tokens, heads, dim]); SDPA picks its own
flash kernel on the GPU, so the speed is close to the real thing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__version__ = "2.7.4.post1"


def _sdpa(q, k, v, dropout_p, softmax_scale, causal, key_padding=None):
    """q [B, L, H, D], k/v [B, S, Hkv, D] -> [B, L, H, D]; grouped heads as flash-attn takes them."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    gqa = q.shape[1] != k.shape[1]
    mask = None
    if causal and q.shape[2] != k.shape[2]:
        # flash-attn >= 2.1 aligns the causal mask to the bottom right (decoding with a KV cache: the new
        # queries see every cached key); SDPA's is_causal aligns it to the top left, so spell it out.
        offset = k.shape[2] - q.shape[2]
        mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril(offset)
        causal = False
    if key_padding is not None:
        # keys past a row's length never count; with right padding a causal mask alone already hides them
        mask = key_padding[:, None, None, :] if mask is None else mask & key_padding[:, None, None, :]
        if causal:
            length = q.shape[2]
            mask = mask & torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
            causal = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=causal,
                                         scale=softmax_scale, enable_gqa=gqa)
    return out.transpose(1, 2)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, *args, **kwargs):
    return _sdpa(q, k, v, dropout_p, softmax_scale, causal)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0,
                           softmax_scale=None, causal=False, *args, **kwargs):
    """Unpadded sequences back into a padded batch, one SDPA call, and unpadded again."""
    if not torch.equal(cu_seqlens_q, cu_seqlens_k):
        outs = []  # queries and keys of different lengths (decoding): one sequence at a time
        for i in range(len(cu_seqlens_q) - 1):
            qs = q[cu_seqlens_q[i]:cu_seqlens_q[i + 1]][None]
            ks = k[cu_seqlens_k[i]:cu_seqlens_k[i + 1]][None]
            vs = v[cu_seqlens_k[i]:cu_seqlens_k[i + 1]][None]
            if causal and qs.shape[1] != ks.shape[1]:
                # flash-attn aligns the causal mask to the bottom right: the last query sees every key
                offset = ks.shape[1] - qs.shape[1]
                allowed = torch.ones(qs.shape[1], ks.shape[1], dtype=torch.bool, device=q.device).tril(offset)
                qt, kt, vt = (t.transpose(1, 2) for t in (qs, ks, vs))
                out = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=allowed, scale=softmax_scale,
                                                     enable_gqa=qt.shape[1] != kt.shape[1]).transpose(1, 2)
            else:
                out = _sdpa(qs, ks, vs, dropout_p, softmax_scale, causal)
            outs.append(out[0])
        return torch.cat(outs, 0)
    lengths = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).tolist()
    batch, longest = len(lengths), int(max_seqlen_q)
    rows = torch.arange(longest, device=q.device)[None, :] < torch.tensor(lengths, device=q.device)[:, None]
    def pad(t):
        out = t.new_zeros((batch, longest) + tuple(t.shape[1:]))
        out[rows] = t
        return out
    # right padding: with a causal mask no real query ever sees a padded key (and SDPA keeps its flash
    # kernel); without one the padded keys must be masked out
    out = _sdpa(pad(q), pad(k), pad(v), dropout_p, softmax_scale, causal, key_padding=None if causal else rows)
    return out[rows]


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False, *args, **kwargs):
    """qkv [B, L, 3, H, D] (the official Whisper imports it)."""
    return _sdpa(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], dropout_p, softmax_scale, causal)


def flash_attn_kvpacked_func(q, kv, dropout_p=0.0, softmax_scale=None, causal=False, *args, **kwargs):
    """kv [B, S, 2, Hkv, D]."""
    return _sdpa(q, kv[:, :, 0], kv[:, :, 1], dropout_p, softmax_scale, causal)


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0, softmax_scale=None, causal=False,
                                     *args, **kwargs):
    """qkv [tokens, 3, H, D] of unpadded sequences."""
    return flash_attn_varlen_func(qkv[:, 0], qkv[:, 1], qkv[:, 2], cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
                                  dropout_p, softmax_scale, causal)
