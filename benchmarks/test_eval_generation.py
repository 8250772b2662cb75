"""Evaluation answers: mlx-lm batch generation against one question at a time (questions/s).

Run with `pytest benchmarks/test_eval_generation.py --benchmark-enable`; the ratio of the two
means is the speed-up. Both decode greedily with the same max tokens on the tiny 4-bit model.
"""

from pathlib import Path

import pytest
from farol_core.io import read_jsonl
from farol_core.model import load_model
from farol_core.tiny import create_tiny_model
from farol_data import texts
from farol_eval.generation import answer_batched, answer_one_at_a_time
from farol_train import quantize

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_QA = ROOT / "data" / "sample" / "farense_qa.jsonl"
QUESTIONS, MAX_TOKENS = 16, 16


@pytest.fixture(scope="module")
def model_and_questions(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-eval")
    tiny = create_tiny_model(root / "tiny", texts([SAMPLE_QA], None))
    model, tokenizer = load_model(quantize(tiny, root / "tiny-4bit"))
    prompts = [r["prompt"] for _, r in read_jsonl(SAMPLE_QA) if isinstance(r.get("prompt"), str)]
    questions = [[{"role": "user", "content": p}] for p in prompts[:QUESTIONS]]
    return model, tokenizer, questions


@pytest.mark.parametrize("mode", ["batched", "one_at_a_time"])
def test_eval_generation_questions_per_second(benchmark, model_and_questions, mode):
    model, tokenizer, questions = model_and_questions
    fn = answer_batched if mode == "batched" else answer_one_at_a_time
    benchmark.group = "eval generation"
    answers = benchmark.pedantic(fn, args=(model, tokenizer, questions, MAX_TOKENS),
                                 rounds=3, warmup_rounds=1)
    assert len(answers) == QUESTIONS
    # The counts are settings, not figures to judge; the rate comes from every round's time, so
    # bench-compare sees its spread.
    benchmark.extra_info["settings"] = {"questions": QUESTIONS, "max_tokens": MAX_TOKENS}
    benchmark.extra_info["questions_per_second"] = {"per_round": QUESTIONS,
                                                    "unit": "questions/s"}
