import json
import math

import mlx.core as mx
import pytest
from farol_core.dataset import batch_order, collate, load_split, masked_loss
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
