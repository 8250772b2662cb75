"""The benchmark harness: model shapes, run settings, and a results file for every real run.

`--shape tiny` (default) measures the embedded model; `--shape mistral-7b` the Mistral-7B-v0.1
architecture with random 4-bit weights, built in memory; `--model PATH` a real model folder.
With benchmarks enabled (`invoke bench`), the session writes every figure of every benchmark,
including other modules' `benchmark.extra_info`, to `benchmarks/results/` (see `farol_bench`).
With `--benchmark-disable` (the suite), each benchmark runs once at reduced sizes as a test.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from farol_bench import models, report, results
from farol_core.errors import disk_full

ROOT = Path(__file__).resolve().parents[1]
# `pytest benchmarks` on its own puts only benchmarks/ (not a package) on sys.path; the suite's
# fixtures below live in the package tests/ at the repo root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The suite's session fixtures: the tiny model, its 4-bit copy and the prepared sample.
from tests.conftest import processed, tiny_4bit, tiny_model  # noqa: E402, F401

SCHEMA = Path(__file__).resolve().parent / "results.schema.json"
RUN = pytest.StashKey[dict]()
SHAPE_NAMES = {"tiny": "tiny-mistral-4bit", "mistral-7b": "mistral-7b-shape-4bit-g64"}
DISABLED_SCALE = 16  # prompts are this many times shorter when benchmarks only run as tests


def pytest_addoption(parser):
    group = parser.getgroup("farol", "Farol benchmarks")
    group.addoption("--shape", choices=models.SHAPES, default="tiny", help="model shape")
    group.addoption("--model", default=None, help="benchmark this model folder instead")
    group.addoption("--bench-rounds", type=int, default=5, help="timed repeats per benchmark")
    group.addoption("--bench-warmup", type=int, default=1, help="untimed rounds before them")
    group.addoption("--prompt-lengths", default="512,2048", help="prefill prompt lengths")
    group.addoption("--decode-tokens", type=int, default=128, help="tokens generated in decode")
    group.addoption("--decode-context", type=int, default=512, help="prompt before decoding")
    group.addoption("--bandwidth", type=float, default=None,
                    help="device memory bandwidth in GB/s, when Farol's table lacks it")
    group.addoption("--bench-results", default=str(ROOT / "benchmarks" / "results"),
                    help="folder for the results file")


def pytest_configure(config):
    config.stash[RUN] = {"model": None, "written": None, "failed": set(), "interrupted": False,
                        "error": None}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    # A benchmark whose check failed measured something wrong: its figures must not be judged.
    if report.when == "call" and report.failed:
        item.config.stash[RUN]["failed"].add(report.nodeid)


@dataclass
class Settings:
    """How this run measures: rounds, sizes, and whether it is timed at all."""

    enabled: bool
    rounds: int
    warmup: int
    prompt_lengths: list[int]
    decode_tokens: int
    decode_context: int
    bandwidth: float | None

    def size(self, n: int) -> int:
        """`n`, or a short stand-in when benchmarks only run as tests."""
        return n if self.enabled else max(8, n // DISABLED_SCALE)

    def as_dict(self) -> dict:
        return {"rounds": self.rounds, "warmup_rounds": self.warmup,
                "prompt_lengths": self.prompt_lengths, "decode_tokens": self.decode_tokens,
                "decode_context": self.decode_context}


def _settings(config) -> Settings:
    enabled = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
    bandwidth = config.getoption("bandwidth")
    warmup = config.getoption("bench_warmup") if enabled else 0
    return Settings(enabled, config.getoption("bench_rounds") if enabled else 1, warmup,
                    [int(n) for n in config.getoption("prompt_lengths").split(",")],
                    config.getoption("decode_tokens"), config.getoption("decode_context"),
                    bandwidth * 1e9 if bandwidth else None)


def pytest_generate_tests(metafunc):
    if "prompt_length" in metafunc.fixturenames:
        lengths = _settings(metafunc.config).prompt_lengths
        metafunc.parametrize("prompt_length", lengths, ids=[str(n) for n in lengths])


def pytest_collection_modifyitems(config, items):
    # Only benchmarks that take bench_model measure --shape / --model; the rest build the tiny
    # model themselves, and their figures must not be filed under another shape.
    if config.getoption("shape") == "tiny" and not config.getoption("model"):
        return
    skip = pytest.mark.skip(reason="measures the embedded tiny model only; run it with "
                                   "--shape tiny")
    for item in items:
        if "bench_model" not in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bench_settings(pytestconfig) -> Settings:
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def bench_model(request, pytestconfig) -> models.BenchModel:
    """The model this run measures, per --model or --shape; its facts go to the results."""
    path, shape = pytestconfig.getoption("model"), pytestconfig.getoption("shape")
    if path:
        bm = models.from_folder(path)
    elif shape == "mistral-7b":
        bm = models.mistral_7b()
    else:
        bm = models.from_folder(request.getfixturevalue("tiny_4bit"), "tiny-mistral-4bit")
    pytestconfig.stash[RUN]["model"] = bm.facts
    return bm


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    bs = getattr(config, "_benchmarksession", None)
    failed = config.stash[RUN]["failed"]
    done = [b for b in (bs.benchmarks if bs else []) if b.stats and b.stats.rounds
            and not b.has_error and b.fullname not in failed]
    if not done:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        # Ctrl+C: a partial run would become the newest run, and the next one's baseline.
        config.stash[RUN]["interrupted"] = True
        return
    doc = _document(config, done)
    try:
        config.stash[RUN]["written"] = (results.write(doc, config.getoption("bench_results"),
                                                      results.load_schema(SCHEMA)), doc)
    except OSError as e:  # a full disk is one line in the summary, not an INTERNALERROR
        if disk_full(e) is None:
            raise
        config.stash[RUN]["error"] = f"error: {disk_full(e)}"
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _document(config, done) -> dict:
    settings = _settings(config)
    device = results.device_facts()
    device["bandwidth_source"] = "table" if device["bandwidth_bytes_per_s"] else None
    if settings.bandwidth:
        device.update(bandwidth_bytes_per_s=settings.bandwidth, bandwidth_source="--bandwidth")
    path, shape = config.getoption("model"), config.getoption("shape")
    # Without the bench_model fixture (`-k bridge`), the model's name as that fixture gives it.
    model = config.stash[RUN]["model"] or {"name": Path(path).name if path else SHAPE_NAMES[shape]}
    entries = [results.benchmark_entry(b.name, b.stats, b.extra_info, b.group) for b in done]
    return results.build(entries, "model" if path else shape, model, settings.as_dict(), device)


def pytest_terminal_summary(terminalreporter, config):
    run = config.stash[RUN]
    if run["interrupted"]:
        terminalreporter.write_line("interrupted: no benchmark results file written")
    if run["error"]:
        terminalreporter.write_line(run["error"])
    written = run["written"]
    if written:
        path, doc = written
        terminalreporter.write_sep("-", "Farol benchmark figures")
        terminalreporter.write_line(report.summary(doc))
        terminalreporter.write_line(f"results: {path}")
        if run["failed"]:
            names = ", ".join(sorted(n.split("::")[-1] for n in run["failed"]))
            terminalreporter.write_line(f"left out of the results (failed): {names}")
