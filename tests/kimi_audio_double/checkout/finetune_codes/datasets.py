"""A toy dataset behind the documented name LazySupervisedDataset: the documented two-stream layout, micro batch 1, audio read at training time."""
import numpy as np
import soundfile
import torch
from torch.utils.data import Dataset

from kimia_infer.utils.special_tokens import instantiate_extra_tokens


def tokenize_conversation(conversation, tokenizer, extra, with_answer=True):
    audio, text, cont, loss, wav = [], [], [], [], None
    for message in conversation:
        has_loss = message["role"] == "assistant"
        start = extra.kimia_assistant_msg_start if has_loss else extra.kimia_user_msg_start
        if message["message_type"] == "text":
            if has_loss and not with_answer:
                continue
            ids = tokenizer.encode(message["content"], bos=False, eos=False)
            audio += [start] + [extra.kimia_text_blank] * (len(ids) + has_loss)
            text += [extra.kimia_text_blank] + ids + ([extra.kimia_text_eos] if has_loss else [])
            cont += [False] * (len(ids) + 1 + has_loss)
            loss += [False] + [has_loss] * (len(ids) + has_loss)
        elif message["message_type"] == "audio":
            tokens = message["audio_tokens"]
            audio += [extra.media_begin] + list(tokens) + [extra.media_end]
            text += [extra.kimia_text_blank] * (len(tokens) + 2)
            cont += [False] + [True] * len(tokens) + [False]
            loss += [False] * (len(tokens) + 2)
            data, rate = soundfile.read(message["content"], dtype="float32", always_2d=True)
            wav = data.mean(axis=1)
    return audio, text, cont, loss, wav


class ToyConversationDataset(Dataset):
    def __init__(self, raw_data_list, whisper_model, text_tokenizer, max_len: int, kimia_token_offset: int):
        super().__init__()
        self.raw_data = raw_data_list
        self.text_tokenizer = text_tokenizer
        self.extra_tokens = instantiate_extra_tokens(text_tokenizer)
        self.kimia_token_offset = kimia_token_offset

    def __len__(self):
        return len(self.raw_data)

    def __getitem__(self, i):
        audio, text, cont, loss, wav = tokenize_conversation(self.raw_data[i]["conversation"], self.text_tokenizer,
                                                             self.extra_tokens)
        t = lambda x, dtype=torch.long: torch.tensor([x], dtype=dtype)  # noqa: E731
        text_labels = text[1:] + [self.extra_tokens.kimia_text_blank]
        audio_labels = audio[1:] + [self.extra_tokens.kimia_text_blank]
        text_mask = loss[1:] + [False]
        return dict(
            input_ids=t(audio), text_input_ids=t(text), whisper_input_feature=[np.asarray(wav, dtype=np.float32)],
            is_continuous_mask=t(cont, torch.bool),
            labels=(t(audio_labels), t(text_labels), torch.zeros(1, len(audio)), t(text_mask, torch.float)),
        )

    @staticmethod
    def collate_fn(batch):
        assert len(batch) == 1, "we only support micro batch size 1"
        return batch[0]

# The documented name the engine's worker imports; the class above is a toy of our own.
LazySupervisedDataset = ToyConversationDataset
