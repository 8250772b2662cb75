"""Generation speed and memory: prefill tokens/s, decode tokens/s and peak memory.

Prefill is mlx-lm's own prompt processing (`generate_step` with `max_tokens=0`); decode is
`generate_step` after a prefilled KV cache, so each timing holds only its own phase. Beside
decode, the physical bound: memory bandwidth / weight bytes read per token.
"""

import mlx.core as mx
from farol_bench import workloads
from farol_bench.bandwidth import decode_bound
from farol_bench.results import device_facts


def test_prefill(benchmark, bench_model, bench_settings, prompt_length):
    s = bench_settings
    n = s.size(prompt_length)
    tokens = workloads.random_tokens(bench_model.vocab_size, n)
    peaks, offsets = [], []

    def run():
        mx.reset_peak_memory()
        # Keep only the cache's length: a cache kept alive would count in the next round's peak.
        offsets.append(workloads.prefill(bench_model.model, tokens)[0].offset)
        peaks.append(workloads.peak_memory_gb())

    benchmark.pedantic(run, rounds=s.rounds, warmup_rounds=s.warmup, iterations=1)
    benchmark.extra_info.update(
        prefill_tokens_per_s={"per_round": n, "unit": "tokens/s"},
        peak_memory_gb=peaks[s.warmup:],
        settings={"prompt_tokens": n},
    )
    assert offsets == [n] * len(offsets), "the KV cache must hold the whole prompt"
    assert peaks[-1] > bench_model.facts["parameter_bytes"] / 1e9


def test_decode(benchmark, bench_model, bench_settings):
    s = bench_settings
    n, context = s.size(s.decode_tokens), s.size(s.decode_context)
    prompt = workloads.random_tokens(bench_model.vocab_size, context)
    peaks, outputs = [], []

    def setup():
        cache = workloads.prefill(bench_model.model, prompt)
        mx.reset_peak_memory()
        return (cache,), {}

    def run(cache):
        outputs.append(workloads.decode(bench_model.model, cache, n))
        peaks.append(workloads.peak_memory_gb())

    benchmark.pedantic(run, setup=setup, rounds=s.rounds, warmup_rounds=s.warmup, iterations=1)
    benchmark.extra_info.update(
        decode_tokens_per_s={"per_round": n, "unit": "tokens/s"},
        peak_memory_gb=peaks[s.warmup:],
        settings=_bound_settings(bench_model, s, n, context),
    )
    bound = benchmark.extra_info["settings"]["bound_tokens_per_s"]
    if bound:
        benchmark.extra_info["decode_fraction_of_bound"] = {
            "per_round": n / bound, "unit": "fraction of bound", "better": "higher"}
    assert [len(o) for o in outputs] == [n] * len(outputs)
    assert all(0 <= t < bench_model.vocab_size for t in outputs[-1])


def _bound_settings(bench_model, s, n: int, context: int) -> dict:
    bandwidth = s.bandwidth or device_facts()["bandwidth_bytes_per_s"]
    per_token = bench_model.facts["weight_bytes_per_token"]
    return {"generated_tokens": n, "context_tokens": context,
            "weight_bytes_per_token": per_token, "bandwidth_bytes_per_s": bandwidth,
            "bound_tokens_per_s": decode_bound(per_token, bandwidth)}
