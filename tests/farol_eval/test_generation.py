"""Batched answers are the same greedy answers as one-at-a-time ones, only faster."""

from farol_core.dataset import read_messages
from farol_core.model import load_model
from farol_eval.generation import answer, answer_batched, answer_one_at_a_time
from mlx_lm.utils import load_adapters


def _eight(pretrained_4bit, processed):
    model, tokenizer = load_model(str(pretrained_4bit))
    questions = [chat[:-1] for chat in read_messages(processed / "train.jsonl")[:8]]
    return model, tokenizer, questions


def test_batched_greedy_answers_match_one_at_a_time(pretrained_4bit, processed):
    # On the pre-trained base the 8 answers are not all one string, so a batch that hands one
    # request's answer to another fails the comparison; on random weights all 8 were equal
    # and a swap passed unseen.
    model, tokenizer, questions = _eight(pretrained_4bit, processed)
    one = answer_one_at_a_time(model, tokenizer, questions, max_tokens=16)
    assert len(set(one)) >= 2, one
    batched = answer_batched(model, tokenizer, questions, max_tokens=16, batch_size=4)
    assert batched == one
    texts, seconds = answer(model, tokenizer, questions[:1], max_tokens=16)
    assert texts == one[:1] and seconds > 0


def test_eight_questions_get_at_least_four_different_answers(pretrained_4bit, processed):
    model, tokenizer, questions = _eight(pretrained_4bit, processed)
    assert len(set(answer_one_at_a_time(model, tokenizer, questions, max_tokens=16))) >= 4


def test_batched_answers_with_an_adapter_match_one_at_a_time(trained_run, processed):
    result, config = trained_run
    model, tokenizer = load_model(config["model"])
    load_adapters(model, str(result.run_dir))
    model.eval()
    questions = [chat[:-1] for chat in read_messages(processed / "test.jsonl")[:8]]
    one = answer_one_at_a_time(model, tokenizer, questions, max_tokens=8)
    batched = answer_batched(model, tokenizer, questions, max_tokens=8, batch_size=4)
    assert batched == one and all(isinstance(a, str) for a in one)
