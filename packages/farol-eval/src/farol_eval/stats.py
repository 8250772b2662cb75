"""Paired bootstrap confidence intervals for per-question scores."""

import numpy as np

SCORES = ("exact_match", "token_f1", "rouge_l", "answer_length")


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] question indices drawn with replacement; the same draw serves every
    metric and both models, which keeps the comparison paired."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def interval(values, indices: np.ndarray, confidence: float) -> dict:
    """Mean of `values` and the percentile bootstrap interval of that mean (None bounds for
    fewer than two values)."""
    values = np.asarray(values, dtype=float)
    return _bounds(values.mean(), values[indices].mean(axis=1), confidence, len(values))


def compare(scores: dict[str, list[dict]], resamples: int, seed: int,
            confidence: float) -> dict:
    """Per metric: each model's mean with its interval and, with two models, the paired gain
    (tuned minus base) with its interval."""
    n = len(next(iter(scores.values())))
    if n == 0:
        return {}
    idx = bootstrap_indices(n, resamples, seed)
    out = {}
    for metric in SCORES:
        cols = {name: np.array([s[metric] for s in rows]) for name, rows in scores.items()}
        out[metric] = {name: interval(v, idx, confidence) for name, v in cols.items()}
        if {"base", "tuned"} <= cols.keys():
            out[metric]["gain"] = interval(cols["tuned"] - cols["base"], idx, confidence)
    return out


def _bounds(estimate: float, boots: np.ndarray, confidence: float, n: int) -> dict:
    # Every resample of a single question is that question: the bootstrap would give a
    # zero-width interval, a certainty one sample cannot have. No bounds instead.
    if n < 2:
        return {"mean": float(estimate), "low": None, "high": None}
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boots, [tail, 100 - tail])
    return {"mean": float(estimate), "low": float(low), "high": float(high)}


def compare_losses(per_model: dict[str, dict], resamples: int, seed: int,
                   confidence: float) -> dict:
    """Token-weighted loss of each model with a bootstrap interval over examples and, with two
    models, the paired gain (tuned minus base; negative is better) with its interval.

    Each resample redraws the examples and recomputes sum(loss) / sum(tokens) for both models.
    """
    # An example cut before its answer (max_seq_length) has no token: it adds nothing to the
    # loss, and a resample of only such examples would count as a loss of 0.
    counts = next(iter(per_model.values()))["counts"]
    kept = counts > 0
    counts = counts[kept]
    sums = {n: m["sums"][kept] for n, m in per_model.items()}
    idx = bootstrap_indices(len(counts), resamples, seed)
    tokens = counts[idx].sum(axis=1)
    boots = {n: s[idx].sum(axis=1) / tokens for n, s in sums.items()}
    out = {n: _bounds(s.sum() / counts.sum(), boots[n], confidence, len(counts))
           for n, s in sums.items()}
    if {"base", "tuned"} <= per_model.keys():
        out["gain"] = _bounds(out["tuned"]["mean"] - out["base"]["mean"],
                              boots["tuned"] - boots["base"], confidence, len(counts))
    return out
