"""Compare: regressions past the threshold in either direction, and noise made visible."""

import pytest
from farol_bench.compare import check_threshold, compare, regressions, table, verdict_line
from farol_core.errors import FarolError

from tests.farol_bench.conftest import fig, run_doc


def test_slower_decode_and_more_memory_are_regressions_within_threshold_is_ok():
    old = run_doc({"decode tps": fig(100.0), "prefill tps": fig(1000.0),
                   "decode mem": fig(2.0, unit="GB", better="lower")})
    new = run_doc({"decode tps": fig(85.0), "prefill tps": fig(950.0),
                   "decode mem": fig(2.5, unit="GB", better="lower")})
    rows = {r.key: r for r in compare(old, new, 0.10)}
    assert rows["decode tps"].status == "regression"
    assert abs(rows["decode tps"].worse - 0.15) < 1e-9
    assert rows["prefill tps"].status == "ok"
    assert rows["decode mem"].status == "regression"
    assert [r.key for r in regressions(list(rows.values()))] == ["decode tps", "decode mem"]


def test_faster_is_improved_and_wide_spread_marks_the_verdict_unsafe():
    old = run_doc({"decode tps": fig(100.0, 60.0, 140.0)})
    new = run_doc({"decode tps": fig(130.0, 128.0, 131.0)})
    (row,) = compare(old, new, 0.10)
    assert row.status == "improved" and row.unsafe
    assert abs(row.spread - 0.8) < 1e-9
    assert "unsafe" in verdict_line([row], old, new, 0.10)


def test_figures_in_one_run_only_are_listed_not_judged():
    rows = compare(run_doc({"a tps": fig(1.0)}), run_doc({"b tps": fig(1.0)}))
    assert [(r.key, r.status) for r in rows] == [("b tps", "only new"), ("a tps", "only old")]
    assert not regressions(rows)


def test_table_prints_old_new_and_ratio():
    rows = compare(run_doc({"decode tps": fig(100.0)}), run_doc({"decode tps": fig(80.0)}))
    text = table(rows, "mlx 0.31", "mlx 0.32")
    assert "mlx 0.31" in text.splitlines()[0]
    line = text.splitlines()[2].split()
    assert line[:5] == ["decode", "tps", "tokens/s", "100", "80"]
    assert line[5] == "0.800" and "regression" in line


def test_a_threshold_outside_0_to_1_is_refused():
    assert check_threshold("0.05") == 0.05
    for bad in ("2", "0", "fast", None):
        with pytest.raises(FarolError, match="threshold must be a fraction"):
            check_threshold(bad)


def test_a_noisy_change_whose_ranges_do_not_overlap_is_trusted():
    old = run_doc({"decode tps": fig(100.0, 80.0, 120.0)})
    new = run_doc({"decode tps": fig(50.0, 40.0, 60.0)})
    (row,) = compare(old, new, 0.10)
    assert row.status == "regression" and row.spread > 0.10 and not row.unsafe


def test_a_change_equal_to_the_threshold_is_within_it():
    # 1.1 / 1.0 - 1 is 0.10000000000000009 in floats: still "exactly 10%", not a regression.
    old = run_doc({"t s": fig(1.0, unit="s", better="lower"), "d tps": fig(100.0)})
    new = run_doc({"t s": fig(1.1, unit="s", better="lower"), "d tps": fig(110.0)})
    assert [r.status for r in compare(old, new, 0.10)] == ["ok", "ok"]
    worse = run_doc({"t s": fig(1.1001, unit="s", better="lower"), "d tps": fig(89.99)})
    assert [r.status for r in compare(old, worse, 0.10)] == ["regression", "regression"]


def test_zero_or_negative_medians_are_shown_not_judged():
    old = run_doc({"a tps": fig(0.0), "b tps": fig(100.0), "c s": fig(2.0, unit="s")})
    new = run_doc({"a tps": fig(50.0), "b tps": fig(-5.0), "c s": fig(float("nan"), unit="s")})
    rows = compare(old, new, 0.10)
    assert all(r.status.startswith("not judged") and r.ratio is None for r in rows)
    assert "not judged" in table(rows) and not regressions(rows)


def test_a_threshold_in_percent_is_taken_as_a_fraction():
    assert check_threshold("10%") == pytest.approx(0.10)
    assert check_threshold(" 5% ") == pytest.approx(0.05)
    with pytest.raises(FarolError, match=r"got '10'.*\n.*or 10%"):
        check_threshold("10")


def test_the_verdict_names_benchmarks_missing_from_the_new_run():
    old = run_doc({"decode tps": fig(100.0), "prefill tps": fig(1000.0)})
    new = run_doc({"prefill tps": fig(1000.0)})
    line = verdict_line(compare(old, new), old, new, 0.10)
    assert "not in the new run (failed or left out): decode" in line


def test_a_figure_an_older_format_kept_does_not_make_its_benchmark_missing():
    # Older results kept the question count as a figure; it is a setting now. The benchmark ran.
    old = run_doc({"q qps": fig(30.0), "q questions": fig(16.0, unit="", better="lower"),
                   "d tps": fig(100.0)})
    new = run_doc({"q qps": fig(31.0)})
    line = verdict_line(compare(old, new), old, new, 0.10)
    assert "not in the new run (failed or left out): d (" in line


def test_a_figure_with_one_value_per_run_has_no_spread_and_an_unsafe_verdict():
    # Shown as spread 0% and trusted, a single busy moment passed for a measured regression.
    old = run_doc({"train ratio": fig(1.61, rounds=1), "d tps": fig(100.0, 99.0, 101.0)})
    new = run_doc({"train ratio": fig(1.18, rounds=1), "d tps": fig(100.0, 99.0, 101.0)})
    once, steady = compare(old, new, 0.10)
    assert (once.status, once.spread, once.unsafe) == ("regression", None, True)
    assert not steady.unsafe
    assert regressions([once, steady]) == [once]  # still a regression: exit status 1
    assert table([once]).splitlines()[2].endswith("-  regression (unsafe: one value)")
    assert "unsafe for 1 figure(s) with one value per run" in verdict_line([once], old, new, 0.1)
