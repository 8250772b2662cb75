"""LoRA adapters on a frozen (usually 4-bit) base, through mlx-lm's `linear_to_lora_layers`."""

import mlx.nn as nn
from farol_core.errors import FarolError
from mlx.utils import tree_flatten
from mlx_lm.tuner.utils import linear_to_lora_layers


def resolve_keys(model: nn.Module, keys: list[str] | None, num_layers: int) -> list[str] | None:
    """Full module paths inside a block for short names like "q_proj"; None keeps mlx-lm's
    default (every linear layer). A name that matches nothing is an error, not a no-op."""
    if keys is None:
        return None
    names = [name for name, m in model.layers[-1].named_modules()
             if isinstance(m, nn.Linear | nn.QuantizedLinear)]
    resolved, unknown = [], []
    for key in keys:
        hits = [n for n in names if n == key or n.endswith("." + key)]
        if hits:
            resolved.extend(hits)
        else:
            unknown.append(key)
    if unknown or not keys:  # no key at all would leave nothing to train
        raise FarolError(f"LoRA keys not found in the model: {', '.join(unknown)}" if unknown
                         else "lora.keys is empty, so no layer would get an adapter",
                         hint=f"linear layers in a block: {', '.join(names)} (or leave "
                              "lora.keys out to adapt every one)")
    return sorted(set(resolved))


def apply_lora(model: nn.Module, lora: dict) -> dict:
    """Freeze `model`, add adapters as `lora` says, and return mlx-lm's adapter_config."""
    num_layers = lora["num_layers"]
    if num_layers > len(model.layers):
        raise FarolError(f"lora.num_layers is {num_layers} but the model has "
                         f"{len(model.layers)} layers")
    params = {"rank": lora["rank"], "scale": lora["scale"], "dropout": lora["dropout"],
              "keys": resolve_keys(model, lora.get("keys"), num_layers)}
    model.freeze()
    linear_to_lora_layers(model, num_layers, params)
    return {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; quantized weights count as stored elements."""
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    total = sum(v.size for _, v in tree_flatten(model.parameters()))
    return trainable, total
