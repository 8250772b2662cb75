"""The benchmark harness end to end: a real, timed run writes a schema-valid results file."""

import os
import subprocess
import sys
from pathlib import Path

from farol_bench import results

ROOT = Path(__file__).resolve().parents[2]


def test_a_timed_run_writes_every_figure_with_the_decode_bound(tmp_path, schema):
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_generation.py", "--benchmark-enable",
           "--bench-rounds", "2", "--prompt-lengths", "16,32", "--decode-tokens", "4",
           "--decode-context", "8", "--bandwidth", "68.25", "--bench-results", str(tmp_path),
           "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (path,) = results.find(tmp_path)
    doc = results.load(path, schema)
    figures = {b["name"]: b["figures"] for b in doc["benchmarks"]}
    assert set(figures) == {"test_prefill[16]", "test_prefill[32]", "test_decode"}
    decode = figures["test_decode"]
    assert {"seconds", "decode_tokens_per_s", "peak_memory_gb",
            "decode_fraction_of_bound"} <= set(decode)
    rate = decode["decode_tokens_per_s"]
    assert rate["rounds"] == 2 and 0 < rate["min"] <= rate["median"] <= rate["max"]
    bound = 68.25e9 / doc["model"]["weight_bytes_per_token"]
    fraction = decode["decode_fraction_of_bound"]["median"]
    assert abs(fraction - rate["median"] / bound) < 1e-9 * bound
    assert doc["device"]["bandwidth_bytes_per_s"] == 68.25e9
    assert doc["device"]["bandwidth_source"] == "--bandwidth"
    assert "of the bound" in proc.stdout and str(path) in proc.stdout


def test_counts_are_settings_and_rates_keep_their_spread(tmp_path, schema):
    # Counts judged as "lower is better" figures would call more questions a regression.
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_eval_generation.py",
           "--benchmark-enable", "--bench-results", str(tmp_path), "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (path,) = results.find(tmp_path)
    for bench in results.load(path, schema)["benchmarks"]:
        assert bench["settings"] == {"questions": 16, "max_tokens": 16}
        rate = bench["figures"]["questions_per_second"]
        assert (rate["unit"], rate["rounds"]) == ("questions/s", 3)
        assert rate["min"] <= rate["median"] <= rate["max"]


def test_prepare_speed_records_the_count_as_a_setting():
    from types import SimpleNamespace

    from farol_bench.figures import split_extra_info

    from benchmarks.test_prepare_speed import _measure

    stats = SimpleNamespace(median=0.5, min=0.4, max=0.6, rounds=2, mean=0.5)
    bench = SimpleNamespace(disabled=False, extra_info={}, stats=SimpleNamespace(stats=stats),
                            pedantic=lambda fn, rounds, iterations: [fn() for _ in range(rounds)])
    _measure(bench, lambda: sum(range(200_000)), 1000, 2)
    figures, settings = split_extra_info(bench.extra_info, stats)
    assert settings == {"records": 1000}
    wall = figures["records_per_s_wall"]
    assert (wall["median"], wall["min"], wall["max"]) == (2000, 1000 / 0.6, 2500)
    cpu = figures["records_per_s_cpu"]
    assert (cpu["unit"], cpu["rounds"], cpu["better"]) == ("records/s", 2, "higher")


def test_the_benchmarks_collect_on_their_own_through_the_pytest_script():
    # `pytest benchmarks` (the CI fast mode), unlike `python -m pytest`, leaves the repo root
    # off sys.path; the conftest must still find the suite's fixtures in tests/.
    script = Path(sys.executable).parent / "pytest"
    proc = subprocess.run([str(script), "benchmarks", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "test_generation.py::test_decode" in proc.stdout


def _run_broken(tmp_path, how: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_generation.py", "--benchmark-enable",
           "--bench-rounds", "1", "--bench-warmup", "0", "--prompt-lengths", "16",
           "--decode-tokens", "4", "--decode-context", "8", "--bench-results", str(tmp_path),
           "-q", "-p", "no:cacheprovider", "-p", "tests.farol_bench.break_decode"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "FAROL_BREAK_DECODE": how})


def test_a_benchmark_that_failed_after_timing_is_left_out_of_the_results(tmp_path, schema):
    # Its figures were written and judged as if the measurement were sound.
    proc = _run_broken(tmp_path, "fail")
    assert proc.returncode == 1, proc.stdout[-3000:]
    (path,) = results.find(tmp_path)
    names = [b["name"] for b in results.load(path, schema)["benchmarks"]]
    assert names == ["test_prefill[16]"]
    assert "left out of the results (failed): test_decode" in proc.stdout


def test_ctrl_c_during_a_run_writes_no_results_file(tmp_path):
    # A partial run would become the newest run, and the next full run's baseline.
    proc = _run_broken(tmp_path, "interrupt")
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert results.find(tmp_path) == []
    assert "interrupted: no benchmark results file written" in proc.stdout


def test_tiny_only_benchmarks_are_skipped_under_another_shape(tmp_path):
    # They always ran on the tiny model, so a --shape mistral-7b run filed tiny figures as 7B.
    cmd = [sys.executable, "-m", "pytest", "benchmarks/test_prepare_speed.py",
           "benchmarks/test_train_speed.py", "--shape", "mistral-7b", "--benchmark-enable",
           "--bench-results", str(tmp_path), "-q", "-rs", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "4 skipped" in proc.stdout and "run it with --shape tiny" in proc.stdout
    assert results.find(tmp_path) == []
