"""Model shapes for benchmarks: the real Mistral-7B-v0.1 architecture with random weights.

Throughput does not depend on weight values, so a random model of the right shape and
quantization measures what the real one would, with nothing downloaded. The model is built
lazily and quantized one layer at a time, so the 28 GB of float32 weights never exist at once.
"""

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.models import llama

from farol_core.tiny import model_config

MISTRAL_7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
}
MISTRAL_7B_VOCAB = 32000


def build_quantized(shape: dict, vocab_size: int, bits: int = 4, group_size: int = 64,
                    dtype=mx.float16, seed: int = 0) -> nn.Module:
    """A random-weight Mistral-architecture model of `shape`, quantized in memory.

    Scales and biases are kept in `dtype` (float16, as in a converted checkpoint), so a
    4-bit, group-64 model holds 4.5 bits per weight, like `mlx_lm.convert` output.
    """
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(model_config(vocab_size, shape)))
    nn.quantize(model, group_size=group_size, bits=bits)
    model.set_dtype(dtype)  # casts scales, biases and norms; all still lazy until mx.eval
    for layer in model.model.layers:
        mx.eval(layer.parameters())
    mx.eval(model.parameters())
    return model


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by all of the model's parameters (quantized weights, scales and biases)."""
    return sum(v.nbytes for _, v in tree_flatten(model.parameters()))
