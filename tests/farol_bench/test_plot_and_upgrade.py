"""The tokens/s plot, and how the upgrade guard pins its throwaway venv."""

from pathlib import Path

from farol_bench.plot import plot, series
from farol_bench.upgrade import constraints, judge, requirements

from tests.farol_bench.conftest import fig, run_doc

ROOT = Path(__file__).resolve().parents[2]


def test_plot_draws_tokens_per_second_per_mlx_version(tmp_path):
    docs = [run_doc({"test_decode decode_tokens_per_s": fig(20.0, 19.0, 21.0),
                     "test_decode peak_memory_gb": fig(4.0, unit="GB", better="lower")},
                    created="2026-11-20T00:00:00Z", mlx="0.31.2"),
            run_doc({"test_decode decode_tokens_per_s": fig(22.0)}, mlx="0.32.4")]
    data = series(docs + docs[:1])  # a baseline copied from results/ is drawn once
    assert list(data) == ["Apple M1 tiny: test_decode decode_tokens_per_s"]
    assert [p[4] for p in data["Apple M1 tiny: test_decode decode_tokens_per_s"]] == [
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
