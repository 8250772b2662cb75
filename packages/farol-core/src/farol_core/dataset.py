"""Tokenized chat splits, length-sorted batching and the masked loss shared by train and eval."""

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from farol_core import template
from farol_core.errors import FarolError
from farol_core.io import read_jsonl

Example = tuple[list[int], int]  # (token ids, offset of the trained part)
PAD_MULTIPLE = 32


def read_messages(path: str | Path) -> list[list[dict]]:
    """The conversations of a processed split, checked to be well-formed chats."""
    path = Path(path)
    if not path.is_file():  # most often --data names the raw file or a folder not prepared
        raise FarolError(f"No processed split at {path}",
                         hint=f"make it with `invoke prepare --input YOUR.jsonl --out "
                              f"{path.parent}` (farol-data prepare), or pass the --data folder "
                              "that prepare wrote")
    conversations = []
    for lineno, record in read_jsonl(path):
        messages = record.get("messages")
        problem = _chat_problem(messages)
        if problem:
            raise FarolError(
                f"{path}:{lineno}: {problem}",
                hint="processed splits hold {'messages': [...]} records; run `invoke prepare`",
            )
        conversations.append(messages)
    return conversations


def _chat_problem(messages) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "expected a non-empty 'messages' list"
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in template.ROLES:
            return f"each message needs a role in {template.ROLES}"
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return "each message needs non-empty text 'content'"
    if messages[-1]["role"] != "assistant":
        return "the last message must be the assistant's answer"
    return None


def load_split(path: str | Path, tokenizer, mask_prompt: bool = True) -> list[Example]:
    """Tokenize a processed split with Farol's template; offset 0 when masking is off."""
    examples = []
    for messages in read_messages(path):
        tokens, offset = template.encode_for_training(tokenizer, messages)
        examples.append((tokens, offset if mask_prompt else 0))
    if not examples:
        raise FarolError(f"{path} holds no examples", hint="run `invoke prepare`")
    return examples


def batch_order(examples: list[Example], batch_size: int,
                drop_last: bool = True) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little compute goes to padding.

    Training drops the short last batch (every step has the same size); evaluation keeps it.
    """
    if len(examples) < batch_size:
        raise FarolError(
            f"batch_size {batch_size} is larger than the split ({len(examples)} examples)",
            hint="lower training.batch_size or add data",
        )
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    stop = len(order) - batch_size + 1 if drop_last else len(order)
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


def padded_width(lengths: list[int], max_seq_length: int) -> int:
    """Columns of a padded batch: its longest example rounded up to PAD_MULTIPLE, so the
    compiled step sees few distinct shapes."""
    return min(PAD_MULTIPLE * -(-max(lengths) // PAD_MULTIPLE), max_seq_length)


def collate(examples: list[Example], max_seq_length: int) -> tuple[mx.array, mx.array]:
    """Pad a batch. Returns tokens [B, L] and (offset, length) pairs [B, 2]."""
    lengths = [min(len(t), max_seq_length) for t, _ in examples]
    width = padded_width(lengths, max_seq_length)
    arr = np.zeros((len(examples), width), np.int32)
    for row, ((tokens, _), n) in enumerate(zip(examples, lengths, strict=True)):
        arr[row, :n] = tokens[:n]
    spans = [(min(off, n), n) for (_, off), n in zip(examples, lengths, strict=True)]
    return mx.array(arr), mx.array(spans)


def masked_loss(model, tokens: mx.array, spans: mx.array) -> tuple[mx.array, mx.array]:
    """Mean cross-entropy over the trained tokens, and their count.

    Target t is token t+1; it counts when offset <= t+1 < length, so neither the prompt
    (under masking) nor any padding enters the loss. (mlx-lm 0.32's `default_loss` also counts
    the first padding position of each sequence, which would skew loss and perplexity.)
    """
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    logits = model(inputs)  # [B, L-1, vocab]
    pos = mx.arange(1, targets.shape[1] + 1)[None, :]  # [1, L-1]: index of each target token
    mask = (pos >= spans[:, 0:1]) & (pos < spans[:, 1:2])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / mx.maximum(ntoks, 1), ntoks


def spread(batches: list, n: int) -> list:
    """`n` of the length-sorted `batches`, evenly spaced (all of them for n < 0): the first n
    would hold only the shortest examples and bias the loss toward them."""
    if n < 0 or n >= len(batches):
        return batches
    return [batches[int((k + 0.5) * len(batches) / n)] for k in range(n)]  # one per equal slice


def evaluate_loss(model, examples: list[Example], batch_size: int, max_seq_length: int,
                  max_batches: int = -1) -> tuple[float, int]:
    """Token-weighted mean loss over a split (or `max_batches` of its batches, spread over the
    lengths), and the token count."""
    total, count = mx.array(0.0), mx.array(0)
    order = batch_order(examples, min(batch_size, len(examples)), drop_last=False)
    for batch in spread(order, max_batches):
        tokens, spans = collate([examples[i] for i in batch], max_seq_length)
        loss, ntoks = masked_loss(model, tokens, spans)
        total, count = total + loss * ntoks, count + ntoks
        mx.eval(total, count)
    if count.item() == 0:
        raise FarolError("no tokens to evaluate", hint="check the split and max_seq_length")
    return (total / count).item(), int(count.item())
