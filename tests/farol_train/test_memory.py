"""The memory model against real peaks (CPU, measured here) and the H100 reference figures."""

import pytest
from farol_train.calibrate import MISTRAL_7B
from farol_train.memory import (
    Shape,
    estimate,
    measure_peak,
    read_shape,
    shape_from_config,
    weight_bytes,
)
from farol_train.preflight import ram_budget

# Tiny llama-shaped models of several sizes (float32, 4-bit group 64), one config each, each
# measured in its own process. They span the calibration grid; see docs/training.md.
CPU_POINTS = [
    (Shape(128, 4, 256, 4, 2, 32, 1024, 4, 4, 64), 2, 2, 64, False),
    (Shape(256, 4, 512, 4, 2, 64, 2048, 4, 4, 64), 2, 2, 96, False),
    (Shape(256, 4, 896, 4, 2, 64, 1536, 4, 4, 64), 3, 1, 192, True),
    (Shape(384, 3, 640, 6, 2, 64, 1024, 4, 4, 64), 3, 2, 64, False),
]


@pytest.mark.parametrize(("shape", "layers", "batch", "seq", "checkpoint"), CPU_POINTS,
                         ids=[f"h{p[0].hidden}-b{p[2]}x{p[3]}-gc{int(p[4])}" for p in CPU_POINTS])
def test_estimate_within_15_percent_of_the_measured_cpu_peak(shape, layers, batch, seq,
                                                             checkpoint):
    lora = {"num_layers": layers, "rank": 8}
    training = {"batch_size": batch, "max_seq_length": seq, "grad_checkpoint": checkpoint}
    measured = measure_peak(shape, lora, training)
    estimated = estimate(shape, lora, training, "cpu")["total"]
    assert abs(estimated - measured) / measured < 0.15, (estimated, measured)


# Reference figures from shared/gpu/README.md (H100, MLX 0.32.4 CUDA), not measured here.
H100_REFERENCE = [(16, 2, 512, False, 13.66), (16, 2, 512, True, 6.55), (8, 2, 512, False, 9.41),
                  (32, 1, 512, False, 13.09), (32, 2, 512, True, 6.92), (16, 4, 512, True, 21.5),
                  (16, 1, 2048, True, 21.5)]


def test_cuda_calibration_matches_the_h100_reference_figures():
    assert abs(weight_bytes(MISTRAL_7B) / 1e9 - 4.07) < 0.01
    for layers, batch, seq, checkpoint, gb in H100_REFERENCE:
        training = {"batch_size": batch, "max_seq_length": seq, "grad_checkpoint": checkpoint}
        total = estimate(MISTRAL_7B, {"num_layers": layers, "rank": 8}, training, "cuda")["total"]
        assert abs(total / 1e9 - gb) / gb < 0.15, (layers, batch, seq, checkpoint, total)


def test_shape_from_a_real_model_folder(tiny_4bit):
    shape = read_shape(tiny_4bit)
    assert (shape.hidden, shape.layers, shape.bits, shape.dtype_bytes) == (128, 4, 4, 4)
    on_disk = sum(p.stat().st_size for p in tiny_4bit.glob("*.safetensors"))
    assert abs(weight_bytes(shape) - on_disk) / on_disk < 0.05


def test_the_dtype_is_read_from_new_and_old_config_keys():
    # Newer Hugging Face configs write "dtype"; a float32 model read as 16-bit halves its estimate.
    base = {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128,
            "num_attention_heads": 2, "vocab_size": 32}
    for key in ("dtype", "torch_dtype"):
        assert shape_from_config({**base, key: "float32"}).dtype_bytes == 4
    assert shape_from_config(base).dtype_bytes == 2


def test_the_budget_on_a_mac_stops_at_metals_working_set():
    gb = 1 << 30
    # A 16 GB M1 with 14.6 GB free: 90% of RAM would be past the ~11.4 GB Metal recommends.
    m1 = {"max_recommended_working_set_size": int(11.4 * gb)}
    assert ram_budget(16 * gb, int(14.6 * gb), 0.9, m1) == int(11.4 * gb)
    assert ram_budget(16 * gb, int(14.6 * gb), 0.5, m1) == 8 * gb
    assert ram_budget(16 * gb, 4 * gb, 0.9, {}) == 4 * gb  # no Metal: RAM and what is free
