"""Farol evaluation: loss, perplexity and generated answers, base against tuned."""

from farol_eval.evaluate import evaluate

__all__ = ["evaluate"]
