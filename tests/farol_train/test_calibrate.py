"""Calibrating the memory model: the fit, the shipped file, and the command."""

import json
import shutil

import pytest
from click.testing import CliRunner
from farol_core.device import backend
from farol_train import calibrate
from farol_train.cli import main
from farol_train.memory import load_calibration

KNOWN = {"hidden": 10.0, "intermediate": 7.0, "attention": 0.6, "logits": 5.0,
         "overhead_bytes": 1e6, "checkpointed_block": 1.25}


def test_fit_recovers_the_coefficients_that_made_the_points():
    truth = {**load_calibration("cpu"), **KNOWN}
    points = calibrate.grid("tiny")
    for p in points:
        p.measured = calibrate._total(p, truth)
    fitted = calibrate.fit(points, load_calibration("cpu"))
    for key, value in KNOWN.items():
        assert fitted[key] == pytest.approx(value, rel=1e-3), key
    assert max(abs(e) for e in calibrate.errors(points, fitted)) < 1e-4


def _synthetic(grid: str, truth: dict) -> list:
    points = calibrate.grid(grid)
    for p in points:
        p.measured = calibrate._total(p, truth)
    return points


def _seven_b_truth() -> dict:
    base = load_calibration("cuda")
    return {**base, "hidden": base["hidden"] * 1.1, "intermediate": base["intermediate"] * 1.1,
            "attention": 0.6, "attention_transient": 2.0, "logits": 9.0,
            "overhead_bytes": 5 * 10**8, "checkpointed_block": 1.5}


def test_a_one_shape_grid_fits_the_width_terms_together_in_the_base_proportion():
    truth = _seven_b_truth()
    fitted = calibrate.fit(_synthetic("mistral-7b-16gb", truth), load_calibration("cuda"))
    for key in calibrate.FITTED:
        assert fitted[key] == pytest.approx(truth[key], rel=1e-3), key


def test_the_fourteen_7b_settings_pin_down_every_term_they_exercise():
    # The H100 settings and the 16 GB grid together: the settings of the shipped cuda points.
    truth = {**_seven_b_truth(), "large_step_bytes_per_token": 1.2e7, "row_bytes": 3e8}
    both = _synthetic("mistral-7b", truth) + _synthetic("mistral-7b-16gb", truth)
    fitted = calibrate.fit(both, load_calibration("cuda"))
    assert max(abs(e) for e in calibrate.errors(both, fitted)) < 1e-3


@pytest.mark.parametrize(("backend_name", "grid", "bound"), [("cpu", "tiny", 0.15),
                                                          ("cuda", "mistral-7b", 0.15)])
def test_a_shipped_calibration_is_the_fit_of_the_points_it_records(backend_name, grid, bound):
    shipped = load_calibration(backend_name)
    points = calibrate.recorded_points(calibrate.default_file(), backend_name)
    assert len(points) == len(calibrate.GRIDS[grid]) * (2 if backend_name == "cuda" else 1)
    refit = calibrate.fit(points, shipped)
    squared = [sum(e * e for e in calibrate.errors(points, c)) for c in (shipped, refit)]
    assert squared[0] <= squared[1] * 1.05 + 1e-6  # as good as a refit (near-ties may differ)
    assert all(shipped[k] >= 0 for k in calibrate.FITTED)
    assert max(abs(e) for e in calibrate.errors(points, shipped)) < bound


def test_the_command_refits_recorded_points_and_keeps_the_other_backends(tmp_path):
    out = tmp_path / "calibration.json"
    shutil.copy(calibrate.default_file(), out)
    before = json.loads(out.read_text())
    result = CliRunner().invoke(main, ["calibrate", "--from", str(calibrate.default_file()),
                                       "--backend", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "largest error" in result.output
    assert "left out" in result.output and "safety margin" in result.output
    assert f"saved the cpu calibration, margin {before['cpu']['margin']:.0%}, to {out}" \
        in result.output
    after = json.loads(out.read_text())
    assert after.keys() == before.keys()
    assert all(after[k] == before[k] for k in after if k != "cpu")
    assert after["cpu"]["points"] == before["cpu"]["points"]
    assert after["cpu"]["source"].startswith("fitted by farol_train.calibrate")
    assert after["cpu"]["measured_on"] == before["cpu"]["measured_on"]  # not this machine
    assert after["cpu"]["status"] == "measured"
    cuda = CliRunner().invoke(main, ["calibrate", "--from", str(calibrate.default_file()),
                                     "--backend", "cuda", "--out", str(out)])
    assert cuda.exit_code == 0, cuda.output
    assert json.loads(out.read_text())["cuda"] == before["cuda"]  # the shipped file is this refit


def test_the_grid_suggested_for_calibration_fits_the_machine():
    assert calibrate.suggested_grid(16 * 2**30) == "mistral-7b-16gb"  # the user's M1
    assert calibrate.suggested_grid(80e9) == "mistral-7b"
    assert calibrate.suggested_grid(8 * 2**30) == "tiny"


def test_the_command_will_not_measure_another_backend_than_this_machines():
    other = "metal" if backend() != "metal" else "cpu"
    result = CliRunner().invoke(main, ["calibrate", "--backend", other])
    assert result.exit_code == 1
    assert f"cannot measure {other}" in result.output


def test_too_few_points_is_a_clear_error():
    points = calibrate.grid("tiny")[:3]
    for p in points:
        p.measured = 10**7
    with pytest.raises(calibrate.FarolError, match=r"at least \d+ measured points"):
        calibrate.fit(points, load_calibration("cpu"))


def test_a_grid_can_be_measured_in_another_dtype():
    assert {p.shape.dtype_bytes for p in calibrate.grid("tiny")} == {4}
    assert {p.shape.dtype_bytes for p in calibrate.grid("tiny", "float16")} == {2}
    assert {p.shape.dtype_bytes for p in calibrate.grid("mistral-7b", "float32")} == {4}
    assert calibrate.GRIDS["tiny"][0].shape.dtype_bytes == 4  # the shipped grid is untouched
    with pytest.raises(calibrate.FarolError, match="cannot measure in 'bfloat16'"):
        calibrate.grid("tiny", "bfloat16")


def test_a_stopped_grid_resumes_from_the_points_it_kept(tmp_path):
    kept = tmp_path / "runs" / "calibrate" / "cpu-tiny-own.json"
    seen = []

    def stop_after_first(point, was_kept):
        seen.append((point.measured, was_kept))
        raise KeyboardInterrupt  # what Ctrl+C does once the first point is in

    with pytest.raises(KeyboardInterrupt):
        calibrate.measure(calibrate.grid("tiny")[:2], stop_after_first, kept, "cpu")
    first = seen[0][0]
    assert [p.measured for p in calibrate.recorded_points(kept, "cpu")] == [first]
    log = []
    points = calibrate.measure(calibrate.grid("tiny")[:2], lambda p, k: log.append(k), kept,
                               "cpu")
    assert log == [True, False]  # the first is kept, only the second is measured
    assert points[0].measured == first and points[1].measured > 0
    assert [p.measured for p in calibrate.recorded_points(kept, "cpu")] == \
        [p.measured for p in points]


def test_points_kept_under_another_mlx_or_device_are_measured_again(tmp_path):
    kept = tmp_path / "kept.json"
    points = _synthetic("tiny", {**load_calibration("cpu"), **KNOWN})
    calibrate._keep_points(kept, "cpu", points)
    assert len(calibrate._kept_points(kept, "cpu")) == len(points)
    assert calibrate._kept_points(kept, "metal") == {}
    table = json.loads(kept.read_text())
    table["cpu"]["measured_on"] = "mlx 0.31.2 on AMD EPYC (Linux)"
    kept.write_text(json.dumps(table))
    assert calibrate._kept_points(kept, "cpu") == {}
    assert calibrate.progress_file("runs", "cuda", "mistral-7b").name == "cuda-mistral-7b-own.json"


def test_fresh_drops_the_kept_points(tmp_path):
    kept = tmp_path / "kept.json"
    calibrate._keep_points(kept, "cpu", _synthetic("tiny", {**load_calibration("cpu"), **KNOWN}))
    calibrate.calibrate("tiny", "cpu", log=lambda line: None, recorded=calibrate.default_file(),
                        progress=kept, fresh=True)
    assert not kept.exists()
