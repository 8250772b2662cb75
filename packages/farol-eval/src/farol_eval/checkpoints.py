"""The checkpoint curve: train and validation loss of every adapter a run saved."""

import math
import re
from pathlib import Path

import numpy as np
from farol_core.dataset import evaluate_loss
from farol_core.errors import FarolError
from farol_core.model import ADAPTER_FILES, apply_adapter
from mlx_lm.tuner.utils import remove_lora_layers

STEP_DIR = re.compile(r"^step-(\d{7})$")


def find_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of each complete checkpoint under runs/<name>/checkpoints/, by step."""
    root = Path(run_dir) / "checkpoints"
    found = []
    for folder in root.glob("step-*") if root.is_dir() else []:
        match = STEP_DIR.match(folder.name)
        if match and all((folder / f).is_file() for f in ADAPTER_FILES):
            found.append((int(match.group(1)), folder))
    return sorted(found)


def train_sample(train: list, size: int, seed: int) -> list:
    """A seeded random subset of the train split, as large as the validation split, so the
    train/val gap compares like with like at the cost of one more validation pass."""
    if len(train) <= size:
        return train
    picks = np.random.default_rng(seed).choice(len(train), size=size, replace=False)
    return [train[i] for i in sorted(picks)]


def use_adapter(model, adapter_dir: str | Path | None):
    """Put `model` in eval mode with exactly one adapter (or none) applied."""
    remove_lora_layers(model)
    if adapter_dir is not None:
        try:
            apply_adapter(model, adapter_dir)
        except FarolError:
            remove_lora_layers(model)  # leave the base model whole for what comes next
            raise
    model.eval()


def curve(model, run_dir, train, valid, batch_size: int, max_seq_length: int,
          log=print) -> dict:
    """Loss per checkpoint and the best one by validation loss (lowest), with its gap."""
    points = []
    for step, folder in find_checkpoints(run_dir):
        log(f"checkpoint step {step} ...")
        try:
            use_adapter(model, folder)
        except FarolError as e:  # one broken checkpoint must not sink the whole report
            log(f"warning: skipping checkpoint {folder.name}: {e.message}")
            continue
        t_loss, _ = evaluate_loss(model, train, batch_size, max_seq_length)
        v_loss, _ = evaluate_loss(model, valid, batch_size, max_seq_length)
        points.append({"step": step, "path": str(folder), "train_loss": t_loss,
                       "valid_loss": v_loss, "valid_perplexity": math.exp(v_loss),
                       "gap": v_loss - t_loss})
    best = min(points, key=lambda p: p["valid_loss"]) if points else None
    return {"train_examples": len(train), "valid_examples": len(valid), "points": points,
            "best": best}
