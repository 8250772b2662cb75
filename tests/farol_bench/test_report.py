"""The printed summary: every figure, and decode beside its bound or the reason there is none."""

from farol_bench.report import bound_lines, summary

from tests.farol_bench.conftest import fig, run_doc


def test_decode_is_shown_as_a_fraction_of_bandwidth_over_weight_bytes():
    doc = run_doc({"test_decode decode_tokens_per_s": fig(14.2)})
    doc["model"]["weight_bytes_per_token"] = 4_070_000_000
    (line,) = bound_lines(doc)
    assert "68.25 GB/s / 4.07 GB = 16.77 tokens/s" in line
    assert "decode at 84.7% of the bound" in line
    assert "test_decode  decode_tokens_per_s" in summary(doc)


def test_an_unknown_bandwidth_is_said_not_guessed():
    doc = run_doc({"test_decode decode_tokens_per_s": fig(200.0)})
    doc["device"].update(name="AMD EPYC", bandwidth_bytes_per_s=None)
    (line,) = bound_lines(doc)
    assert "memory bandwidth of 'AMD EPYC' unknown, so no bound" in line
