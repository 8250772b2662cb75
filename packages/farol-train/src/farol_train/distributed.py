"""The rank side of data-parallel training on mlx.distributed (see docs/distributed.md).

Every rank runs the same loop on the same global batches, takes its own slice of each one, and
sums token-weighted gradients with MLX's collectives, so a step means what it means on one
machine. Rank 0 alone writes files; the others receive its checkpoint over the same collectives
on resume, and a watchdog thread ends a rank that stops making progress instead of letting it
hang in a collective whose peer died.
"""

import json
import os
import signal
import sys
import threading
import time

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from farol_core.errors import FarolError
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from farol_train import checkpoint as ckpt

WORLD_ENV = "FAROL_WORLD_SIZE"  # set by farol_train.launch for every rank
BACKEND_ENV = "FAROL_DIST_BACKEND"
WATCHDOG_EXIT = 75  # what a rank stopped by the watchdog exits with


def world():
    """The distributed group when this process is one of several ranks started by
    `farol-train run --np/--hosts/--hostfile`, else None (a plain single-process run)."""
    size = int(os.environ.get(WORLD_ENV, "1"))
    if size == 1:
        return None
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the launcher ignores Ctrl+C
    backend = os.environ.get(BACKEND_ENV, "any")
    try:
        group = mx.distributed.init(strict=True, backend=backend)
    except RuntimeError as e:
        raise FarolError(f"mlx.distributed could not start the {backend} backend: {e}",
                         hint="start distributed runs with farol-train run --np/--hosts/"
                              "--hostfile, which sets up every rank through mlx.launch") from None
    if group.size() != size:
        raise FarolError(f"mlx.distributed found {group.size()} ranks, expected {size}")
    return group


def rank_log(rank: int):
    """A log function for ranks other than 0: stderr, each line tagged with the rank."""
    def log(message: str) -> None:
        print(f"[rank {rank}] {message}", file=sys.stderr, flush=True)
    return log


def shard(batch: tuple, rank: int, size: int) -> tuple:
    """This rank's rows of a collated global batch (every array has the batch as axis 0)."""
    rows = batch[0].shape[0] // size
    return tuple(a[rank * rows:(rank + 1) * rows] for a in batch)


def check_batch(batch_size: int, size: int) -> None:
    if batch_size % size:
        raise FarolError(f"training.batch_size {batch_size} does not split over {size} ranks",
                         hint=f"use a batch_size that is a multiple of {size}; it stays the "
                              "global batch, as on one machine")


def combine(value, ntoks, grad, group):
    """Loss, token count and gradient of the whole global batch from each rank's share.

    Each rank's mean loss and gradient are weighted by its share of the trained tokens, so the
    result equals what one process computes on the whole batch (ranks may hold unequal counts).
    """
    total = mx.distributed.all_sum(ntoks.astype(mx.float32), group=group)
    weight = ntoks.astype(mx.float32) / total
    value = mx.distributed.all_sum(value * weight, group=group)
    scale = weight * group.size()  # average_gradients divides the sum by the group size
    grad = nn.average_gradients(tree_map(lambda g: g * scale, grad), group=group)
    return value, total.astype(ntoks.dtype), grad


def any_rank(flag: int, group) -> int:
    """The largest of the ranks' flags: a stop any rank asks for stops them all together."""
    return int(mx.distributed.all_max(mx.array([flag], dtype=mx.int32), group=group).item())


def share_json(obj, group):
    """Rank 0's JSON-serialisable `obj`, on every rank."""
    rank = group.rank()
    data = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if rank == 0 else None
    n = mx.distributed.all_sum(mx.array([len(data) if rank == 0 else 0]), group=group).item()
    mine = mx.array(data.astype(np.int32)) if rank == 0 else mx.zeros((n,), dtype=mx.int32)
    text = np.array(mx.distributed.all_sum(mine, group=group)).astype(np.uint8).tobytes()
    return json.loads(text.decode())


def share_arrays(arrays: dict | None, group) -> dict:
    """Rank 0's flat dict of arrays on every rank (the others may pass None)."""
    rank = group.rank()
    spec = share_json({k: [list(v.shape), str(v.dtype).split(".")[-1]]
                       for k, v in arrays.items()} if rank == 0 else None, group)
    out = {}
    for key, (shape, dtype) in spec.items():
        mine = arrays[key] if rank == 0 else mx.zeros(shape, dtype=getattr(mx, dtype))
        out[key] = mx.distributed.all_sum(mine, group=group)
    mx.eval(out)
    return out


def share_tree(tree, group) -> list:
    """Rank 0's tree of arrays (model parameters, optimizer state) as (name, array) pairs."""
    flat = dict(tree_flatten(tree)) if group.rank() == 0 else None
    return list(share_arrays(flat, group).items())


class Watchdog:
    """Ends this rank when a step, evaluation or save takes longer than `timeout_s`.

    A collective whose peer has died may never return; the ring backend notices a closed socket,
    but not a peer that hangs or a network that drops packets. The loop calls `beat()` as it
    makes progress; once `stopping()` is true (SIGTERM from mlx.launch) the limit is `grace_s`.
    """

    def __init__(self, rank: int, timeout_s: float, stopping=lambda: False, grace_s: float = 10):
        self.rank, self.timeout_s, self.grace_s, self.stopping = rank, timeout_s, grace_s, stopping
        self.last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="farol-watchdog").start()

    def beat(self) -> None:
        self.last = time.monotonic()

    def close(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            limit = self.grace_s if self.stopping() else self.timeout_s
            if time.monotonic() - self.last > limit:
                print(f"error: [rank {self.rank}] no progress for {limit:g} s: another rank "
                      "died or the network stalled; stopping this rank (the last checkpoint "
                      "is kept; run the same command again to resume)",
                      file=sys.stderr, flush=True)
                os._exit(WATCHDOG_EXIT)


class NullLog:
    """What ranks other than 0 use instead of the metrics and step logs: nothing is written."""

    rows: list = []

    def write(self, *args) -> None:
        pass

    def keep_until(self, step: int) -> None:
        pass


def world_rank() -> int:
    """This process's rank as mlx.launch set it (0 outside a distributed run)."""
    return int(os.environ.get("MLX_RANK", "0")) if WORLD_ENV in os.environ else 0


def share_checkpoint(state: dict | None, model, optimizer, pending: dict, group) -> dict | None:
    """Rank 0's checkpoint (state, adapter, optimizer, pending gradient) on every rank, so
    the other hosts need no copy of the run folder."""
    state = share_json(state, group)
    if state is None:
        return None
    model.load_weights(share_tree(model.trainable_parameters(), group), strict=False)
    optimizer.state = tree_unflatten(share_tree(optimizer.state, group))
    if share_json(pending["grad"] is not None, group):
        shared = share_tree(pending["grad"], group)
        pending["grad"] = ckpt.like_trainable(model, dict(shared))
    return state
