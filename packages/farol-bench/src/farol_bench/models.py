"""The model a benchmark run measures: a shape built in memory, or a model folder."""

from dataclasses import dataclass
from pathlib import Path

from farol_core.model import load_model, model_facts
from farol_core.shapes import MISTRAL_7B, MISTRAL_7B_VOCAB, build_quantized, parameter_bytes

from farol_bench.bandwidth import weight_bytes_per_token

SHAPES = ("tiny", "mistral-7b")


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
    """The Mistral-7B-v0.1 architecture with random weights, quantized in memory."""
    model = build_quantized(MISTRAL_7B, MISTRAL_7B_VOCAB, bits, group_size)
    name = f"mistral-7b-shape-{bits}bit-g{group_size}"
    return BenchModel(model, MISTRAL_7B_VOCAB, _facts(model, name, None, bits, group_size))


def _facts(model, name: str, path: str | None, bits, group_size) -> dict:
    return {"name": name, "path": path, "parameter_bytes": parameter_bytes(model),
            "weight_bytes_per_token": weight_bytes_per_token(model), "bits": bits,
            "group_size": group_size}
