"""Answers to held-out questions, batched with mlx-lm when more than one is pending."""

import time
from collections.abc import Sequence

from farol_core.generate import answer_sampler, complete, prompt_tokens
from mlx_lm import batch_generate


def answer_one_at_a_time(model, tokenizer, conversations: Sequence[list[dict]],
                         max_tokens: int, temperature: float = 0.0) -> list[str]:
    """One `complete` call per question: the reference path the batched one must match."""
    return [complete(model, tokenizer, c, max_tokens, temperature).text for c in conversations]


def answer_batched(model, tokenizer, conversations: Sequence[list[dict]], max_tokens: int,
                   temperature: float = 0.0, batch_size: int = 32) -> list[str]:
    """All questions through mlx-lm's `batch_generate`, prompted with Farol's template."""
    prompts = [prompt_tokens(tokenizer, c) for c in conversations]
    response = batch_generate(model, tokenizer, prompts, max_tokens=max_tokens,
                              sampler=answer_sampler(tokenizer, temperature),
                              completion_batch_size=batch_size)
    return [text.strip() for text in response.texts]


def answer(model, tokenizer, conversations: Sequence[list[dict]], max_tokens: int,
           temperature: float = 0.0, batch_size: int = 32) -> tuple[list[str], float]:
    """(answers, seconds): batched for several questions, `complete` for a single one.

    Each conversation is the chat up to, not including, the answer to generate.
    """
    start = time.perf_counter()
    if len(conversations) > 1:
        texts = answer_batched(model, tokenizer, conversations, max_tokens, temperature,
                               batch_size)
    else:
        texts = answer_one_at_a_time(model, tokenizer, conversations, max_tokens, temperature)
    return texts, time.perf_counter() - start
