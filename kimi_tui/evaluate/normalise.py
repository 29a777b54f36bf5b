"""One normaliser, applied identically to reference and hypothesis, named and versioned.

Punctuation left in model output, special tokens, full-width forms and spaces
move a Chinese CER by several points; a number is only comparable with another
produced by the same normalisation, so every report states this one's name and
version.
"""

from __future__ import annotations

import re
import sys
import unicodedata

NORMALISER_NAME = "zh-basic"
NORMALISER_VERSION = 1

SPECIAL_TOKEN = re.compile(r"<\|[^|>]*\|>")
TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9_-]*>|\[[A-Z_]+\]")

# Delete every punctuation mark, symbol and separator except '%', which carries meaning with numbers.
_DELETE = {
    cp: None
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp))[0] in "PSZ" and chr(cp) != "%"
}
_DELETE.update({ord(c): None for c in "\t\n\r\x0b\x0c"})


def normalise(text: str) -> str:
    """Strip <|...|> tokens and tags -> NFKC (full width to half) -> casefold -> drop punctuation, symbols, spaces."""
    if not text:
        return ""
    text = SPECIAL_TOKEN.sub("", text)
    text = TAG.sub("", text)
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.translate(_DELETE)
