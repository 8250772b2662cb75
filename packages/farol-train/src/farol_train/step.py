"""The compiled training step and the learning-rate schedule it follows."""

from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from farol_core.dataset import masked_loss
from mlx.utils import tree_map
from mlx_lm.tuner.trainer import grad_checkpoint

from farol_train import distributed


def learning_rate_schedule(training: dict):
    """Linear warmup over `warmup_steps`, then cosine decay to a tenth of the peak by `iters`.

    The optimizer advances the schedule once per update, every `grad_accumulation_steps`
    steps, so both lengths are turned into updates."""
    every, lr = training["grad_accumulation_steps"], training["learning_rate"]
    warmup, iters = -(-training["warmup_steps"] // every), training["iters"] // every
    decay = optim.cosine_decay(lr, max(iters - warmup, 1), end=lr / 10)
    if warmup == 0:
        return decay
    return optim.join_schedules([optim.linear_schedule(0.0, lr, warmup), decay], [warmup])



def make_step(model, optimizer, accumulation: int, checkpointing: bool, pending: dict,
              loss=masked_loss, group=None, max_grad_norm: float | None = None):
    """A compiled step: forward, backward and, every `accumulation` calls, an update.

    `pending["grad"]` holds the gradient summed since the last update (a checkpoint saves it).
    With a distributed `group`, loss, tokens and gradient are those of the whole global batch.
    """
    if checkpointing:
        grad_checkpoint(model.layers[0])  # patches the block class, so every block recomputes
    loss_and_grad = nn.value_and_grad(model, loss)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def compiled(batch, previous, update):
        (value, ntoks), grad = loss_and_grad(model, *batch)
        if group is not None:
            value, ntoks, grad = distributed.combine(value, ntoks, grad, group)
        if previous is not None:
            grad = tree_map(lambda a, b: a + b, grad, previous)
        if update:  # a Python bool: compiled once for each value
            grad = tree_map(lambda g: g / accumulation, grad)
            if max_grad_norm:  # clip the update's gradient, the accumulated mean, as a whole
                grad, _ = optim.clip_grad_norm(grad, max_grad_norm)
            optimizer.update(model, grad)
            grad = None
        return value, ntoks, grad

    def step(batch: tuple, update: bool):
        value, ntoks, pending["grad"] = compiled(batch, pending["grad"], update)
        mx.eval(value, ntoks, model.state, optimizer.state, pending["grad"])
        return value.item(), int(ntoks.item())

    return step
