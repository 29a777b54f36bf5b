"""Scoring transcripts the way Chinese ASR engineers compare them.

Pure Python + rapidfuzz + numpy, so the CLI, the TUI and workers share one
scorer and its numbers.
"""

from kimi_tui.evaluate.metrics import UtteranceScore, score_pairs, score_utterance, summarise
from kimi_tui.evaluate.normalise import NORMALISER_NAME, NORMALISER_VERSION, normalise

__all__ = [
    "NORMALISER_NAME",
    "NORMALISER_VERSION",
    "normalise",
    "UtteranceScore",
    "score_pairs",
    "score_utterance",
    "summarise",
]
