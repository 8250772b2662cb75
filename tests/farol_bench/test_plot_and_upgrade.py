"""The tokens/s plot, and how the upgrade guard pins its throwaway venv."""

import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from farol_bench.plot import plot, series
from farol_bench.upgrade import (
    _here,
    check_upgrade,
    check_versions,
    constraints,
    install_error,
    judge,
    requirements,
)
from farol_core.errors import FarolError

from tests.farol_bench.conftest import fig, run_doc

ROOT = Path(__file__).resolve().parents[2]


def test_plot_draws_tokens_per_second_per_mlx_version(tmp_path):
    docs = [run_doc({"test_decode decode_tokens_per_s": fig(20.0, 19.0, 21.0),
                     "test_decode peak_memory_gb": fig(4.0, unit="GB", better="lower")},
                    created="2026-11-20T00:00:00Z", mlx="0.31.2"),
            run_doc({"test_decode decode_tokens_per_s": fig(22.0)}, mlx="0.32.4")]
    data = series(docs + docs[:1])  # a baseline copied from results/ is drawn once
    assert list(data) == ["Apple M1 (metal) tiny: test_decode decode_tokens_per_s"]
    assert [p[4] for p in data["Apple M1 (metal) tiny: test_decode decode_tokens_per_s"]] == [
        "0.31.2", "0.32.4"]
    out = plot(docs, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_throwaway_venv_gets_the_asked_versions_and_everything_else_as_pinned():
    reqs = requirements(ROOT, "0.31.2", "0.31.3")
    assert "mlx-lm==0.31.3" in reqs
    assert any(r.startswith("mlx") and r.endswith("==0.31.2") for r in reqs)
    assert not any("0.32" in r for r in reqs), "the project's mlx pins must be overridden"
    assert "pytest-benchmark>=4" in reqs and "click>=8.1,<9" in reqs
    pins = constraints().splitlines()
    names = {p.split("==")[0].lower() for p in pins}
    assert "numpy" in names and "jsonschema" in names
    assert not names & {"mlx", "mlx-lm", "mlx-cpu", "farol-workspace"}


def test_the_verdict_is_slower_only_past_the_threshold_and_says_when_noise_decides():
    here = run_doc({"test_decode decode_tokens_per_s": fig(100.0, 99.0, 101.0)})
    same = run_doc({"test_decode decode_tokens_per_s": fig(95.0, 94.0, 96.0)})
    assert (judge(here, same, 0.10).verdict, judge(here, same, 0.10).reasons) == (
        "safe to upgrade", [])
    wobbly = run_doc({"test_decode decode_tokens_per_s": fig(100.0, 50.0, 150.0)})
    assert judge(here, wobbly, 0.10).reasons == [
        "caution: too noisy to judge here: test_decode decode_tokens_per_s"]
    slow = run_doc({"test_decode decode_tokens_per_s": fig(80.0, 79.0, 81.0)}, mlx="0.33.0")
    out = judge(here, slow, 0.10)
    assert out.verdict == "slower"
    assert out.reasons == ["test_decode decode_tokens_per_s: 20% worse"]
    assert out.labels[1] == "mlx 0.33.0 / mlx-lm 0.32.2"
    noisy = run_doc({"test_decode decode_tokens_per_s": fig(80.0, 40.0, 120.0)})
    assert judge(here, noisy, 0.10).verdict.startswith("slower (unsafe")


def test_no_run_to_plot_is_an_error_and_devices_or_models_are_separate_lines(tmp_path):
    with pytest.raises(FarolError, match="no tokens/s figure in 0 results file"):
        plot([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    docs = [run_doc({"test_decode decode_tokens_per_s": fig(20.0)}, device=d)
            for d in ("Apple M1", "NVIDIA H200")]
    docs += [run_doc({"test_decode decode_tokens_per_s": fig(9.0)}, shape="model")
             for _ in range(2)]
    docs[3].update(created="2026-11-24T00:00:00Z", model={"name": "llama-3-8b-4bit"})
    assert sorted(series(docs)) == [
        "Apple M1 (metal) model llama-3-8b-4bit: test_decode decode_tokens_per_s",
        "Apple M1 (metal) model tiny-mistral-4bit: test_decode decode_tokens_per_s",
        "Apple M1 (metal) tiny: test_decode decode_tokens_per_s",
        "NVIDIA H200 (metal) tiny: test_decode decode_tokens_per_s"]


def test_versions_that_are_not_numbers_or_already_installed_are_refused_at_once():
    with pytest.raises(FarolError, match="--mlx 'latest' is not a version number"):
        check_versions("latest", "0.33.0")
    here = [importlib.metadata.version(d) for d in ("mlx", "mlx-lm")]
    with pytest.raises(FarolError, match="versions installed here"):
        check_versions(*here)


def test_a_pip_failure_is_one_line():
    missing = ("ERROR: Could not find a version that satisfies the requirement mlx-lm==9.9.9 "
               "(from versions: 0.0.1, 0.0.2, 0.30.0, 0.31.0, 0.31.1, 0.31.2, 0.31.3, 0.32.0, "
               "0.32.1, 0.32.2)\nERROR: No matching distribution found for mlx-lm==9.9.9\n")
    line = install_error(missing)
    assert "\n" not in line and "0.0.1" not in line
    assert line.endswith("(newest: 0.31.2, 0.31.3, 0.32.0, 0.32.1, 0.32.2); "
                         "No matching distribution found for mlx-lm==9.9.9")
    none = "ERROR: Could not find a version that satisfies the requirement mlx==1 (from versions: none)"  # noqa: E501
    assert install_error(none).startswith("no package index offered any release (offline?)")


def test_offline_the_guard_says_could_not_install_and_leaves_no_venv(tmp_path, monkeypatch):
    # A package index that refuses connections, as on a machine without network.
    for key, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
                       "PIP_FIND_LINKS": "", "PIP_RETRIES": "1", "PIP_NO_CACHE_DIR": "1",
                       "PIP_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = check_upgrade(ROOT, "0.31.2", "0.31.3", log=lambda _: None)
    assert out.verdict == "could not install"
    assert out.reasons == ["could not install mlx 0.31.2 / mlx-lm 0.31.3: no package index "
                           "reachable (offline?); pip's index settings: `pip config list`"]
    assert list(tmp_path.iterdir()) == []


def test_benchmarks_failing_here_are_not_blamed_on_the_upgrade(tmp_path):
    with pytest.raises(FarolError, match="this environment, not the upgrade"):
        _here(ROOT, tmp_path, "benchmarks/no_such_file.py", 1)


def test_zero_passes_or_rounds_are_refused_before_installing(tmp_path, monkeypatch):
    # 0 passes ended in an IndexError after minutes of installing the throwaway venv.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for options in ({"passes": 0}, {"rounds": 0}):
        with pytest.raises(FarolError, match="must be at least 1"):
            check_upgrade(ROOT, "0.31.2", "0.31.3", log=lambda _: None, **options)
    assert list(tmp_path.iterdir()) == []


def test_runs_of_another_decode_workload_are_another_line():
    # 4 tokens after 8 is not 128 after 512: one line would draw a speed change that is not one.
    docs = [run_doc({"test_decode decode_tokens_per_s": fig(v)}, created=c)
            for v, c in ((200.0, "2026-11-20T00:00:00Z"), (400.0, "2026-11-21T00:00:00Z"))]
    docs[0]["settings"] = {"decode_tokens": 128, "decode_context": 512}
    docs[1]["settings"] = {"decode_tokens": 4, "decode_context": 8}
    assert sorted(series(docs)) == [
        "Apple M1 (metal) tiny, decode 128 after 512: test_decode decode_tokens_per_s",
        "Apple M1 (metal) tiny, decode 4 after 8: test_decode decode_tokens_per_s"]


def test_sigterm_during_the_check_removes_the_throwaway_venv(tmp_path):
    # `timeout` or a cancelled CI job sends SIGTERM; only Ctrl+C used to clean up.
    index = socket.socket()  # accepts connections and never answers: pip waits on it
    index.bind(("127.0.0.1", 0))
    index.listen()
    env = {**os.environ, "TMPDIR": str(tmp_path), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": f"http://127.0.0.1:{index.getsockname()[1]}/simple",
           "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_TIMEOUT": "60"}
    code = ("from pathlib import Path; from farol_bench.upgrade import check_upgrade; "
            f"check_upgrade(Path({str(ROOT)!r}), '0.31.2', '0.31.3')")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob("farol-upgrade-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the venv creation or the install
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    index.close()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert list(tmp_path.glob("farol-upgrade-*")) == []
