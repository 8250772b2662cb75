"""Sequence packing: several examples per row, each attending only to itself.

Rows are filled first-fit by decreasing length up to max_seq_length. Each token carries the id
of its example (its segment); attention is causal inside a segment and blocked across segments,
so a packed example sees exactly what it would see alone (RoPE depends only on relative
positions). The loss counts the same tokens `masked_loss` would: the trained part of each
example, never its first token, never padding.
"""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from farol_core.dataset import Example, batch_order, padded_width
from farol_core.errors import FarolError


def pack(examples: list[Example], max_seq_length: int) -> list[list[int]]:
    """Rows of example indices, first-fit decreasing; rows sorted by filled length."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i][0]))
    rows, room = [], []
    for i in order:
        n = min(len(examples[i][0]), max_seq_length)
        slot = next((r for r, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([i])
            room.append(max_seq_length - n)
        else:
            rows[slot].append(i)
            room[slot] -= n
    return [rows[r] for r in np.argsort([-free for free in room], kind="stable")]


def collate_packed(examples: list[Example], rows: list[list[int]], max_seq_length: int):
    """tokens [B, L], segment ids [B, L] (0 is padding) and trained-token flags [B, L]."""
    width = max_seq_length
    tokens = np.zeros((len(rows), width), np.int32)
    segments = np.zeros((len(rows), width), np.int32)
    trained = np.zeros((len(rows), width), bool)
    for b, row in enumerate(rows):
        at = 0
        for seg, i in enumerate(row, start=1):
            ids, offset = examples[i]
            n = min(len(ids), max_seq_length)
            tokens[b, at:at + n], segments[b, at:at + n] = ids[:n], seg
            trained[b, at + max(offset, 1):at + n] = True
            at += n
    return mx.array(tokens), mx.array(segments), mx.array(trained)


def attention_mask(segments: mx.array) -> mx.array:
    """[B, 1, L, L] booleans: causal and within one segment (padding attends to padding)."""
    length = segments.shape[1]
    causal = mx.tril(mx.ones((length, length), dtype=mx.bool_))
    same = segments[:, :, None] == segments[:, None, :]
    return (same & causal)[:, None]


def forward(model: nn.Module, inputs: mx.array, mask: mx.array) -> mx.array:
    """Logits of a llama/mistral-family mlx-lm model under an explicit attention mask: its own
    embedding, blocks, norm and head, called in the order its __call__ uses them."""
    inner = getattr(model, "model", None)
    if not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm")):
        raise FarolError("packing supports llama/mistral-family models only",
                         hint="set training.pack to false")
    h = inner.embed_tokens(inputs)
    for layer in inner.layers:
        h = layer(h, mask)
    h = inner.norm(h)
    if getattr(model, "lm_head", None) is not None:
        return model.lm_head(h)
    return inner.embed_tokens.as_linear(h)


def packed_loss(model, tokens: mx.array, segments: mx.array,
                trained: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over trained tokens of packed rows, and their count."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = forward(model, inputs, attention_mask(segments[:, :-1]))
    mask = trained[:, 1:]
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / mx.maximum(ntoks, 1), ntoks


def real_token_share(examples: list[Example], batch_size: int,
                     max_seq_length: int) -> dict[str, float]:
    """Share of the positions a step computes that hold real tokens: in length-sorted padded
    batches (`unpacked`) and in packed rows (`packed`). With the same cost per position, their
    ratio is the most packing can gain in tokens/s on this data."""
    lengths = [min(len(ids), max_seq_length) for ids, _ in examples]
    batches = batch_order(examples, batch_size)
    real = sum(lengths[i] for batch in batches for i in batch)
    padded = sum(len(b) * padded_width([lengths[i] for i in b], max_seq_length) for b in batches)
    rows = pack(examples, max_seq_length)
    return {"unpacked": real / padded, "packed": sum(lengths) / (len(rows) * max_seq_length)}
