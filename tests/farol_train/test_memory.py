"""The memory model against real peaks: CPU measured here, CUDA's 7B peaks recorded with their
source, held-out predictions and the safety margin."""

import pytest
from farol_train import calibrate
from farol_train.calibrate import MISTRAL_7B
from farol_train.memory import (
    Shape,
    estimate,
    load_calibration,
    margin,
    measure_peak,
    planned_peak,
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


def _cuda_points() -> list:
    return calibrate.recorded_points(calibrate.default_file(), "cuda")


def test_the_cuda_points_are_the_measured_7b_peaks_each_with_its_source():
    points = _cuda_points()
    assert abs(weight_bytes(MISTRAL_7B) / 1e9 - 4.07) < 0.01
    assert all(p.shape == MISTRAL_7B for p in points)
    assert sum(p.source.startswith("H100 reference figures") for p in points) == 7
    assert sum("NVIDIA H200" in p.source for p in points) == 7
    assert load_calibration("cuda")["status"] == "measured"


def test_cuda_coefficients_fitted_without_four_h200_points_predict_them():
    """Held out: fit on the H100 figures and three H200 points, predict the other four."""
    points = _cuda_points()
    held = [p for p in points if "H200" in p.source][:4]
    fitted = calibrate.fit([p for p in points if p not in held], load_calibration("cuda"))
    predicted = calibrate.errors(held, fitted)
    assert max(abs(e) for e in predicted) < 0.2, predicted
    assert min(predicted) * (1 + margin("cuda")) + margin("cuda") >= -0.05, predicted


@pytest.mark.parametrize("backend_name", ["cpu", "cuda"])
def test_no_measured_point_is_underestimated_by_more_than_5_percent_after_the_margin(
        backend_name):
    points = calibrate.recorded_points(calibrate.default_file(), backend_name)
    for p in points:
        planned = planned_peak(p.shape, p.lora, p.training, backend_name)
        assert planned >= 0.95 * p.measured, (p.label(), planned, p.measured)
    # The margin also covers each point predicted by a fit that never saw it.
    left_out = calibrate.leave_one_out(points, load_calibration(backend_name))
    assert all((1 + e) * (1 + margin(backend_name)) >= 0.95 for e in left_out), left_out


def test_the_margin_is_the_smallest_whole_percent_that_keeps_underestimates_within_5():
    assert calibrate.safety_margin([0.1, -0.02]) == 0.0
    assert calibrate.safety_margin([0.0, -0.122], [0.01]) == 0.09  # 0.878 * 1.09 >= 0.95
    assert calibrate.safety_margin([-0.2]) == 0.19  # 0.8 * 1.19 = 0.952


def test_metal_borrows_the_cuda_fit_without_the_cuda_only_jump():
    metal, cuda = load_calibration("metal"), load_calibration("cuda")
    assert metal["status"] == "borrowed" and metal["borrowed_from"] == "cuda"
    assert "large_step_bytes_per_token" not in metal and metal["margin"] == cuda["margin"]


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
