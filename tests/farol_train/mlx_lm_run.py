"""Train an adapter with mlx-lm's own trainer (mlx_lm.tuner.train), for interop and benchmarks."""

import json
import types
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
from mlx_lm import load
from mlx_lm.tuner.callbacks import TrainingCallback
from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset
from mlx_lm.tuner.trainer import TrainingArgs
from mlx_lm.tuner.trainer import train as mlx_lm_train
from mlx_lm.tuner.utils import linear_to_lora_layers


class Reports(TrainingCallback):
    """Keeps mlx-lm's training reports (loss, tokens_per_second, ...)."""

    def __init__(self):
        self.rows = []

    def on_train_loss_report(self, train_info: dict):
        self.rows.append(train_info)


def train_with_mlx_lm(model_path, data, out, iters=10, batch_size=4, max_seq_length=256,
                      num_layers=2, rank=4, learning_rate=3e-3, steps_per_report=5,
                      seed=0) -> list[dict]:
    """A LoRA adapter in `out` trained by mlx-lm alone; returns its training reports."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mx.random.seed(seed)
    model, tokenizer = load(str(model_path))
    model.freeze()
    params = {"rank": rank, "scale": 20.0, "dropout": 0.0}
    linear_to_lora_layers(model, num_layers, params)
    (out / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params}))
    config = types.SimpleNamespace(mask_prompt=True)
    train_set, valid_set, _ = load_local_dataset(Path(data), tokenizer, config)
    args = TrainingArgs(batch_size=batch_size, iters=iters, val_batches=1,
                        steps_per_report=steps_per_report, steps_per_eval=10**9,
                        steps_per_save=10**9, max_seq_length=max_seq_length,
                        adapter_file=str(out / "adapters.safetensors"))
    reports = Reports()
    mlx_lm_train(model, optim.AdamW(learning_rate=learning_rate), CacheDataset(train_set),
                 CacheDataset(valid_set), args=args, training_callback=reports)
    return reports.rows
