"""Run on every rank by test_distributed: the combined gradient of a global batch's shards
against the whole batch's gradient computed locally. Prints one JSON line per rank."""

import json
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from farol_core.dataset import load_split, masked_loss
from farol_core.model import load_model
from farol_train import distributed
from farol_train.data_order import DataOrder
from farol_train.lora import apply_lora
from mlx.utils import tree_flatten, tree_map

group = distributed.world()
model, tokenizer = load_model(sys.argv[1])
examples = load_split(f"{sys.argv[2]}/train.jsonl", tokenizer, True)
mx.random.seed(0)
apply_lora(model, {"num_layers": 1, "rank": 4, "scale": 20.0, "dropout": 0.0, "keys": None})
model.update(tree_map(lambda p: p + 0.01, model.trainable_parameters()))  # lora_b != 0
batch = DataOrder(examples, 4, 64, np.random.default_rng(1)).next()
loss_and_grad = nn.value_and_grad(model, masked_loss)
(whole, whole_tokens), whole_grad = loss_and_grad(model, *batch)
(loss, tokens), grad = loss_and_grad(model, *distributed.shard(batch, group.rank(), 2))
own = tokens.item()
loss, tokens, grad = distributed.combine(loss, tokens, grad, group)
pairs = zip(tree_flatten(grad), tree_flatten(whole_grad), strict=True)
print(json.dumps({"rank": group.rank(), "own_tokens": own, "tokens": [tokens.item(),
                  whole_tokens.item()], "loss": [loss.item(), whole.item()],
                  "grad_diff": max(mx.abs(a - b).max().item() for (_, a), (_, b) in pairs),
                  "grad_max": max(mx.abs(g).max().item() for _, g in tree_flatten(whole_grad))}),
      flush=True)
