"""Batched training for the kimi-audio engine, built around the official model.

Why: the official loop feeds the GPU one ~200-token sample per forward (its collate_fn and
``finetune.compute_loss`` assert a micro-batch of 1, and ``KimiAudioModel.forward`` runs
Whisper on the first sample only), so on an H200 the GPU is busy ~11 % of the time and the
host CPU launching small kernels sets the pace. The official language model itself takes
``inputs_embeds`` and a padding mask (its attention unpads them for flash-attn's varlen
kernel), so this module builds each sample's input embeddings the way the official forward
does (token embeddings; the VQ adaptor over the 4x-reshaped Whisper features placed between
the media markers, masked by ``is_continuous_mask``, added and scaled by sqrt(2); the text
stream's embeddings), pads B of them with an attention mask, runs the language model once,
and scores every sample with the official loss (text CE + audio CE, each over its own mask,
divided by the mask's count + 1e-4). The batch's loss is the *sum* of its samples' losses:
the Trainer does not divide a ``compute_loss_func`` loss by the accumulation steps, so a
batch of B with accumulation A makes exactly the optimizer step of the official loop with
micro-batch 1 and accumulation B x A (``check_equivalence`` proves it on the user's model).

Batches are drawn by length (transformers' LengthGroupedSampler) so padding stays small, and
when the Whisper encoder is frozen (LoRA) each clip's features are computed once and kept,
instead of a CPU log-mel and a 30 s encoder pass per sample on every step of every epoch.

Only the output heads' rows that carry a loss are computed (the official loss multiplies
the others by zero), which saves two [tokens, 168,448] logit tensors per sample.

Stdlib-only at import time: copied next to the worker and run under the interpreter of the
user's Kimi-Audio environment; torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import math

#: Bytes of cached Whisper features kept on the GPU; the rest stay in (pinned) host memory.
GPU_CACHE_BYTES = 2 << 30


class BatchingError(Exception):
    """A sample the batched path cannot take (the worker reports it like its own errors)."""


def approximate_length(sample: dict) -> int:
    """Tokens a sample will have, from its JSONL alone (for bucketing; exactness is not needed)."""
    total = 4
    for message in sample.get("conversation", []):
        if not isinstance(message, dict):
            continue
        if message.get("message_type") == "audio":
            total += len(message.get("audio_tokens") or []) + 3
        else:
            total += len(str(message.get("content") or "")) + 2
    return total


def audio_key(sample: dict) -> str:
    for message in sample.get("conversation", []):
        if isinstance(message, dict) and message.get("message_type") == "audio":
            return str(message.get("content"))
    return ""


def whisper_is_frozen(lm) -> bool:
    return not any(p.requires_grad for p in lm.whisper_model.parameters())


def unwrap(model):
    """The KimiAudioModel inside DDP / DeepSpeed / PEFT wrappers."""
    while True:
        if hasattr(type(model), "get_base_model"):  # a PeftModel (it forwards attribute reads to the base)
            model = model.get_base_model()
        elif "module" in getattr(model, "_modules", {}):  # DDP, DeepSpeed's engine
            model = model.module
        else:
            return model


# ---------------------------------------------------------------------------
# Data: the official dataset's items, padded
# ---------------------------------------------------------------------------


class KeyedDataset:
    """The official LazySupervisedDataset, each item tagged with its clip (the Whisper cache's key)."""

    def __init__(self, dataset, samples: list[dict]):
        self.dataset = dataset
        self.keys = [audio_key(s) for s in samples]
        self.lengths = [approximate_length(s) for s in samples]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.dataset[index])
        item["audio_key"] = self.keys[index]
        return item


def collate(items: list[dict]) -> dict:
    """B official items -> one right-padded batch, with the rows that carry a loss listed.

    Padding is 0 in both token streams (the official forward adds the text stream's
    embeddings only when its ids are not all 0) and is masked out of attention.
    """
    import numpy as np
    import torch

    lengths = [int(item["input_ids"].shape[-1]) for item in items]
    batch, longest = len(items), max(lengths)
    input_ids = torch.zeros(batch, longest, dtype=torch.long)
    text_ids = torch.zeros(batch, longest, dtype=torch.long)
    continuous = torch.zeros(batch, longest, dtype=torch.bool)
    attention = torch.zeros(batch, longest, dtype=torch.long)
    text_pos, text_targets, audio_pos, audio_targets = [], [], [], []
    text_counts, audio_counts, feature_pos, feature_counts, waveforms = [], [], [], [], []
    for row, item in enumerate(items):
        n = lengths[row]
        ids = item["input_ids"].reshape(-1)
        input_ids[row, :n] = ids
        text_ids[row, :n] = item["text_input_ids"].reshape(-1)
        mask = item["is_continuous_mask"].reshape(-1).bool()
        continuous[row, :n] = mask
        attention[row, :n] = 1
        audio_labels, text_labels, audio_mask, text_mask = (t.reshape(-1) for t in item["labels"])
        for positions, targets, counts, labels, loss_mask in (
            (text_pos, text_targets, text_counts, text_labels, text_mask),
            (audio_pos, audio_targets, audio_counts, audio_labels, audio_mask),
        ):
            where = loss_mask.bool().nonzero().reshape(-1)
            positions.append(torch.stack([torch.full_like(where, row), where], 1))
            targets.append(labels[where])
            counts.append(float(loss_mask.float().sum()))
        # The Whisper frames go between media_begin and media_end: the continuous positions.
        spans = mask.nonzero().reshape(-1)
        feature_pos.append(torch.stack([torch.full_like(spans, row), spans], 1))
        feature_counts.append(int(spans.numel()))
        features = item["whisper_input_feature"]
        if len(features) != 1:
            raise BatchingError(f"a sample with {len(features)} audio messages: the official model mixes the "
                                "Whisper features of one audio per sample (upstream issue #130)")
        waveforms.append((item.get("audio_key", ""), np.asarray(features[0], dtype=np.float32)))
    return {
        "input_ids": input_ids,
        "text_input_ids": text_ids,
        "is_continuous_mask": continuous,
        "attention_mask": attention,
        "kimi_tui_waveforms": waveforms,
        "kimi_tui_feature_positions": torch.cat(feature_pos),
        "kimi_tui_feature_counts": feature_counts,  # a list: the Trainer leaves it on the host (no sync)
        "kimi_tui_text_positions": torch.cat(text_pos),
        "kimi_tui_audio_positions": torch.cat(audio_pos),
        "labels": (
            torch.cat(text_targets), torch.tensor(text_counts),
            torch.cat(audio_targets), torch.tensor(audio_counts),
        ),
    }


# ---------------------------------------------------------------------------
# The batched forward and the official loss per sample
# ---------------------------------------------------------------------------


class WhisperFeatures:
    """Each clip's Whisper features, the official way (KimiAudioModel.forward), kept when frozen."""

    def __init__(self, cache: bool):
        self.cache = cache
        self.kept: dict[str, object] = {}
        self.gpu_bytes = 0
        self.computed = 0

    def __call__(self, lm, key: str, waveform):
        import torch

        if self.cache and key in self.kept:
            return self.kept[key]
        device = lm.model.embed_tokens.weight.device
        wav = torch.from_numpy(waveform).unsqueeze(0).to(device)
        with torch.no_grad() if self.cache else torch.enable_grad():
            feats = lm.whisper_model(wav)
        feats = feats.reshape(feats.shape[0], int(feats.shape[1] // 4), feats.shape[2] * 4)[0]
        self.computed += 1
        if self.cache and key:
            feats = feats.detach()
            size = feats.numel() * feats.element_size()
            if device.type == "cuda" and self.gpu_bytes + size > GPU_CACHE_BYTES:
                self.kept[key] = feats.to("cpu").pin_memory()
            else:
                self.kept[key] = feats
                self.gpu_bytes += size if device.type == "cuda" else 0
        return feats


def batch_embeddings(lm, features: WhisperFeatures, input_ids, text_input_ids, is_continuous_mask, attention_mask,
                     kimi_tui_waveforms, kimi_tui_feature_positions, kimi_tui_feature_counts):
    """inputs_embeds [B, L, H] with the official mixing, padding rows zero."""
    import torch

    device = lm.model.embed_tokens.weight.device
    feats = [features(lm, key, wav) for key, wav in kimi_tui_waveforms]
    input_ids = input_ids.to(device)
    text_input_ids = text_input_ids.to(device)
    mask = is_continuous_mask.to(device)
    audio_emb = lm.model.embed_tokens(input_ids)
    width = feats[0].shape[-1]
    expanded = torch.zeros(input_ids.shape[0], input_ids.shape[1], width, dtype=feats[0].dtype, device=device)
    rows = []
    for row, (n, f) in enumerate(zip(kimi_tui_feature_counts, feats)):
        if f.shape[0] < n:
            raise BatchingError(f"{kimi_tui_waveforms[row][0]}: {f.shape[0]} Whisper frames for {n} audio tokens")
        rows.append(f[:n].to(device, non_blocking=True))
    positions = kimi_tui_feature_positions.to(device)
    expanded[positions[:, 0], positions[:, 1]] = torch.cat(rows).to(expanded.dtype)
    whisper_emb = lm.model.vq_adaptor(expanded)
    whisper_emb = whisper_emb * mask[:, :, None]
    scale = torch.sqrt(torch.tensor(2.0, dtype=whisper_emb.dtype, device=device))
    mixed = (audio_emb + whisper_emb) * scale
    audio_emb = audio_emb * (~mask[:, :, None]) + mixed * mask[:, :, None]
    has_text = (text_input_ids.sum(1) != 0)[:, None, None]
    embeds = torch.where(has_text, audio_emb + lm.model.embed_tokens(text_input_ids), audio_emb)
    keep = attention_mask.to(device)[:, :, None].bool()
    return torch.where(keep, embeds, torch.zeros((), dtype=embeds.dtype, device=device))


def make_batched_forward(lm, features: WhisperFeatures):
    """A forward for KimiAudioModel that takes a collated batch; any other call goes to the official one."""
    official = type(lm).forward

    def forward(*args, **kwargs):
        if "kimi_tui_waveforms" not in kwargs:
            return official(lm, *args, **kwargs)
        text_positions = kwargs.pop("kimi_tui_text_positions")
        audio_positions = kwargs.pop("kimi_tui_audio_positions")
        embeds = batch_embeddings(lm, features, kwargs["input_ids"], kwargs["text_input_ids"],
                                  kwargs["is_continuous_mask"], kwargs["attention_mask"],
                                  kwargs["kimi_tui_waveforms"], kwargs["kimi_tui_feature_positions"],
                                  kwargs["kimi_tui_feature_counts"])
        device = embeds.device
        attention = kwargs["attention_mask"].to(device)
        out = lm.model(inputs_embeds=embeds, attention_mask=attention, use_cache=False, return_dict=True)
        hidden, mimo_hidden = out.last_hidden_state
        text_positions = text_positions.to(device)
        audio_positions = audio_positions.to(device)
        # The official loss pairs the main trunk's lm_head with the text labels and the MIMO branch's
        # head with the audio labels (outputs.logits = (mimo_output(...), lm_head(...)), unpacked as
        # "audio_logits, text_logits").
        text_logits = lm.lm_head(hidden[text_positions[:, 0], text_positions[:, 1]])
        audio_logits = lm.mimo_output(mimo_hidden[audio_positions[:, 0], audio_positions[:, 1]])
        return {"text_logits": text_logits, "audio_logits": audio_logits,
                "text_rows": text_positions[:, 0], "audio_rows": audio_positions[:, 0]}

    return forward


def per_sample_losses(outputs, labels):
    """The official loss of every sample of the batch: [B]."""
    import torch
    import torch.nn.functional as F

    text_targets, text_counts, audio_targets, audio_counts = labels
    device = outputs["text_logits"].device
    batch = text_counts.shape[0]
    total = torch.zeros(batch, dtype=torch.float32, device=device)
    for logits, targets, rows, counts in (
        (outputs["text_logits"], text_targets, outputs["text_rows"], text_counts),
        (outputs["audio_logits"], audio_targets, outputs["audio_rows"], audio_counts),
    ):
        sums = torch.zeros(batch, dtype=torch.float32, device=device)
        if logits.shape[0]:
            ce = F.cross_entropy(logits, targets.to(device), reduction="none")
            sums = sums.index_add(0, rows, ce.float())
        total = total + sums / (counts.to(device=device, dtype=torch.float32) + 1e-4)
    return total


def batched_loss(outputs, labels, num_items_in_batch=None):
    """The Trainer's compute_loss_func: the sum of the samples' official losses (see the module docstring)."""
    return per_sample_losses(outputs, labels).sum()


def install(model, cache_whisper: bool | None = None) -> WhisperFeatures:
    """Give the (possibly PEFT-wrapped) KimiAudioModel the batched forward; returns its feature cache."""
    lm = unwrap(model)
    features = WhisperFeatures(whisper_is_frozen(lm) if cache_whisper is None else cache_whisper)
    lm.forward = make_batched_forward(lm, features)
    return features


def batched_trainer_class(trainer_class, lengths: list[int]):
    """The Trainer, drawing batches of similar length (the transformers sampler made for it)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class KimiTuiBatchedTrainer(trainer_class):
        def _get_train_sampler(self, *args, **kwargs):
            if self.train_dataset is None:
                return None
            return LengthGroupedSampler(self.args.train_batch_size, lengths=lengths)

    return KimiTuiBatchedTrainer


# ---------------------------------------------------------------------------
# Proof on the user's own model: batched == the official single-sample forwards
# ---------------------------------------------------------------------------


def check_equivalence(model, dataset, official_collate, official_loss, batch_size: int) -> dict:
    """Loss and gradients of one batch against ``batch_size`` official micro-batch-1 forwards.

    Also: each sample's loss inside the batch (next to longer samples, so padded) against
    its loss alone. Dropout is off (eval mode) so both paths see the same function.
    """
    import torch

    model.eval()
    lm = unwrap(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    order = sorted(range(len(dataset)), key=lambda i: -dataset.lengths[i])
    # the longest sample first, then the shortest ones: the most padding a batch can have
    picked = ([order[0]] + order[::-1][: batch_size - 1]) if len(order) >= batch_size else order
    items = [dataset[i] for i in picked]

    def grads():
        out = {n: (p.grad.detach().float().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32))
               for n, p in params}
        model.zero_grad(set_to_none=True)
        return out

    device = lm.model.embed_tokens.weight.device

    def moved(value):  # what the Trainer's _prepare_inputs does for the official batch
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, (list, tuple)):
            return type(value)(moved(v) for v in value)
        return value

    model.zero_grad(set_to_none=True)
    solo_losses, official_grads = [], None
    for item in items:
        single = official_collate([{k: v for k, v in item.items() if k != "audio_key"}])
        single = {k: moved(v) for k, v in single.items()}
        loss = official_loss(model(**{k: v for k, v in single.items() if k != "labels"}), single["labels"])
        loss.backward()
        solo_losses.append(float(loss.detach()))
        g = grads()
        official_grads = g if official_grads is None else {n: official_grads[n] + g[n] for n in g}
    features = install(model, cache_whisper=whisper_is_frozen(lm))
    batch = {k: moved(v) for k, v in collate(items).items()}
    labels = batch.pop("labels")
    losses = per_sample_losses(model(**batch), labels)
    losses.sum().backward()
    batched_grads = grads()
    alone = []
    for item in items:
        one = {k: moved(v) for k, v in collate([item]).items()}
        one_labels = one.pop("labels")
        alone.append(float(per_sample_losses(model(**one), one_labels).detach()[0]))
    num = sum(float((batched_grads[n] - official_grads[n]).pow(2).sum()) for n, _ in params)
    den = sum(float(official_grads[n].pow(2).sum()) for n, _ in params)
    batched = [float(v) for v in losses.detach()]
    return {
        "samples": len(items),
        "lengths": [int(it["input_ids"].shape[-1]) for it in items],
        "official_losses": solo_losses,
        "batched_losses": batched,
        "alone_in_batch_losses": alone,
        "loss_sum_official": sum(solo_losses),
        "loss_sum_batched": sum(batched),
        "max_loss_difference": max(abs(a - b) for a, b in zip(solo_losses, batched)),
        "max_padding_difference": max(abs(a - b) for a, b in zip(alone, batched)),
        "gradient_relative_error": math.sqrt(num / den) if den > 0 else 0.0,
        "gradient_norm": math.sqrt(den),
        "trainable_tensors": len(params),
        "whisper_cached": features.cache,
        "whisper_passes": features.computed,
    }
