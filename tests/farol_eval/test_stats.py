"""Paired bootstrap intervals: reproducible, and right where the answer is known."""

import numpy as np
from farol_eval.stats import bootstrap_indices, compare, interval


def _rows(values):
    return [{"exact_match": v, "token_f1": v, "rouge_l": v, "answer_length": 3} for v in values]


def test_constant_gain_has_a_zero_width_interval():
    out = compare({"base": _rows([0.2] * 10), "tuned": _rows([0.7] * 10)}, 1000, 0, 0.95)
    gain = out["token_f1"]["gain"]
    assert np.isclose(gain["mean"], 0.5) and np.isclose(gain["low"], 0.5)
    assert np.isclose(gain["high"], 0.5)
    assert out["answer_length"]["gain"] == {"mean": 0.0, "low": 0.0, "high": 0.0}


def test_pairing_removes_question_difficulty():
    # Scores vary a lot across questions, but tuned is always exactly 0.1 better: a paired
    # interval is a point, while the per-model intervals are wide.
    base = list(np.linspace(0, 0.9, 20))
    out = compare({"base": _rows(base), "tuned": _rows([b + 0.1 for b in base])}, 1000, 0, 0.95)
    assert np.isclose(out["rouge_l"]["gain"]["low"], 0.1)
    assert np.isclose(out["rouge_l"]["gain"]["high"], 0.1)
    assert out["rouge_l"]["base"]["high"] - out["rouge_l"]["base"]["low"] > 0.2


def test_interval_is_seeded_and_covers_the_mean():
    values = [0.0, 1.0] * 50
    a = interval(values, bootstrap_indices(100, 1000, 7), 0.95)
    b = interval(values, bootstrap_indices(100, 1000, 7), 0.95)
    assert a == b
    assert a["low"] < 0.5 < a["high"]
    # the standard error of a mean of 100 fair coin flips is 0.05, so the 95% CI is about +-0.1
    assert 0.05 < 0.5 - a["low"] < 0.15 and 0.05 < a["high"] - 0.5 < 0.15


def test_base_only_has_no_gain():
    out = compare({"base": _rows([0.5, 1.0])}, 100, 0, 0.95)
    assert "gain" not in out["exact_match"] and "tuned" not in out["exact_match"]


def test_loss_comparison_is_token_weighted_and_paired():
    from farol_eval.stats import compare_losses

    counts = np.array([1, 10, 5])
    base = {"sums": 2.0 * counts, "counts": counts}  # 2 nats per token everywhere
    tuned = {"sums": np.array([3.0, 10.0, 5.0]), "counts": counts}  # 3, 1, 1 nats per token
    out = compare_losses({"base": base, "tuned": tuned}, 1000, 0, 0.95)
    assert out["base"] == {"mean": 2.0, "low": 2.0, "high": 2.0}
    assert np.isclose(out["tuned"]["mean"], 18 / 16)  # the 1-token example weighs 1/16
    assert np.isclose(out["gain"]["mean"], 18 / 16 - 2)
    assert out["gain"]["low"] <= out["gain"]["mean"] <= out["gain"]["high"] <= 1.0


def test_one_question_has_no_interval_two_have_a_real_one():
    # one question: every resample is that question, so a bootstrap "interval" would be a
    # point; it must say there is none instead of claiming certainty
    one = compare({"base": _rows([0.0]), "tuned": _rows([1.0])}, 1000, 0, 0.95)
    assert one["token_f1"]["gain"] == {"mean": 1.0, "low": None, "high": None}
    assert one["token_f1"]["base"]["low"] is None
    two = compare({"base": _rows([0.0, 0.0]), "tuned": _rows([0.0, 1.0])}, 1000, 0, 0.95)
    assert two["token_f1"]["gain"]["low"] == 0.0 and two["token_f1"]["gain"]["high"] == 1.0


def test_loss_of_a_single_example_has_no_interval():
    from farol_eval.stats import compare_losses

    one = {"sums": np.array([6.0]), "counts": np.array([3])}
    out = compare_losses({"base": one, "tuned": one}, 100, 0, 0.95)
    assert out["base"] == {"mean": 2.0, "low": None, "high": None}
    assert out["gain"]["low"] is None and out["gain"]["high"] is None


def test_examples_cut_before_their_answer_are_not_resampled_as_a_zero_loss():
    # The first example's prompt fills max_seq_length, so it has no counted token. A resample
    # of only that example has no loss at all; it must not enter the interval as 0 nats.
    from farol_eval.stats import compare_losses

    counts = np.array([0, 10, 10])
    flat = {"sums": np.array([0.0, 20.0, 20.0]), "counts": counts}  # 2 nats on every token
    out = compare_losses({"base": flat, "tuned": flat}, 1000, 0, 0.95)
    assert out["base"] == {"mean": 2.0, "low": 2.0, "high": 2.0}
    # one example with tokens is one example: no interval, as for a single-example split
    one = compare_losses({"base": {"sums": np.array([0.0, 20.0]), "counts": np.array([0, 10])}},
                         1000, 0, 0.95)
    assert one["base"] == {"mean": 2.0, "low": None, "high": None}
