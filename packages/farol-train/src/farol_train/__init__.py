"""Farol training: quantize with mlx-lm and train QLoRA adapters."""

from farol_train.loop import TrainResult, train
from farol_train.quantize import quantize

__all__ = ["TrainResult", "quantize", "train"]
