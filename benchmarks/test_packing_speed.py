"""Packing against no packing on the sample data: effective tokens/s (target >= 1.3x).

Effective tokens are the trained, non-padding tokens (metrics.jsonl's definition). Same model,
batch size and max_seq_length; the rate is duration-weighted over the report windows after the
first (which holds the compilation). With --benchmark-disable each mode runs once, briefly.
"""

import json

from farol_train import train

from tests.conftest import processed, tiny_4bit, tiny_model  # noqa: F401 (session fixtures)

REPORT = 4


def effective_rate(run_dir) -> float:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    seconds = [REPORT / r["iterations_per_second"] for r in rows]
    tokens = [r["tokens_per_second"] * s for r, s in zip(rows, seconds, strict=True)]
    return sum(tokens) / sum(seconds)


def run_both(model, data, tmp_path, iters: int) -> dict:
    rates = {}
    for pack in (False, True):
        result = train({"name": f"pack-{pack}", "model": str(model), "data": str(data),
                        "runs_dir": str(tmp_path), "lora": {"num_layers": 2, "rank": 4},
                        "training": {"iters": iters, "batch_size": 4, "max_seq_length": 256,
                                     "pack": pack, "steps_per_report": REPORT,
                                     "steps_per_eval": 10**6, "save_every": 10**6}},
                       log=lambda _: None, fresh=True)
        rates[pack] = effective_rate(result.run_dir)
    return {"unpacked_tokens_per_s": rates[False], "packed_tokens_per_s": rates[True],
            "ratio": rates[True] / rates[False]}


def test_packing_vs_no_packing(benchmark, tiny_4bit, processed, tmp_path):  # noqa: F811
    iters = 8 if benchmark.disabled else 32  # the suite runs it once, briefly
    result = benchmark.pedantic(run_both, args=(tiny_4bit, processed, tmp_path, iters),
                                rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\npacked {result['packed_tokens_per_s']:.0f} tok/s, unpacked "
          f"{result['unpacked_tokens_per_s']:.0f} tok/s, ratio {result['ratio']:.2f}")
    assert result["packed_tokens_per_s"] > 0 and result["unpacked_tokens_per_s"] > 0
