"""QLoRA training: Farol's own loop on mlx-lm's model loading and LoRA layers."""

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from farol_core.config import load_config, merge
from farol_core.dataset import evaluate_loss, iterate_batches, load_split, masked_loss
from farol_core.io import write_json
from farol_core.model import load_model
from mlx.utils import tree_map
from mlx_lm.tuner.trainer import grad_checkpoint
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from farol_train.checkpoint import save_adapter
from farol_train.lora import apply_lora, count_parameters
from farol_train.metrics import MetricsLog


@dataclass
class TrainResult:
    """Where the run went and how its loss moved."""

    run_dir: Path
    steps: int
    first_loss: float
    last_loss: float
    val_loss: float | None
    trainable_parameters: int


def resolve(config=None, iters: int | None = None, **overrides) -> dict:
    """The validated run config: file or dict, then `overrides` (nested dicts merge), then
    `iters`, the override asked for most often."""
    return load_config("train", config, merge(overrides, {"training": {"iters": iters}}))


def learning_rate_schedule(training: dict):
    """Linear warmup, then cosine decay to a tenth of the peak over the remaining steps."""
    lr, warmup, iters = training["learning_rate"], training["warmup_steps"], training["iters"]
    decay = optim.cosine_decay(lr, max(iters - warmup, 1), end=lr / 10)
    if warmup == 0:
        return decay
    return optim.join_schedules([optim.linear_schedule(0.0, lr, warmup), decay], [warmup])


def train(config=None, log=print, **overrides) -> TrainResult:
    """Train the adapter a run config describes and write everything to runs/<name>/."""
    cfg = resolve(config, **overrides)
    tcfg, run_dir = cfg["training"], Path(cfg["runs_dir"]) / cfg["name"]
    model, tokenizer = load_model(cfg["model"])
    data = Path(cfg["data"])
    train_set = load_split(data / "train.jsonl", tokenizer, tcfg["mask_prompt"])
    valid_set = load_split(data / "valid.jsonl", tokenizer, tcfg["mask_prompt"])
    adapter_config = apply_lora(model, cfg["lora"])
    trainable, total = count_parameters(model)
    log(f"{len(train_set)} train / {len(valid_set)} valid examples; "
        f"{trainable:,} trainable parameters ({100 * trainable / total:.2f}% of {total:,})")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", cfg)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    metrics = MetricsLog(run_dir / "metrics.jsonl")

    mx.random.seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    optimizer = optim.AdamW(learning_rate=learning_rate_schedule(tcfg))
    step = make_step(model, optimizer, tcfg["grad_accumulation_steps"], tcfg["grad_checkpoint"])
    evaluate = partial(evaluate_loss, model, valid_set, tcfg["batch_size"],
                       tcfg["max_seq_length"], tcfg["val_batches"])

    losses, val_loss, window = [], None, Window()
    model.train()
    with _progress() as bar:
        task = bar.add_task("training", total=tcfg["iters"], loss=float("nan"))
        for it, (tokens, spans) in enumerate(_batches(train_set, tcfg, rng), start=1):
            loss, ntoks = step(tokens, spans, it % tcfg["grad_accumulation_steps"] == 0)
            window.add(loss, ntoks)
            if it % tcfg["steps_per_eval"] == 0 or it == tcfg["iters"]:
                val_loss = _validate(model, evaluate)
            if it % tcfg["steps_per_report"] == 0 or it == tcfg["iters"]:
                row = window.report(it, len(train_set) // tcfg["batch_size"], optimizer, val_loss)
                metrics.write(row)
                losses.append(row["train_loss"])
                bar.update(task, loss=row["train_loss"])
            if it % tcfg["save_every"] == 0:
                save_adapter(model, run_dir, adapter_config)
            bar.advance(task)
            if it == tcfg["iters"]:
                break
    save_adapter(model, run_dir, adapter_config)
    return TrainResult(run_dir, tcfg["iters"], losses[0], losses[-1], val_loss, trainable)


def make_step(model, optimizer, accumulation: int, checkpointing: bool):
    """A compiled step: forward, backward and, every `accumulation` calls, an update."""
    if checkpointing:
        grad_checkpoint(model.layers[0])  # patches the block class, so every block recomputes
    loss_and_grad = nn.value_and_grad(model, masked_loss)
    state = [model.state, optimizer.state, mx.random.state]
    pending = {"grad": None}

    @partial(mx.compile, inputs=state, outputs=state)
    def forward_backward(tokens, spans):
        (loss, ntoks), grad = loss_and_grad(model, tokens, spans)
        return loss, ntoks, grad

    def step(tokens, spans, update: bool):
        loss, ntoks, grad = forward_backward(tokens, spans)
        if pending["grad"] is not None:
            grad = tree_map(lambda a, b: a + b, grad, pending["grad"])
        if update:
            optimizer.update(model, tree_map(lambda g: g / accumulation, grad))
            grad = None
        pending["grad"] = grad
        mx.eval(loss, ntoks, model.state, optimizer.state, pending["grad"])
        return loss.item(), int(ntoks.item())

    return step


class Window:
    """Loss, tokens and time since the last report, turned into one metrics row."""

    def __init__(self):
        self.start = self.tic = time.perf_counter()
        self.loss_sum = self.tokens = self.steps = self.trained = 0

    def add(self, loss: float, ntoks: int) -> None:
        self.loss_sum += loss * ntoks
        self.tokens += ntoks
        self.steps += 1

    def report(self, it: int, steps_per_epoch: int, optimizer, val_loss) -> dict:
        now = time.perf_counter()
        seconds, self.trained = now - self.tic, self.trained + self.tokens
        row = {
            "step": it,
            "epoch": round(it / max(steps_per_epoch, 1), 3),
            "train_loss": self.loss_sum / max(self.tokens, 1),
            "val_loss": val_loss,
            "learning_rate": optimizer.learning_rate.item(),
            "tokens_per_second": self.tokens / seconds,
            "iterations_per_second": self.steps / seconds,
            "trained_tokens": self.trained,
            "peak_memory_gb": mx.get_peak_memory() / 1e9,
            "wall_time_s": now - self.start,
        }
        self.tic, self.loss_sum, self.tokens, self.steps = now, 0, 0, 0
        return row


def _batches(train_set, tcfg, rng):
    while True:  # epochs, each in a fresh shuffled order
        yield from iterate_batches(train_set, tcfg["batch_size"], tcfg["max_seq_length"], rng)


def _validate(model, evaluate) -> float:
    model.eval()
    loss, _ = evaluate()
    model.train()
    return loss


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn())
