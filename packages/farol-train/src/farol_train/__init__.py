"""Farol training: quantize with mlx-lm and train QLoRA adapters."""

# Before any of this package's modules import mlx: farol_core loads a system BLAS (blas.py).
import farol_core  # noqa: F401

from farol_train.loop import TrainResult, train
from farol_train.quantize import quantize

__all__ = ["TrainResult", "quantize", "train"]
