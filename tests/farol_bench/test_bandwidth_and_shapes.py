"""The decode bound's inputs, and the in-memory quantized shape builder at a scaled-down size."""

import gc

import mlx.core as mx
import mlx.nn as nn
import pytest
from farol_bench.bandwidth import decode_bound, known_bandwidth, weight_bytes_per_token
from farol_core.shapes import MISTRAL_7B, build_quantized, parameter_bytes

SMALL = {"hidden_size": 128, "num_hidden_layers": 2, "intermediate_size": 256,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32}
VOCAB = 256
BYTES_PER_4BIT_WEIGHT = 4.5 / 8  # 4 bits plus a float16 scale and bias per 64 weights


def test_known_bandwidths_match_whole_names_only():
    assert known_bandwidth("Apple M1") == 68.25e9
    assert known_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
    assert known_bandwidth("Apple M3 Max") is None  # 300 or 400 GB/s, depending on the part
    assert known_bandwidth("AMD EPYC") is None
    assert decode_bound(4_070_000_000, 68.25e9) == pytest.approx(68.25e9 / 4.07e9)  # 16.77
    assert decode_bound(100, None) is None


def test_the_scaled_down_shape_is_quantized_4bit_group64_with_float16_scales():
    model = build_quantized(SMALL, VOCAB)
    linears = [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert len(linears) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the lm_head
    assert all((m.bits, m.group_size) == (4, 64) for m in linears)
    assert all(m.scales.dtype == mx.float16 for m in linears)
    logits = model(mx.array([[3, 4, 5]]))
    assert logits.shape == (1, 3, VOCAB) and mx.isfinite(logits).all().item()


def test_weight_bytes_per_token_reads_every_weight_but_one_embedding_row():
    model = build_quantized(SMALL, VOCAB)
    h, i, kv = 128, 256, 2 * 32
    per_layer = h * h * 2 + h * kv * 2 + 3 * h * i
    norms = (2 * SMALL["num_hidden_layers"] + 1) * h * 2  # float16
    expected = (SMALL["num_hidden_layers"] * per_layer + VOCAB * h + h) * BYTES_PER_4BIT_WEIGHT
    assert weight_bytes_per_token(model) == int(expected) + norms
    assert parameter_bytes(model) == weight_bytes_per_token(model) + (VOCAB - 1) * h * 4.5 / 8


def test_the_mistral_7b_shape_is_mistral_7b_v01():
    assert MISTRAL_7B == {"hidden_size": 4096, "num_hidden_layers": 32,
                          "intermediate_size": 14336, "num_attention_heads": 32,
                          "num_key_value_heads": 8, "head_dim": 128}


def test_the_builder_never_holds_the_whole_float32_model():
    shape = {"hidden_size": 512, "num_hidden_layers": 8, "intermediate_size": 1024,
             "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64}
    weights = 8 * (512 * 512 * 2 + 512 * 128 * 2 + 3 * 512 * 1024) + 2 * 1024 * 512
    # MLX's peak counts every live array in the process, so arrays that earlier tests left
    # alive (a session fixture's model, uncollected garbage) are measured and taken off.
    gc.collect()
    held = mx.get_active_memory()
    mx.reset_peak_memory()
    model = build_quantized(shape, 1024)
    grew = mx.get_peak_memory() - held
    assert grew < 0.4 * weights * 4  # float32 would need all of it at once
    assert parameter_bytes(model) < 0.16 * weights * 4
