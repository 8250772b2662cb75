"""Loss per held-out example, so that base and tuned losses can be compared in pairs."""

import math

import mlx.core as mx
import numpy as np
from farol_core.dataset import Example, collate, masked_loss
from farol_core.errors import FarolError


def example_losses(model, examples: list[Example], max_seq_length: int) -> dict:
    """Summed cross-entropy ("sums") and counted tokens ("counts") of each example, through
    Farol's masked_loss one example at a time; the split's loss is sum(sums) / sum(counts),
    the same token-weighted mean as `farol_core.dataset.evaluate_loss`."""
    sums, counts = [], []
    for example in examples:
        tokens, spans = collate([example], max_seq_length)
        loss, ntoks = masked_loss(model, tokens, spans)
        mx.eval(loss, ntoks)
        sums.append(loss.item() * int(ntoks.item()))
        counts.append(int(ntoks.item()))
    if sum(counts) == 0:
        raise FarolError("no tokens to evaluate", hint="check the split and max_seq_length")
    return {"sums": np.array(sums), "counts": np.array(counts)}


def split_loss(per_example: dict) -> dict:
    """Loss, perplexity and token count of a split from its per-example losses."""
    loss = float(per_example["sums"].sum() / per_example["counts"].sum())
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": int(per_example["counts"].sum())}
