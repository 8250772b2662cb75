"""A copy of the short run with checkpoints saved at a few real training steps."""

import json
import shutil

import mlx.optimizers as optim
import numpy as np
import pytest
from farol_core.dataset import load_split
from farol_core.model import load_model
from farol_core.rundir import STATE_FILE, RunDir
from farol_eval.evaluate import evaluate, run_config
from farol_train.checkpoint import save_checkpoint
from farol_train.data_order import DataOrder
from farol_train.lora import apply_lora
from farol_train.step import make_step

CHECKPOINT_STEPS = (0, 3)


def save_checkpoints(run_dir, config, trained_dir, steps=CHECKPOINT_STEPS):
    """Train a fresh adapter for max(steps) steps, saving a checkpoint at each of `steps`, then
    add the trained run's own checkpoint of its last step (its final adapter)."""
    model, tokenizer = load_model(config["model"])
    adapter_config = apply_lora(model, config["lora"])
    tcfg = config["training"]
    train = load_split(f"{config['data']}/train.jsonl", tokenizer)
    optimizer = optim.AdamW(learning_rate=tcfg["learning_rate"])
    step = make_step(model, optimizer, 1, False, {"grad": None})
    order = DataOrder(train, tcfg["batch_size"], tcfg["max_seq_length"],
                      np.random.default_rng(0))
    # A trainer state the schema accepts: the trained run's last one, at each step.
    last = RunDir(trained_dir).checkpoint(tcfg["iters"])
    state = json.loads((last / STATE_FILE).read_text(encoding="utf-8"))
    model.train()
    for it in range(max(steps) + 1):
        if it in steps:
            save_checkpoint(run_dir, model, optimizer, adapter_config, {**state, "step": it})
        step(order.next(), True)
    shutil.copytree(last, RunDir(run_dir).checkpoint(tcfg["iters"]))


@pytest.fixture(scope="session")
def run_with_checkpoints(trained_run, tmp_path_factory):
    """(run folder, config): a copy of the short run, with checkpoints/step-NNNNNNN/."""
    result, config = trained_run
    run_dir = tmp_path_factory.mktemp("ckrun") / "test"
    # The fixture controls which checkpoints exist, so the trainer's own are left behind.
    shutil.copytree(result.run_dir, run_dir, ignore=shutil.ignore_patterns("eval", "checkpoints"))
    save_checkpoints(run_dir, run_config(run_dir), result.run_dir)
    return run_dir, config


@pytest.fixture(scope="session")
def evaluated(run_with_checkpoints):
    """(run folder, report) after `evaluate` on the run with checkpoints."""
    run_dir, _ = run_with_checkpoints
    return run_dir, evaluate(run_dir, log=lambda _: None)
