"""Farol data preparation: raw Q&A and biographies in, clean train/valid/test JSONL out."""

from farol_data.prepare import PrepareResult, prepare, texts

__all__ = ["PrepareResult", "prepare", "texts"]
