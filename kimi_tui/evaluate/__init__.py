"""Scoring transcripts the way Chinese ASR engineers compare them.

Pure Python + rapidfuzz, so the CLI, the TUI and workers share one scorer.
"""

from kimi_tui.evaluate.normalise import NORMALISER_NAME, NORMALISER_VERSION, normalise
from kimi_tui.evaluate.metrics import UtteranceScore, score_corpus, score_utterance

__all__ = [
    "NORMALISER_NAME",
    "NORMALISER_VERSION",
    "normalise",
    "UtteranceScore",
    "score_corpus",
    "score_utterance",
]
