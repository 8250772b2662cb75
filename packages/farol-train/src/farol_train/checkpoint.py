"""Adapter files written so that a crash mid-save never leaves a broken adapter behind."""

import os
from pathlib import Path

import mlx.core as mx
from farol_core.io import write_json
from mlx.utils import tree_flatten

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def save_adapter(model, folder: Path, adapter_config: dict) -> Path:
    """Write the trainable weights and mlx-lm's adapter_config.json into `folder`, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = dict(tree_flatten(model.trainable_parameters()))
    tmp = folder / f".{ADAPTER_FILE}.tmp.safetensors"
    mx.save_safetensors(str(tmp), weights)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, folder / ADAPTER_FILE)
    write_json(folder / ADAPTER_CONFIG, adapter_config)
    return folder / ADAPTER_FILE
