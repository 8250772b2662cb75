"""The model a benchmark run measures: a shape built in memory, or a model folder."""

from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
from farol_core.device import backend
from farol_core.errors import FarolError
from farol_core.model import check_model_dir, load_model, model_facts
from farol_core.shapes import MISTRAL_7B, MISTRAL_7B_VOCAB, build_quantized, parameter_bytes

from farol_bench.bandwidth import weight_bytes_per_token

SHAPES = ("tiny", "mistral-7b")


def check_choice(shape: str, model: str | None) -> None:
    """Raise FarolError for an unknown shape or a --model that is not a model folder."""
    if shape not in SHAPES:
        raise FarolError(f"unknown shape {shape!r}", hint=f"use one of {', '.join(SHAPES)}")
    if model is not None:
        check_model_dir(model)


@dataclass
class BenchModel:
    """A loaded model and what the results file says about it."""

    model: object
    vocab_size: int
    facts: dict


def from_folder(path: str | Path, name: str | None = None) -> BenchModel:
    """A model folder in MLX layout (the tiny 4-bit model, or --model PATH)."""
    model, _ = load_model(path)
    info = model_facts(path)
    quant = info["quantization"] or {}
    return BenchModel(model, info["vocab_size"], _facts(
        model, name or Path(path).name, str(path), quant.get("bits"), quant.get("group_size")))


def mistral_7b(bits: int = 4, group_size: int = 64) -> BenchModel:
    """The Mistral-7B-v0.1 architecture with random weights, quantized in memory.

    Scales and norms are float16, as in a converted checkpoint, except on the CPU backend:
    MLX's CPU float16 kernels are emulated (a 4-bit matrix-vector product ran 25x slower than
    in float32 here), so there they are float32 (5 bits per weight instead of 4.5).
    """
    dtype = mx.float32 if backend() == "cpu" else mx.float16
    model = build_quantized(MISTRAL_7B, MISTRAL_7B_VOCAB, bits, group_size, dtype)
    name = f"mistral-7b-shape-{bits}bit-g{group_size}"
    facts = _facts(model, name, None, bits, group_size)
    return BenchModel(model, MISTRAL_7B_VOCAB, {**facts, "dtype": str(dtype).split(".")[-1]})


def _facts(model, name: str, path: str | None, bits, group_size) -> dict:
    return {"name": name, "path": path, "parameter_bytes": parameter_bytes(model),
            "weight_bytes_per_token": weight_bytes_per_token(model), "bits": bits,
            "group_size": group_size}
