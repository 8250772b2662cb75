import json
import math

import mlx.core as mx
import pytest
from farol_core.dataset import batch_order, collate, evaluate_loss, load_split, masked_loss, spread
from farol_core.errors import FarolError


def uniform(tiny_model):
    """The tiny mlx-lm model with its final norm zeroed: every logit is exactly 0, so each
    counted token costs log(vocab) whatever the input."""
    from farol_core.model import load_model

    model, _ = load_model(tiny_model)
    model.model.norm.weight = mx.zeros_like(model.model.norm.weight)
    return model


def test_masked_loss_counts_answer_tokens_and_no_padding(tiny_model):
    # 5 real tokens, prompt = first 2; targets are tokens 2, 3, 4 -> exactly 3 counted.
    model = uniform(tiny_model)
    tokens, spans = collate([([1, 2, 3, 4, 5], 2)], max_seq_length=64)
    assert tokens.shape == (1, 32)  # padded to a multiple of 32
    loss, ntoks = masked_loss(model, tokens, spans)
    assert ntoks.item() == 3
    assert loss.item() == pytest.approx(math.log(model.args.vocab_size), rel=1e-5)


def test_without_masking_every_next_token_counts(tiny_model):
    tokens, spans = collate([([1, 2, 3, 4, 5], 0), ([1, 2], 0)], max_seq_length=64)
    _, ntoks = masked_loss(uniform(tiny_model), tokens, spans)
    assert ntoks.item() == 4 + 1


def test_batches_are_length_sorted_and_keep_the_tail_on_request():
    examples = [([0] * n, 0) for n in (9, 3, 7, 1, 5)]
    assert batch_order(examples, 2) == [[3, 1], [4, 2]]
    assert batch_order(examples, 2, drop_last=False)[-1] == [0]
    with pytest.raises(FarolError, match="larger than the split"):
        batch_order(examples, 6)


def test_a_few_validation_batches_cover_every_length_not_the_shortest():
    # Length-sorted batches: taking the first n would score only the shortest examples.
    batches = [[i] for i in range(10)]
    assert spread(batches, 2) == [[2], [7]]
    assert spread(batches, 5) == [[1], [3], [5], [7], [9]]
    assert spread(batches, -1) == spread(batches, 10) == spread(batches, 99) == batches


def test_evaluate_loss_uses_the_spread_batches(tiny_model):
    from farol_core.model import load_model

    model, _ = load_model(tiny_model)
    examples = [(list(range(1, n + 1)), 0) for n in (4, 8, 16, 24, 40)]
    _, counted = evaluate_loss(model, examples, 1, 64, max_batches=2)
    # One batch from the middle of each half of the lengths (8 and 24), not the two shortest.
    assert counted == (8 - 1) + (24 - 1)


def test_a_malformed_line_names_file_and_line(tmp_path, tiny_model):
    from farol_core.model import load_model

    _, tok = load_model(tiny_model)
    path = tmp_path / "train.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(FarolError, match=r"train.jsonl:2: not valid JSON"):
        load_split(path, tok)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "só pergunta"}]}) + "\n")
    with pytest.raises(FarolError, match=r"train.jsonl:1: the last message must be"):
        load_split(path, tok)


def test_a_missing_split_names_the_prepare_command(tmp_path):
    # `--data data/raw.jsonl` or an unprepared folder said only "File not found".
    with pytest.raises(FarolError) as caught:
        load_split(tmp_path / "raw" / "train.jsonl", None)
    assert caught.value.message == f"No processed split at {tmp_path / 'raw' / 'train.jsonl'}"
    assert f"--out {tmp_path / 'raw'}" in caught.value.hint
