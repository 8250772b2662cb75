"""Farol data preparation: raw Q&A and biographies in, clean train/valid/test JSONL out."""

# Before any of this package's modules import mlx: farol_core loads a system BLAS (blas.py).
import farol_core  # noqa: F401

from farol_data.prepare import PrepareResult, prepare, texts

__all__ = ["PrepareResult", "prepare", "texts"]
