"""Results documents made from figures, for the compare, results and plot tests."""

from pathlib import Path

import pytest
from farol_bench import results

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results.schema.json"


@pytest.fixture(scope="session")
def schema() -> dict:
    return results.load_schema(SCHEMA_PATH)


def fig(median, lo=None, hi=None, unit="tokens/s", better="higher", rounds=5) -> dict:
    return {"median": median, "min": median if lo is None else lo,
            "max": median if hi is None else hi, "rounds": rounds, "unit": unit,
            "better": better}


def run_doc(figures: dict, created="2026-11-23T07:00:00Z", mlx="0.32.4", device="Apple M1",
            shape="tiny") -> dict:
    """A results document with one benchmark per `figures` key ("bench figure")."""
    benches: dict[str, dict] = {}
    for key, f in figures.items():
        bench, name = key.split(" ")
        benches.setdefault(bench, {"name": bench, "group": None, "settings": {},
                                   "figures": {}})["figures"][name] = f
    return {"schema_version": 1, "created": created, "host": "mac",
            "versions": {"mlx": mlx, "mlx_lm": "0.32.2", "python": "3.11.7", "os": "macOS"},
            "device": {"backend": "metal", "name": device, "bandwidth_bytes_per_s": 68.25e9,
                       "memory": {"ram_total": 16 * 2**30}},
            "shape": shape, "model": {"name": "tiny-mistral-4bit", "parameter_bytes": 10,
                                      "weight_bytes_per_token": 8},
            "settings": {}, "benchmarks": list(benches.values())}
