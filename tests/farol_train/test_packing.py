"""Packing: a packed row scores each example exactly as it would score alone."""

import mlx.core as mx
import numpy as np
from farol_core.dataset import collate, load_split, masked_loss
from farol_core.io import read_log
from farol_core.model import load_model
from farol_train import train
from farol_train.packing import collate_packed, pack, packed_loss, real_token_share


def test_packed_loss_equals_the_examples_scored_alone(tiny_4bit, processed):
    model, tokenizer = load_model(str(tiny_4bit))
    examples = load_split(processed / "valid.jsonl", tokenizer)[:5]
    rows = pack(examples, 512)
    assert sorted(i for row in rows for i in row) == list(range(5))
    assert len(rows) < 5  # several examples share a row
    loss, ntoks = packed_loss(model, *collate_packed(examples, rows, 512))
    total, count = 0.0, 0
    for ex in examples:
        one, n = masked_loss(model, *collate([ex], 512))
        total, count = total + one.item() * n.item(), count + n.item()
    assert ntoks.item() == count
    np.testing.assert_allclose(loss.item(), total / count, rtol=1e-4)


def test_a_packed_run_trains_and_resumes(tiny_4bit, processed, tmp_path):
    config = {"name": "packed", "seed": 0, "model": str(tiny_4bit), "data": str(processed),
              "runs_dir": str(tmp_path), "lora": {"num_layers": 1, "rank": 4},
              "training": {"iters": 4, "batch_size": 2, "max_seq_length": 256, "pack": True,
                           "learning_rate": 3e-3, "steps_per_report": 2, "steps_per_eval": 4,
                           "val_batches": 1, "save_every": 2}}
    first = train(config, log=lambda _: None)
    assert first.steps == 4 and np.isfinite(first.last_loss)
    steps = [r for r in (tmp_path / "packed" / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 4
    more = train(config, iters=6, log=lambda _: None)
    assert more.resumed_from == 4 and more.steps == 6
    rows = read_log(tmp_path / "packed" / "steps.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # 5 and 6 continue the first run
    assert all(np.isfinite(r["loss"]) for r in rows)
    weights = mx.load(str(tmp_path / "packed" / "adapters.safetensors"))
    assert weights and {k.rsplit(".", 1)[1] for k in weights} == {"lora_a", "lora_b"}


def test_real_token_share_of_padded_batches_and_packed_rows():
    examples = [(list(range(n)), 0) for n in (10, 20, 30, 40)]
    share = real_token_share(examples, batch_size=2, max_seq_length=64)
    # batches [10, 20] padded to 32 and [30, 40] padded to 64; rows {40, 20} and {30, 10} of 64
    assert share["unpacked"] == 100 / (2 * 32 + 2 * 64)
    assert share["packed"] == 100 / (2 * 64)
