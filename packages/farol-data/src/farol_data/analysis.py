"""What the report says about the kept data: diversity, lengths, and token counts measured with
the base model's own tokenizer through Farol's chat template."""

import math
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
from farol_core import template
from farol_core.config import schema_default

_WORD = re.compile(r"\w+")
SEQ_STEP = 128
# Training's own default: data preparation never recommends more than a run would use.
SEQ_CAP = schema_default("train", "training.max_seq_length")


def stats(values: list[int]) -> dict | None:
    """min / max / mean / p50 / p95 of `values` (numpy's linear percentiles), or None if empty."""
    if not values:
        return None
    a = np.asarray(values)
    return {"min": int(a.min()), "max": int(a.max()), "mean": round(float(a.mean()), 1),
            "p50": round(float(np.percentile(a, 50)), 1),
            "p95": round(float(np.percentile(a, 95)), 1)}


def question_of(messages: list[dict]) -> str:
    """The first user message, or "" for a text-only record."""
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def analyse(records: Iterable[dict], tokenizer, cfg: dict) -> dict:
    """{"diversity": ..., "tokens": ...} over the kept records, in one pass."""
    words, questions, answers, tokens = Counter(), [], [], []
    for r in records:
        question = question_of(r["messages"])
        match = _WORD.search(question)
        if match:
            words[match.group().casefold()] += 1
        if question:
            questions.append(len(question))
        answers.append(len(r["messages"][-1]["content"]))
        if tokenizer is not None:
            tokens.append(len(template.encode(tokenizer, r["messages"])))
    return {"diversity": {"first_word": first_word_share(words, cfg["max_first_word_share"]),
                          "chars": {"question": stats(questions), "answer": stats(answers)}},
            "tokens": (token_summary(tokens, cfg.get("max_seq_length", SEQ_CAP)) if tokenizer
                       else None)}


def first_word_share(words: Counter, limit: float) -> dict:
    """The most common first word of the questions (case-folded) and its share of them."""
    total = sum(words.values())
    word, count = words.most_common(1)[0] if words else (None, 0)
    share = round(count / total, 4) if total else 0.0
    return {"word": word, "count": count, "questions": total, "share": share,
            "limit": limit, "flagged": share > limit, "top": dict(words.most_common(10))}


def token_summary(lengths: list[int], limit: int) -> dict:
    """Token length stats, how many exceed `limit`, and the recommended max_seq_length."""
    summary = stats(lengths)
    return {**summary, "limit": limit, "over_limit": sum(n > limit for n in lengths),
            "recommended_max_seq_length": recommend_max_seq_length(summary["p95"])}


def recommend_max_seq_length(p95: float) -> int:
    """p95 rounded up to a multiple of SEQ_STEP, at least SEQ_STEP and at most SEQ_CAP."""
    return min(SEQ_CAP, max(SEQ_STEP, math.ceil(p95 / SEQ_STEP) * SEQ_STEP))
