"""The benchmark harness end to end: a real, timed run writes a schema-valid results file."""

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
