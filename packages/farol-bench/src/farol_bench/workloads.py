"""Generation workloads on top of mlx-lm's `generate_step`: prefill and decode, timed apart."""

import mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache
from mlx_lm.sample_utils import make_sampler

GREEDY = make_sampler(temp=0.0)
FIRST_ORDINARY_ID = 3  # ids 0-2 are <unk>, <s>, </s> in Mistral's tokenizer


def random_tokens(vocab_size: int, n: int, seed: int = 0) -> mx.array:
    """`n` token ids drawn from the ordinary vocabulary; speed does not depend on which."""
    return mx.random.randint(FIRST_ORDINARY_ID, vocab_size, (n,), key=mx.random.key(seed))


def prefill(model, tokens: mx.array, cache=None) -> list:
    """Run the prompt through the model exactly as mlx-lm does before the first token.

    `max_tokens=0` makes `generate_step` process the prompt (in its own chunks) and the
    last-token step, then stop without decoding. Returns the filled KV cache.
    """
    cache = make_prompt_cache(model) if cache is None else cache
    for _ in generate_step(tokens, model, max_tokens=0, sampler=GREEDY, prompt_cache=cache):
        pass
    return cache


def decode(model, cache: list, n: int) -> list[int]:
    """Generate `n` tokens greedily after the prompt already in `cache`; returns their ids."""
    start = mx.array([FIRST_ORDINARY_ID])
    out = []
    for token, _ in generate_step(start, model, max_tokens=n, sampler=GREEDY, prompt_cache=cache):
        out.append(token)
    return out


def peak_memory_gb() -> float:
    """MLX's peak memory since the last reset, in GB (10^9 bytes)."""
    return mx.get_peak_memory() / 1e9
