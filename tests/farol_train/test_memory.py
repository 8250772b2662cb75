"""The memory model against real peaks (CPU, measured here) and the H100 reference figures."""

import pytest
from farol_train.calibrate import MISTRAL_7B
from farol_train.memory import Shape, estimate, measure_peak, read_shape, weight_bytes

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
