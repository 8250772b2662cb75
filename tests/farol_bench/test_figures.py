"""Figures from pytest-benchmark stats and extra_info: medians, ranges, units, directions."""

from types import SimpleNamespace

from farol_bench.figures import better_for, split_extra_info, summarize, unit_for

STATS = SimpleNamespace(median=0.5, min=0.25, max=1.0, rounds=4)


def test_rates_come_from_round_times_with_min_and_max_swapped():
    figures, _ = split_extra_info({"decode_tokens_per_s": {"per_round": 128}}, STATS)
    f = figures["decode_tokens_per_s"]
    assert (f["median"], f["min"], f["max"]) == (256.0, 128.0, 512.0)
    assert (f["unit"], f["better"], f["rounds"]) == ("tokens/s", "higher", 4)


def test_numbers_and_lists_are_figures_and_the_rest_are_settings():
    figures, settings = split_extra_info(
        {"peak_memory_gb": [3.0, 1.0, 2.0], "records_per_s": 900, "mode": "greedy",
         "compiled": True, "settings": {"prompt_tokens": 512}}, STATS)
    assert figures["peak_memory_gb"] == summarize([1.0, 2.0, 3.0], "GB", "lower")
    assert figures["records_per_s"]["unit"] == "records/s"
    assert figures["records_per_s"]["better"] == "higher"
    assert settings == {"mode": "greedy", "compiled": True, "prompt_tokens": 512}


def test_a_benchmarks_own_summary_is_kept():
    figures, _ = split_extra_info(
        {"speedup": {"median": 2.0, "min": 1.5, "max": 2.5, "rounds": 3}}, None)
    assert figures["speedup"] == {"median": 2.0, "min": 1.5, "max": 2.5, "rounds": 3,
                                  "unit": "", "better": "higher"}


def test_units_and_directions_follow_the_name():
    assert unit_for("prefill_tokens_per_s") == "tokens/s"
    assert unit_for("peak_memory_gb") == "GB"
    assert unit_for("wall_s") == "s"
    assert better_for("peak_memory_gb", "GB") == "lower"
    assert better_for("bridge_ratio", "") == "higher"


def test_a_higher_is_better_word_must_be_a_whole_word():
    # "generation" and "duration" hold "ratio": their times were judged better when higher.
    for time_figure in ("generation_s", "prefill_duration_s", "calibration_s"):
        assert better_for(time_figure, "s") == "lower"
    for rate in ("tokens_per_second", "ratio_uncorrected", "raw_tps", "speedup"):
        assert better_for(rate, "") == "higher"
