"""The test bed's text tokenizer for a random-initialised Kimi-Audio-7B folder (written for kimi-tui's GPU test bed).

Kimi-Audio's own ``tokenization_kimia.py`` lives only on the Hugging Face hub, so the test bed writes
this module into the base model folder instead (build_checkpoint.py copies it there with a generated
``tiktoken.model``). It is loaded the way the official code loads the real one,
``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)``, and gives the official code
what it uses of a tokenizer:

* ``encode(text, bos=False, eos=False)`` -> token ids (finetune_codes/datasets.py, prompt_manager.py);
* ``decode(ids)`` -> text (kimia.py ``detokenize_text``);
* ``special_tokens`` (name -> id) and ``pad_id`` (kimia_infer/utils/special_tokens.py
  ``instantiate_extra_tokens``).

The special-token layout is the published one, so the ids agree with the model config
(``kimia_media_begin`` 151661, ``kimia_media_end`` 151663) and with ``kimia_token_offset``
152064: the special tokens follow the BPE ranks of ``tiktoken.model`` (151,643 in Kimi-Audio's),
421 of them, the named ones at these positions and ``<|reserved_token_N|>`` everywhere else,
the last one the padding token. The BPE ranks themselves are the test bed's own (single bytes,
CJK characters and punctuation as single tokens, unreachable fillers up to 151,643): the text ids
differ from the real tokenizer's, which does not matter for a randomly initialised model.
"""

from __future__ import annotations

import base64
import os
import shutil
from typing import Iterable

import tiktoken
from transformers import PreTrainedTokenizer

VOCAB_FILES_NAMES = {"vocab_file": "tiktoken.model"}

#: Position (after the BPE ranks) of each named special token.
NAMED_SPECIALS = {
    0: "[BOS]",
    1: "[EOS]",
    2: "<|im_msg_end|>",
    3: "<|im_user_msg_start|>",
    4: "<|im_assistant_msg_start|>",
    9: "[EOT]",
    18: "<|im_media_begin|>",
    20: "<|im_media_end|>",
    23: "<|im_kimia_text_blank|>",
    24: "<|im_kimia_text_eos|>",
    27: "<|im_kimia_user_msg_start|>",
    28: "<|im_kimia_assistant_msg_start|>",
    32: "<|im_kimia_speech_ct_id|>",
    33: "<|im_kimia_speech_ctd_id|>",
}
#: Special tokens in all: 293 + 128, so that 151,643 ranks + 421 = 152,064 = kimia_token_offset.
NUM_SPECIALS = 421
#: Pre-tokenisation: every CJK character on its own, then GPT-style words, numbers, punctuation, spaces.
PAT_STR = (r"\p{Han}|[^\r\n\p{L}\p{N}\p{Han}]?[\p{L}--\p{Han}]+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def special_token_names() -> list[str]:
    names, reserved = [], 0
    for position in range(NUM_SPECIALS):
        if position in NAMED_SPECIALS:
            names.append(NAMED_SPECIALS[position])
        else:
            names.append(f"<|reserved_token_{reserved}|>")
            reserved += 1
    return names


def load_ranks(path: str) -> dict[bytes, int]:
    """tiktoken.model ("base64-token rank" per line), read directly: tiktoken's own load_tiktoken_bpe caches
    even a local file under $TMPDIR/data-gym-cache by its path, so a folder rebuilt at the same path
    (an export, a rebuilt checkpoint) would silently get the old ranks back."""
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _piece(data: bytes) -> str:
    """A BPE rank as a vocabulary string: one character per byte (latin-1), so it converts back exactly."""
    return data.decode("latin-1")


class KimiaTestbedTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, bos_token="[BOS]", eos_token="[EOS]", unk_token=None, pad_token=None,
                 **kwargs):
        self.vocab_file = vocab_file
        ranks = load_ranks(vocab_file)
        self.num_base_tokens = len(ranks)
        names = special_token_names()
        self.special_tokens = {name: self.num_base_tokens + i for i, name in enumerate(names)}
        self.model = tiktoken.Encoding(name=os.path.basename(vocab_file), pat_str=PAT_STR,
                                       mergeable_ranks=ranks, special_tokens=self.special_tokens)
        self.n_words = self.model.n_vocab
        self._id_to_piece = {rank: _piece(data) for data, rank in ranks.items()}
        self._id_to_piece.update({i: name for name, i in self.special_tokens.items()})
        self._piece_to_id = {piece: i for i, piece in self._id_to_piece.items()}
        self.bos_id = self.special_tokens["[BOS]"]
        self.eos_id = self.special_tokens["[EOS]"]
        self.pad_id = self.special_tokens[names[-1]]
        self.unk_id = self.special_tokens[names[-2]]
        super().__init__(bos_token=bos_token, eos_token=eos_token, unk_token=unk_token or names[-2],
                         pad_token=pad_token or names[-1], **kwargs)

    # -- what the official code calls ------------------------------------------------------------

    def encode(self, text: str, bos: bool = False, eos: bool = False, **kwargs) -> list[int]:  # type: ignore[override]
        """Plain text to ids; text that looks like a special token is encoded as text, never as the token."""
        ids = self.model.encode(text, allowed_special=set(), disallowed_special=())
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:  # type: ignore[override]
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        specials = set(self.special_tokens.values())
        ids = [int(i) for i in token_ids if 0 <= int(i) < self.n_words
               and not (skip_special_tokens and int(i) in specials)]  # audio ids (>= offset) are not text
        return self.model.decode(ids)

    # -- what PreTrainedTokenizer needs ------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.n_words

    def get_vocab(self) -> dict[str, int]:
        return dict(self._piece_to_id)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return [self._id_to_piece[i] for i in self.encode(text)]

    def _convert_token_to_id(self, token: str) -> int:
        return self._piece_to_id.get(token, self.unk_id)

    def _convert_id_to_token(self, index: int) -> str:
        return self._id_to_piece.get(int(index), self._id_to_piece[self.unk_id])

    def convert_tokens_to_string(self, tokens: Iterable[str]) -> str:
        out, data = [], bytearray()
        for token in tokens:
            if token in self.special_tokens:
                out.append(data.decode("utf-8", errors="replace"))
                data = bytearray()
                out.append(token)
            else:
                data += token.encode("latin-1")
        out.append(data.decode("utf-8", errors="replace"))
        return "".join(out)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        target = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "tiktoken.model")
        if os.path.abspath(self.vocab_file) != os.path.abspath(target):
            shutil.copyfile(self.vocab_file, target)
        return (target,)
