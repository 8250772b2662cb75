"""Answer generation on top of mlx-lm's `stream_generate`, one step dataclass at a time."""

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import mlx.core as mx
import numpy as np
from mlx_lm import stream_generate
from mlx_lm.generate import GenerationResponse
from mlx_lm.sample_utils import make_sampler

from farol_core import template


@dataclass
class Completion:
    """A finished answer and how it was made."""

    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int
    completion_tokens: int
    prompt_tps: float
    generation_tps: float
    seconds: float


def prompt_tokens(tokenizer, prompt_or_messages: str | Sequence[dict],
                  system: str | None = None) -> list[int]:
    """The token ids the model sees for a question or a message list, via Farol's template."""
    messages = template.to_messages(prompt_or_messages, system)
    return template.encode(tokenizer, messages, add_generation_prompt=True)


def stream(model, tokenizer, tokens: list[int], max_tokens: int = 256, temperature: float = 0.0,
           top_p: float = 1.0, **kwargs) -> Iterator[GenerationResponse]:
    """mlx-lm's per-step responses for `tokens`; greedy when temperature is 0."""
    sampler = answer_sampler(tokenizer, temperature, top_p)
    yield from stream_generate(model, tokenizer, tokens, max_tokens=max_tokens, sampler=sampler,
                               **kwargs)


def complete(model, tokenizer, prompt_or_messages: str | Sequence[dict], max_tokens: int = 256,
             temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (),
             system: str | None = None) -> Completion:
    """Generate a whole answer, cut at the first stop string if one appears."""
    tokens = prompt_tokens(tokenizer, prompt_or_messages, system)
    start, text, last = time.perf_counter(), "", None
    finish = "length"
    for last in stream(model, tokenizer, tokens, max_tokens, temperature, top_p):
        text += visible(last.text)
        cut = find_stop(text, stop)
        if cut is not None:
            text, finish = text[:cut], "stop"
            break
        finish = last.finish_reason or finish
    return Completion(
        text=text.strip(),
        finish_reason=finish,
        prompt_tokens=len(tokens),
        completion_tokens=last.generation_tokens if last else 0,
        prompt_tps=last.prompt_tps if last else 0.0,
        generation_tps=last.generation_tps if last else 0.0,
        seconds=time.perf_counter() - start,
    )


def find_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in `text`, or None."""
    hits = [i for s in stop if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def answer_sampler(tokenizer, temperature: float = 0.0, top_p: float = 1.0):
    """mlx-lm's sampler, except that it never picks a special token other than EOS (BOS,
    padding, <unk>): an answer must not carry their text ('<s>')."""
    sample = make_sampler(temp=temperature, top_p=top_p if top_p < 1.0 else 0.0)
    banned = _banned_ids(tokenizer)
    if not banned:
        return sample
    return lambda logprobs: sample(logprobs + _penalty(logprobs.shape[-1], banned))


def _banned_ids(tokenizer) -> tuple[int, ...]:
    specials = set(getattr(tokenizer, "all_special_ids", None) or [])
    return tuple(sorted(specials - set(getattr(tokenizer, "eos_token_ids", None) or [])))


@cache
def _penalty(size: int, banned: tuple[int, ...]) -> mx.array:
    row = np.zeros(size, np.float32)
    row[[i for i in banned if i < size]] = -np.inf
    return mx.array(row)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` without control characters (tab and newline stay): a decoded answer may hold
    bytes such as backspace that no reader of the answer wants."""
    return _CONTROL.sub("", text)
