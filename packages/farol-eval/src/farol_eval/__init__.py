"""Farol evaluation: loss, perplexity and answer metrics, base against tuned, with charts and
a live training monitor."""

# Before any of this package's modules import mlx: farol_core loads a system BLAS (blas.py).
import farol_core  # noqa: F401

from farol_eval.evaluate import evaluate
from farol_eval.metrics import exact_match, normalize, rouge_l, token_f1

__all__ = ["evaluate", "exact_match", "normalize", "rouge_l", "token_f1"]
