"""The order training batches come in, as a small state that a checkpoint can save and restore,
and the checks on the examples that go into it."""

import hashlib
import json

import numpy as np
from farol_core.dataset import Example, batch_order, collate
from farol_core.errors import FarolError

from farol_train.packing import collate_packed, pack


def trained_tokens(example: Example, max_seq_length: int) -> int:
    """Tokens the loss counts once the example is cut at `max_seq_length`: targets at positions
    1 .. n-1 from the offset on, the rule of farol_core.dataset.masked_loss."""
    tokens, offset = example
    return max(min(len(tokens), max_seq_length) - max(offset, 1), 0)


def answerable(examples: list[Example], max_seq_length: int, split: str, log=print) -> list:
    """`examples`, after checking how many keep a trained token at `max_seq_length`.

    Cut examples are only reported (mlx-lm's trainer cuts them too), but when none keeps an
    answer token the run could only make steps that train nothing, so that is an error."""
    empty = sum(trained_tokens(e, max_seq_length) == 0 for e in examples)
    longest = max(len(t) for t, _ in examples)
    if empty == len(examples):
        raise FarolError(f"no {split} example keeps an answer token within "
                         f"training.max_seq_length {max_seq_length}",
                         hint=f"raise training.max_seq_length (the longest {split} example "
                              f"is {longest} tokens)")
    cut = sum(len(t) > max_seq_length for t, _ in examples)
    if cut:
        log(f"warning: {cut} of {len(examples)} {split} examples are longer than "
            f"max_seq_length {max_seq_length} and are cut; {empty} of them keep no answer "
            f"token and add nothing to the loss (the longest is {longest} tokens)")
    return examples


def fingerprint(examples: list[Example]) -> str:
    """A digest of the tokenized examples, so a resume can tell data changed at the same path."""
    return hashlib.sha256(json.dumps(examples).encode()).hexdigest()[:16]


class DataOrder:
    """Epochs of length-sorted batches, each epoch in a fresh shuffled order.

    The state is the epoch, the index of the next batch in it, and the numpy Generator's state
    at the start of the epoch: restoring it redraws the same permutation, so a resumed run sees
    exactly the batches an uninterrupted one would.
    """

    def __init__(self, examples: list[Example], batch_size: int, max_seq_length: int,
                 rng: np.random.Generator, packed: bool = False):
        self.examples, self.max_seq_length, self.rng = examples, max_seq_length, rng
        self.rows = pack(examples, max_seq_length) if packed else None
        if packed and len(self.rows) < batch_size:
            raise FarolError(f"packing makes {len(self.rows)} rows, fewer than batch_size "
                             f"{batch_size}", hint="lower training.batch_size or turn off pack")
        self.batches = [list(range(i, i + batch_size))
                        for i in range(0, len(self.rows) - batch_size + 1, batch_size)] \
            if packed else batch_order(examples, batch_size)
        self.epoch, self.index = 0, 0
        self._start_epoch()

    @property
    def steps_per_epoch(self) -> int:
        return len(self.batches)

    def next(self):
        """The next batch, collated: tokens [B, L] and (offset, length) spans [B, 2]; packed:
        tokens, segment ids and trained-token flags (see packing.collate_packed)."""
        if self.index == len(self.permutation):
            self.epoch, self.index = self.epoch + 1, 0
            self._start_epoch()
        batch = self.batches[self.permutation[self.index]]
        self.index += 1
        if self.rows is not None:
            return collate_packed(self.examples, [self.rows[r] for r in batch],
                                  self.max_seq_length)
        return collate([self.examples[i] for i in batch], self.max_seq_length)

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "rng": self.epoch_rng_state,
                "batches": len(self.batches)}

    def restore(self, state: dict) -> None:
        """Continue from a saved state; the batch count must match (same data and batch size)."""
        self.rng.bit_generator.state = state["rng"]
        self.epoch = state["epoch"]
        self._start_epoch()
        self.index = state["index"]

    def _start_epoch(self) -> None:
        self.epoch_rng_state = self.rng.bit_generator.state
        self.permutation = self.rng.permutation(len(self.batches))
