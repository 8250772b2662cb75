"""Packing against no packing on the sample data: effective tokens/s (target >= 1.3x).

Effective tokens are the trained, non-padding tokens (metrics.jsonl's definition). Same model,
batch size and max_seq_length; the rate is duration-weighted over the report windows after the
first (which holds the compilation). With --benchmark-disable each mode runs once, briefly.

Beside the ratio it records the share of computed positions that hold real tokens in each mode
(`real_token_share`): packing cannot beat their ratio unless a packed position costs less.

It runs on two models. `tiny` (hidden 128) is the embedded one; attention over a 256-token
packed row is a large share of its work, so a packed position costs more than a padded one.
`wide` (hidden 512, two layers) is closer to a real model in that respect (attention over 256
tokens is under a tenth of a block's work); it is slow on CPU, so it runs only when enabled.
"""

import json

import pytest
from farol_core.dataset import load_split
from farol_core.model import load_tokenizer
from farol_core.tiny import TINY_SHAPE, create_tiny_model
from farol_data import texts
from farol_train import quantize, train
from farol_train.packing import real_token_share

from tests.conftest import SAMPLE_BIOS, SAMPLE_QA

REPORT = 4
WIDE_SHAPE = {**TINY_SHAPE, "hidden_size": 512, "num_hidden_layers": 2, "intermediate_size": 1408,
              "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64}


@pytest.fixture(scope="session")
def wide_4bit(tmp_path_factory):
    wide = create_tiny_model(tmp_path_factory.mktemp("models") / "wide",
                             texts([SAMPLE_QA], SAMPLE_BIOS), shape=WIDE_SHAPE)
    return quantize(wide, wide.parent / "wide-4bit")


def effective_rate(run_dir) -> float:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()][1:]
    seconds = [REPORT / r["iterations_per_second"] for r in rows]
    tokens = [r["tokens_per_second"] * s for r, s in zip(rows, seconds, strict=True)]
    return sum(tokens) / sum(seconds)


BATCH, MAX_SEQ = 4, 256


def run_both(model, data, tmp_path, iters: int) -> dict:
    rates = {}
    for pack in (False, True):
        result = train({"name": f"pack-{pack}", "model": str(model), "data": str(data),
                        "runs_dir": str(tmp_path), "lora": {"num_layers": 2, "rank": 4},
                        "training": {"iters": iters, "batch_size": BATCH, "max_seq_length": MAX_SEQ,
                                     "pack": pack, "steps_per_report": REPORT,
                                     "steps_per_eval": 10**6, "save_every": 10**6}},
                       log=lambda _: None, fresh=True)
        rates[pack] = effective_rate(result.run_dir)
    share = real_token_share(load_split(data / "train.jsonl", load_tokenizer(model)), BATCH,
                             MAX_SEQ)
    return {"unpacked_tokens_per_s": rates[False], "packed_tokens_per_s": rates[True],
            "ratio": rates[True] / rates[False], "unpacked_real_share": share["unpacked"],
            "packed_real_share": share["packed"],
            "padding_bound": share["packed"] / share["unpacked"]}


@pytest.mark.parametrize("model", ["tiny", pytest.param("wide", marks=pytest.mark.slow)])
def test_packing_vs_no_packing(model, benchmark, processed, tmp_path, request):
    if model == "wide" and benchmark.disabled:
        pytest.skip("the wide model takes minutes on CPU; it runs with --benchmark-enable")
    iters = 8 if benchmark.disabled else {"tiny": 32, "wide": 12}[model]
    path = request.getfixturevalue(f"{model}_4bit")
    result = benchmark.pedantic(run_both, args=(path, processed, tmp_path, iters),
                                rounds=1, iterations=1)
    facts = ("unpacked_real_share", "packed_real_share", "padding_bound")  # of the data, not speed
    benchmark.extra_info.update({k: v for k, v in result.items() if k not in facts})
    benchmark.extra_info["settings"] = {k: result[k] for k in facts}
    print(f"\npacked {result['packed_tokens_per_s']:.0f} tok/s, unpacked "
          f"{result['unpacked_tokens_per_s']:.0f} tok/s, ratio {result['ratio']:.2f}; real tokens "
          f"{result['unpacked_real_share']:.1%} of positions unpacked, "
          f"{result['packed_real_share']:.1%} packed (bound {result['padding_bound']:.2f}x)")
    assert result["packed_tokens_per_s"] > 0 and result["unpacked_tokens_per_s"] > 0
