"""The checkpoint curve: train and validation loss of every adapter a run saved."""

import json
import math
from pathlib import Path

import numpy as np
from farol_core.dataset import evaluate_loss
from farol_core.errors import FarolError
from farol_core.model import apply_adapter
from farol_core.rundir import ADAPTER_CONFIG, RunDir
from mlx.utils import tree_unflatten
from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

# mlx-lm's adapter layers; each wraps the base layer as .linear (or .embedding)
ADAPTER_LAYERS = (LoRALinear, LoRASwitchLinear, LoRAEmbedding, DoRALinear, DoRAEmbedding)


def train_sample(train: list, size: int, seed: int) -> list:
    """A seeded random subset of the train split, as large as the validation split, so the
    train/val gap compares like with like at the cost of one more validation pass."""
    if len(train) <= size:
        return train
    picks = np.random.default_rng(seed).choice(len(train), size=size, replace=False)
    return [train[i] for i in sorted(picks)]


def use_adapter(model, adapter_dir: str | Path | None):
    """Put `model` in eval mode with exactly one adapter (or none) applied."""
    remove_adapters(model)
    if adapter_dir is not None:
        _check_removable(Path(adapter_dir))
        try:
            apply_adapter(model, adapter_dir)
        except FarolError:
            remove_adapters(model)  # leave the base model whole for what comes next
            raise
    model.eval()


def remove_adapters(model) -> None:
    """Put back the layer that each LoRA or DoRA wrapper in `model` holds. (mlx-lm's
    remove_lora_layers knows only LoRALinear: a DoRA adapter would stay on the "base".)"""
    base = [(name, m.embedding if isinstance(m, LoRAEmbedding | DoRAEmbedding) else m.linear)
            for name, m in model.named_modules() if isinstance(m, ADAPTER_LAYERS)]
    if base:
        model.update_modules(tree_unflatten(base))


def _check_removable(adapter_dir: Path) -> None:
    # A full fine-tune overwrites the base weights in place, so the "base" measured after it
    # would be the tuned model and every gain a silent 0.
    try:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # apply_adapter names what is wrong with the file
    if isinstance(config, dict) and config.get("fine_tune_type") == "full":
        raise FarolError(f"{adapter_dir} holds a full fine-tune, not an adapter: its weights "
                         "would replace the base model's, leaving no base to compare",
                         hint="compare a LoRA or DoRA adapter; to measure a full fine-tune, "
                              "fuse it into a model folder (mlx_lm.fuse) and pass that with "
                              "--model and --base-only")


def curve(model, run_dir, train, valid, batch_size: int, max_seq_length: int,
          log=print) -> dict:
    """Loss per checkpoint and the best one by validation loss (lowest), with its gap. Only
    checkpoints that pass the trainer's own verification are measured."""
    points = []
    for found in RunDir(run_dir).good_checkpoints(warn=log):
        step, folder = found.step, found.path
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
