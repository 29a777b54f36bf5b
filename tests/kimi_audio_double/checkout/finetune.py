"""finetune.py double: only the documented loss (text CE + audio CE over their masks, micro batch 1)."""
import torch


def compute_loss(outputs, labels, num_items_in_batch=None):
    audio_logits, text_logits = outputs.logits
    audio_labels, text_labels, audio_loss_mask, text_loss_mask = labels
    assert audio_labels.shape[0] == 1, "we only support micro batch size 1"
    ce = torch.nn.functional.cross_entropy
    audio_loss = ce(audio_logits.view(-1, audio_logits.shape[-1]).float(), audio_labels.view(-1), reduction="none")
    text_loss = ce(text_logits.view(-1, text_logits.shape[-1]).float(), text_labels.view(-1), reduction="none")
    audio_loss = (audio_loss * audio_loss_mask.view(-1)).sum() / (audio_loss_mask.view(-1).sum() + 1e-4)
    text_loss = (text_loss * text_loss_mask.view(-1)).sum() / (text_loss_mask.view(-1).sum() + 1e-4)
    return audio_loss + text_loss
