"""benchmarks/gpu/run-7b.sh, dry run on the tiny shape: every step runs and its outputs fit the 8
files a GPU lease brings back (one combined log and one results JSON per step)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from farol_core.device import backend
from farol_train import calibrate
from farol_train.memory import load_calibration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_script_dry_run_brings_back_every_step_in_8_files(tmp_path):
    keep, out = tmp_path / "keep", tmp_path / "out"
    keep.mkdir()
    # The calibrate step resumes from kept points (as on a warm GPU machine after a time limit),
    # so the dry run refits without measuring 20 points; the warmup step measures one for real.
    points = calibrate.grid("tiny")
    for p in points:
        p.measured = calibrate._total(p, load_calibration("cpu"))
    calibrate._keep_points(keep / "points-tiny.json", backend(), points)
    env = {**os.environ, "GRID": "tiny", "SHAPE": "tiny", "OUT": str(out), "KEEP": str(keep),
           "ITERS": "2", "PYTHON": sys.executable,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "BENCH_ARGS": "--bench-rounds 1 --bench-warmup 0 --prompt-lengths 64 "
                         "--decode-tokens 8 --decode-context 32",
           "FAROL_BENCH_BRIDGE_TOKENS": "16"}  # per request of the 8 (a real run: 128)
    res = subprocess.run(["bash", "benchmarks/gpu/run-7b.sh"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    log = (out / "run.log").read_text()
    assert res.returncode == 0, log[-3000:]
    files = sorted(f.name for f in out.iterdir())
    assert files == ["bench.json", "bridge.json", "calibrate.json", "run.log", "train.json",
                     "warmup.json"]
    assert log.index("== warmup") < log.index("== calibrate")  # kernels warm before measuring
    assert json.loads((out / "warmup.json").read_text())["peak_bytes"] > 0
    train = json.loads((out / "train.json").read_text())
    assert train["farol"]["tokens_per_s"] > 0 and train["mlx_lm"]["peak_memory_gb"] > 0
    assert (train["farol"]["batch_size"], train["farol"]["max_seq_length"]) == (4, 512)
    assert len(calibrate.recorded_points(out / "calibrate.json", backend())) == 20
