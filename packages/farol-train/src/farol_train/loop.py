"""QLoRA training: Farol's own loop on mlx-lm's model loading and LoRA layers.

A run resumes by itself from its newest good checkpoint, and a resumed run repeats exactly what
an uninterrupted one would do: the adapter, optimizer and accumulated gradient are restored, the
data order continues from the saved epoch and batch, and MLX's random stream is reseeded from
(seed, step) before every step.
"""

import json
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from farol_core.config import ConfigError, load_config, merge
from farol_core.dataset import evaluate_loss, load_split, masked_loss
from farol_core.errors import FarolError, Interrupted
from farol_core.io import atomic_write_text, write_json
from farol_core.model import load_model
from mlx.utils import tree_flatten, tree_map, tree_unflatten
from mlx_lm.tuner.trainer import grad_checkpoint
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from farol_train import checkpoint as ckpt
from farol_train import distributed
from farol_train.data_order import DataOrder, answerable, fingerprint
from farol_train.guards import MemoryGuard, StopRequest, check_finite
from farol_train.lora import apply_lora, count_parameters
from farol_train.metrics import MetricsLog, StepLog
from farol_train.packing import packed_loss

# Settings that must match for a checkpoint to be resumed (the rest may change between runs).
RESUME_KEYS = {"model": None, "data": None, "seed": None, "lora": None,
               "training": ["batch_size", "max_seq_length", "mask_prompt", "pack",
                            "grad_accumulation_steps", "learning_rate", "warmup_steps"]}
# Names that configs carried over from PEFT or Hugging Face's Trainer use, and Farol's key.
FOREIGN_KEYS = {"r": "lora.rank", "lora_rank": "lora.rank", "lora_alpha": "lora.alpha",
                "lora_dropout": "lora.dropout", "target_modules": "lora.keys",
                "num_epochs": "training.epochs", "num_train_epochs": "training.epochs",
                "gradient_accumulation_steps": "training.grad_accumulation_steps",
                "gradient_checkpointing": "training.grad_checkpoint",
                # mlx-lm's own lora config file, and the keys old scripts passed to its calls
                "lora_parameters": "lora (rank, scale, dropout, keys)",
                "num_layers": "lora.num_layers", "lora_layers": "lora.num_layers",
                "max_length": "training.max_seq_length", "max_seq_len": "training.max_seq_length",
                "per_device_train_batch_size": "training.batch_size",
                "quantization": "a 4-bit base from `invoke quantize`",
                "q_bits": "a 4-bit base from `invoke quantize`",
                "group_size": "a 4-bit base from `invoke quantize`",
                "bias": "nothing (LoRA layers have no bias term)",
                "max_grad_norm": "training.max_grad_norm",
                "gradient_accumulation": "training.grad_accumulation_steps",
                # mlx-lm's flat training keys: the same names, under training
                **{k: f"training.{k}" for k in (
                    "batch_size", "iters", "learning_rate", "steps_per_eval", "steps_per_report",
                    "save_every", "max_seq_length", "val_batches", "grad_checkpoint",
                    "mask_prompt", "grad_accumulation_steps")}}
STATUS_FILE = "status.json"
# Why a rank stops, in the order that wins when ranks disagree (see Trainer._agree).
REASONS = (None, "early_stop", "interrupted", "memory")


@dataclass
class TrainResult:
    """Where the run went, how its loss moved, and why it stopped."""

    run_dir: Path
    steps: int
    first_loss: float
    last_loss: float
    val_loss: float | None
    trainable_parameters: int
    stopped: str = "done"  # done | interrupted | early_stop
    resumed_from: int = 0

    def loss_line(self) -> str:
        """"loss 2.310 -> 1.204, val loss 1.350", or what is missing before the first report."""
        if np.isnan(self.first_loss):  # stopped before steps_per_report steps
            return "no loss reported yet"
        val = f"{self.val_loss:.3f}" if self.val_loss is not None else "not measured"
        return f"loss {self.first_loss:.3f} -> {self.last_loss:.3f}, val loss {val}"


def resolve(config=None, iters: int | None = None, **overrides) -> dict:
    """The validated run config: file or dict, then `overrides` (nested dicts merge), then
    `iters`, the override asked for most often."""
    try:
        return load_config("train", config, merge(overrides, {"training": {"iters": iters}}))
    except ConfigError as e:
        e.hint = e.hint or _rename_hint(e.problems)
        raise


def _rename_hint(problems: list[str]) -> str | None:
    """Farol's name for each unknown key that another trainer's config would use."""
    unknown = [name for p in problems if "unexpected" in p
               for name in re.findall(r"'([^']+)'", p.split("(", 1)[-1])]
    renames = [f"{k} -> {FOREIGN_KEYS[k]}" for k in unknown if k in FOREIGN_KEYS]
    return f"Farol's names for these keys: {'; '.join(renames)}" if renames else None


def convert_alpha(cfg: dict) -> str | None:
    """Turn PEFT's `lora.alpha` into mlx-lm's `lora.scale` (alpha / rank); returns the note."""
    alpha = cfg["lora"].pop("alpha", None)
    if alpha is None:
        return None
    replaced, cfg["lora"]["scale"] = cfg["lora"]["scale"], alpha / cfg["lora"]["rank"]
    # Name the scale it replaces: the schema's default, or one the user also wrote.
    return (f"note: lora.alpha {alpha} with rank {cfg['lora']['rank']} is "
            f"lora.scale {cfg['lora']['scale']:g} in mlx-lm's terms; it replaces "
            f"lora.scale {replaced:g}")


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


def train(config=None, log=print, fresh: bool = False, **overrides) -> TrainResult:
    """Train the adapter a run config describes and write everything to runs/<name>/.

    An existing run resumes from its newest good checkpoint unless `fresh` is true. Started as
    one of several ranks (`farol-train run --np/--hosts/--hostfile`), it trains its share of
    every global batch and only rank 0 writes; the others log to stderr.
    """
    cfg = resolve(config, **overrides)
    group = distributed.world()
    if group is not None and group.rank() != 0:
        log = distributed.rank_log(group.rank())
    note = convert_alpha(cfg)
    if note:
        log(note)
    try:
        return _load(cfg, log, fresh, group).run()
    except RuntimeError as e:  # how mlx.distributed reports a lost peer
        if group is None:
            raise
        raise FarolError(f"[rank {group.rank()}] {e}: another rank stopped or the network "
                         "dropped", hint="the last checkpoint is kept; run the same command "
                                         "again to resume") from None


def _load(cfg: dict, log, fresh: bool, group) -> "Trainer":
    # A monitor started beside a resume would read the last attempt's "interrupted" and leave.
    restore = _loading_status(Path(cfg["runs_dir"]) / cfg["name"], group)
    try:
        return Trainer(cfg, log, fresh, group)
    except KeyboardInterrupt:  # before the first step there is nothing to save
        restore()
        raise Interrupted("stopped while loading, before the first step; no checkpoint was "
                          "written", hint="run the same command again to start or resume") \
            from None
    except BaseException:
        restore()
        raise


def _loading_status(run_dir: Path, group):
    """Mark an existing run as loading (for `invoke monitor`); returns what puts the previous
    status.json back, byte for byte, should loading fail."""
    path = run_dir / STATUS_FILE
    if (group is not None and group.rank() != 0) or not path.is_file():
        return lambda: None
    before = path.read_bytes()
    write_json(path, {"state": "loading", "step": None, "pid": os.getpid(),
                      "host": socket.gethostname()})

    def restore() -> None:
        if run_dir.is_dir():  # --fresh may have removed the run before failing
            atomic_write_text(path, before.decode("utf-8"))
    return restore


class Trainer:
    """One run: the model, data order, optimizer and counters that a checkpoint saves."""

    def __init__(self, cfg: dict, log, fresh: bool, group=None):
        self.cfg, self.log, self.tcfg = cfg, log, cfg["training"]
        self.run_dir = Path(cfg["runs_dir"]) / cfg["name"]
        self.group, self.stop, self.watchdog = group, StopRequest(), None
        self.rank = group.rank() if group is not None else 0
        self.main = self.rank == 0
        if group is not None:
            self.watchdog = distributed.Watchdog(self.rank, cfg["distributed"]["timeout_s"],
                                                 lambda: self.stop.signal_name is not None)
        self._load(cfg)
        self.step, self.val_loss, self.trained, self.wall_offset = 0, None, 0, 0.0
        self.best = {"val_loss": None, "step": None, "evals_without_improvement": 0}
        self.unreported_val: tuple[int, float] | None = None  # (step, loss) since the last row
        self.window = Window()
        self.resumed_from = self._resume_or_start(fresh)
        self.step_fn = make_step(self.model, self.optimizer, self.tcfg["grad_accumulation_steps"],
                                 self.tcfg["grad_checkpoint"], self.pending,
                                 packed_loss if self.tcfg["pack"] else masked_loss, group,
                                 self.tcfg["max_grad_norm"])

    def _beat(self) -> None:
        if self.watchdog is not None:
            self.watchdog.beat()

    def _load(self, cfg: dict) -> None:
        tcfg = self.tcfg
        self.model, tokenizer = load_model(cfg["model"])
        self.train_set, self.valid_set = (self._split(tokenizer, s) for s in ("train", "valid"))
        # What a checkpoint was trained on, so a resume notices data changed at the same path.
        self.data_prints = {"train": fingerprint(self.train_set),
                            "valid": fingerprint(self.valid_set)}
        mx.random.seed(cfg["seed"])  # the LoRA initialisation depends on the seed alone
        self.adapter_config = apply_lora(self.model, cfg["lora"])
        self.order = DataOrder(self.train_set, tcfg["batch_size"], tcfg["max_seq_length"],
                               np.random.default_rng(cfg["seed"]), packed=tcfg["pack"])
        if self.group is not None:
            distributed.check_batch(tcfg["batch_size"], self.group.size())
        if tcfg["epochs"]:
            tcfg["iters"] = tcfg["epochs"] * self.order.steps_per_epoch
        if tcfg["warmup_steps"] >= tcfg["iters"]:  # the schedule would only ever climb
            self.log(f"warning: warmup_steps {tcfg['warmup_steps']} is not shorter than the run "
                     f"({tcfg['iters']} steps): the learning rate never reaches "
                     f"training.learning_rate {tcfg['learning_rate']:g} and never decays")
        left = tcfg["iters"] % tcfg["grad_accumulation_steps"]
        if left:  # their gradient waits for an update that never comes
            self.log(f"warning: iters {tcfg['iters']} is not a multiple of "
                     f"grad_accumulation_steps {tcfg['grad_accumulation_steps']}: the last "
                     f"{left} step(s) train nothing")
        self.optimizer = optim.AdamW(learning_rate=learning_rate_schedule(tcfg))
        self.evaluate = partial(evaluate_loss, self.model, self.valid_set, tcfg["batch_size"],
                                tcfg["max_seq_length"], tcfg["val_batches"])
        trainable, total = count_parameters(self.model)
        self.trainable = trainable
        self.log(f"{len(self.train_set)} train / {len(self.valid_set)} valid examples; "
                 f"{trainable:,} trainable parameters ({100 * trainable / total:.2f}% of "
                 f"{total:,}); {tcfg['iters']} steps, {self.order.steps_per_epoch} per epoch")

    def _split(self, tokenizer, split: str) -> list:
        tcfg = self.tcfg
        examples = load_split(Path(self.cfg["data"]) / f"{split}.jsonl", tokenizer,
                              tcfg["mask_prompt"])
        return answerable(examples, tcfg["max_seq_length"], split, self.log)

    def _resume_or_start(self, fresh: bool) -> int:
        self._open_logs()
        self.pending = {"grad": None}
        found = None if fresh or not self.main else ckpt.load_latest(self.run_dir, warn=self.log)
        if found is not None:
            self._check_compatible()
            self.pending["grad"] = ckpt.restore(found, self.model, self.optimizer)
        elif self.main:
            self._start_over(fresh)
        state = found.state if found is not None else None
        if self.group is not None:
            state = self._share_checkpoint(state)
        if state is not None:
            self._restore_state(state)
            self.log(f"resuming {self.cfg['name']} from "
                     f"{ckpt.checkpoint_dir(self.run_dir, self.step).name} "
                     f"(use --fresh to start over)")
        if self.main:
            write_json(self.run_dir / "config.json", self.cfg)
        return self.step

    def _open_logs(self) -> None:
        if not self.main:  # only rank 0 writes
            self.metrics = self.steps_log = distributed.NullLog()
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.steps_log = StepLog(self.run_dir / "steps.jsonl")

    def _share_checkpoint(self, state: dict | None) -> dict | None:
        """Rank 0's checkpoint (state, adapter, optimizer, pending gradient) on every rank, so
        the other hosts need no copy of the run folder."""
        group = self.group
        state = distributed.share_json(state, group)
        if state is None:
            return None
        self.model.load_weights(distributed.share_tree(self.model.trainable_parameters(),
                                                       group), strict=False)
        self.optimizer.state = tree_unflatten(distributed.share_tree(self.optimizer.state, group))
        if distributed.share_json(self.pending["grad"] is not None, group):
            shared = distributed.share_tree(self.pending["grad"], group)
            self.pending["grad"] = ckpt.like_trainable(self.model, dict(shared))
        return state

    def _start_over(self, fresh: bool) -> None:
        """Clear what an earlier attempt left, saying what goes. Without --fresh, checkpoints
        or a best adapter that no checkpoint can resume are never deleted silently."""
        previous = self._previous_outputs()
        if not previous:
            return
        what = ", ".join(previous)
        if not fresh and (ckpt.list_checkpoints(self.run_dir) or self._best_file().is_file()):
            raise FarolError(f"run {self.cfg['name']} has {what} but no checkpoint that can "
                             "be resumed (see the warnings above); nothing was changed",
                             hint="pass --fresh to start over (it deletes them), or pick "
                                  "another --run name")
        self._clear()
        self.log(f"{'--fresh' if fresh else 'no checkpoint to resume'}: removed {what} of "
                 f"run {self.cfg['name']}; starting over")

    def _best_file(self) -> Path:
        return self.run_dir / ckpt.BEST_DIR / "best.json"

    def _previous_outputs(self) -> list[str]:
        """What _clear would delete, in words."""
        out, found = [], ckpt.list_checkpoints(self.run_dir)
        if found:
            out.append(f"{len(found)} checkpoint(s) (newest {found[-1].name})")
        if self._best_file().is_file():
            best = json.loads(self._best_file().read_text(encoding="utf-8"))
            out.append(f"the best adapter ({ckpt.BEST_DIR}/, step {best['step']}, "
                       f"val loss {best['val_loss']:.4f})")
        elif (self.run_dir / ckpt.BEST_DIR).exists():
            out.append(f"the best adapter folder ({ckpt.BEST_DIR}/)")
        if any((self.run_dir / n).is_file() for n in ("metrics.jsonl", "steps.jsonl")):
            out.append("the logs (metrics.jsonl, metrics.csv, steps.jsonl)")
        return out

    def _clear(self) -> None:
        shutil.rmtree(self.run_dir / ckpt.CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(self.run_dir / ckpt.BEST_DIR, ignore_errors=True)
        for name in ("metrics.jsonl", "metrics.csv", "steps.jsonl"):
            (self.run_dir / name).unlink(missing_ok=True)

    def _check_compatible(self) -> None:
        saved_path = self.run_dir / "config.json"
        saved = load_config("train", saved_path) if saved_path.is_file() else self.cfg
        changed = [c for key, sub in RESUME_KEYS.items()
                   for c in _changes(key, _pick(saved[key], sub), _pick(self.cfg[key], sub))]
        if changed:
            raise FarolError(
                f"run {self.cfg['name']} has checkpoints made with a different "
                f"{'; '.join(changed)}",
                hint="use the run's config.json, pick another --run name, or pass --fresh "
                     "to start this run over")
        if saved["training"]["iters"] != self.tcfg["iters"]:  # the schedule spans iters
            self.log(f"note: training.iters is {self.tcfg['iters']}, the checkpoints' run had "
                     f"{saved['training']['iters']}: the learning rate from here follows the "
                     f"schedule over {self.tcfg['iters']} steps")

    def _restore_state(self, state: dict) -> None:
        saved = state.get("data_fingerprint", {})  # absent from checkpoints of older versions
        changed = [s for s in saved if saved[s] != self.data_prints[s]]
        if changed or state["data"]["batches"] != self.order.steps_per_epoch:
            raise FarolError(f"the {' and '.join(changed) or 'train'} data changed since "
                             f"checkpoint step-{state['step']:07d} was saved (the .jsonl "
                             "content or the model's tokenizer); nothing was changed",
                             hint="pass --fresh to start the run over on the new data, or "
                                  "put the old data back to resume")
        self.order.restore(state["data"])
        self.step, self.val_loss = state["step"], state["val_loss"]
        self.best, self.trained = state["best"], state["trained_tokens"]
        self.wall_offset = state["wall_time_s"]
        self.window.restore(state["window"], self.trained, self.wall_offset)
        self.metrics.keep_until(self.step)
        self.steps_log.keep_until(self.step)

    def state(self) -> dict:
        """Everything besides the arrays that resuming needs, as JSON."""
        return {
            "format": 1, "step": self.step, "iters": self.tcfg["iters"],
            "epoch": self.step / self.order.steps_per_epoch, "data": self.order.state(),
            "data_fingerprint": self.data_prints,
            "learning_rate": self.optimizer.learning_rate.item(),
            "optimizer_step": int(self.optimizer.state.get("step", mx.array(0)).item()),
            "mx_random": f"reseeded before each step from seed {self.cfg['seed']} and the step",
            "val_loss": self.val_loss, "best": self.best, "trained_tokens": self.trained,
            "window": self.window.state(), "wall_time_s": self.window.elapsed(),
        }

    def save(self) -> str:
        """A checkpoint of the current step, then pruning; returns its folder name.

        Weights that are no longer finite are never saved: the run stops as for a NaN loss."""
        worst = max((mx.abs(v).max().item() for _, v in
                     tree_flatten(self.model.trainable_parameters())), default=0.0)
        check_finite(worst, self.step, ckpt.latest_step_name(self.run_dir), "an adapter weight")
        if not self.main:
            return ckpt.checkpoint_dir(self.run_dir, self.step).name
        folder = ckpt.save_checkpoint(self.run_dir, self.model, self.optimizer,
                                      self.adapter_config, self.state(), self.pending["grad"])
        ckpt.prune(self.run_dir, self.tcfg["keep_checkpoints"], self.best["step"])
        return folder.name

    def run(self) -> TrainResult:
        iters, stopped = self.tcfg["iters"], "done"
        if self.step >= iters:
            more = "training.epochs" if self.tcfg["epochs"] else "--iters"  # epochs sets iters
            self.log(f"run {self.cfg['name']} is already complete at step {self.step} "
                     f"(use --fresh to train it again, or raise {more} to continue)")
            return self._result(stopped)
        if self._patience_out():  # resumed from its early stop: one more step would stop again
            self.log(f"run {self.cfg['name']} stopped early at step {self.step} (use --fresh "
                     "to train it again, or raise training.patience to continue)")
            return self._result("early_stop")
        guard = MemoryGuard(self.tcfg["memory_fraction"])
        self.model.train()
        self._status("training")
        self.ended = "failed"  # what status.json says if an error ends the loop
        try:
            with self.stop as stop, _progress(disable=not self.main) as bar:
                task = bar.add_task("training", total=iters, completed=self.step, loss=np.nan)
                while self.step < iters and stopped == "done":
                    loss = self._one_step()
                    bar.update(task, advance=1, loss=loss)
                    stopped = self._after_step(stop, guard)
                    self._beat()
            if self.main:
                ckpt.save_adapter(self.model, self.run_dir, self.adapter_config)
            self.ended = stopped
        finally:
            guard.release()
            self._status(self.ended)
        if self.watchdog is not None:
            self.watchdog.close()
        return self._result(stopped)

    def _status(self, state: str) -> None:
        """runs/<name>/status.json: training, or how the run ended, for the monitor. The pid
        and host let it tell a live run from one whose process was killed."""
        if self.main:
            write_json(self.run_dir / STATUS_FILE, {"state": state, "step": self.step,
                                                    "pid": os.getpid(),
                                                    "host": socket.gethostname()})

    def _one_step(self) -> float:
        self.step += 1
        mx.random.seed(self.cfg["seed"] * 1_000_003 + self.step)
        batch = self.order.next()
        if self.group is not None:
            batch = distributed.shard(batch, self.rank, self.group.size())
        tic = time.perf_counter()  # step time, as mlx-lm's trainer counts it: batch excluded
        update = self.step % self.tcfg["grad_accumulation_steps"] == 0
        loss, ntoks = self.step_fn(batch, update)
        self.window.add(loss, ntoks, time.perf_counter() - tic)
        check_finite(loss, self.step, ckpt.latest_step_name(self.run_dir))
        self.steps_log.write(self.step, loss, ntoks)
        self._beat()
        return loss

    def _after_step(self, stop: StopRequest, guard: MemoryGuard) -> str:
        """Evaluate, report, save and check the guards; returns why to stop, or "done"."""
        last = self.step == self.tcfg["iters"]
        improved = self._maybe_validate(last)
        if self.step % self.tcfg["steps_per_report"] == 0 or last:
            # a validation record only in the row after it was measured, with its own step
            val_step, val_loss = self.unreported_val or (None, None)
            row = self.window.report(self.step, self.order.steps_per_epoch, self.optimizer,
                                     val_loss)
            row["val_step"], self.unreported_val = val_step, None
            self.trained = row["trained_tokens"]
            self.metrics.write(row)
        rss = guard.exceeded()
        reason = ("interrupted" if stop.signal_name else "memory" if rss is not None
                  else "early_stop" if self._patience_out() else None)
        if self.group is not None:
            reason = self._agree(reason)
        if reason or improved or last or self.step % self.tcfg["save_every"] == 0:
            saved = self.save()
        if reason == "memory":
            self.ended = "memory"
            raise guard.error(rss, self.step, saved)
        if reason == "interrupted":
            self.log(f"{stop.signal_name or 'stop'}: saved {saved} at step {self.step}. "
                     f"Resume with `invoke train --run {self.cfg['name']}` (or the same "
                     "farol-train run command); add --fresh to start over.")
        if reason == "early_stop":
            self.log(f"early stop at step {self.step}: no better validation loss in "
                     f"{self.tcfg['patience']} evaluations (best {self.best['val_loss']:.4f} at "
                     f"step {self.best['step']}, in {self.run_dir / ckpt.BEST_DIR})")
        return reason or "done"

    def _agree(self, reason: str | None) -> str | None:
        """Every rank stops at the same step: the strongest reason any rank has wins."""
        top = REASONS[distributed.any_rank(REASONS.index(reason), self.group)]
        if top == reason or reason == "memory":
            return reason
        self.log(f"stopping at step {self.step}: another rank stopped ({top})")
        return "interrupted" if top == "memory" else top

    def _patience_out(self) -> bool:
        patience = self.tcfg["patience"]
        return bool(patience) and self.best["evals_without_improvement"] >= patience

    def _maybe_validate(self, last: bool) -> bool:
        if self.step % self.tcfg["steps_per_eval"] and not last:
            return False
        self.model.eval()
        self.val_loss, _ = self.evaluate()
        self.unreported_val = (self.step, self.val_loss)
        self.model.train()
        best = self.best
        if best["val_loss"] is not None and self.val_loss >= best["val_loss"]:
            best["evals_without_improvement"] += 1
            return False
        self.best = {"val_loss": self.val_loss, "step": self.step, "evals_without_improvement": 0}
        if self.main:
            ckpt.save_best(self.model, self.run_dir, self.adapter_config, self.step, self.val_loss)
        return True

    def _result(self, stopped: str) -> TrainResult:
        losses = [r["train_loss"] for r in self.metrics.rows] or [np.nan]
        return TrainResult(self.run_dir, self.step, losses[0], losses[-1], self.val_loss,
                           self.trainable, stopped, self.resumed_from)


def _pick(value, keys: list[str] | None):
    """The part of a config section that resuming depends on."""
    return value if keys is None else {k: value[k] for k in keys}


def _changes(name: str, saved, now) -> list[str]:
    """Each setting that differs, as `name: now X, checkpoints Y`, sections key by key."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [c for k in sorted(saved.keys() | now.keys())
                for c in _changes(f"{name}.{k}", saved.get(k), now.get(k))]
    return [] if saved == now else [f"{name} (now {now!r}, checkpoints {saved!r})"]


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


class Window:
    """Loss, tokens and step time since the last report, turned into one metrics row.

    Rates use step time only (forward, backward, update), not building the batch, evaluation
    or saving.
    """

    def __init__(self):
        self.start = time.perf_counter()
        self.loss_sum = self.tokens = self.steps = self.trained = 0
        self.offset = self.seconds = 0.0

    def add(self, loss: float, ntoks: int, seconds: float) -> None:
        self.loss_sum += loss * ntoks
        self.tokens += ntoks
        self.steps += 1
        self.seconds += seconds

    def elapsed(self) -> float:
        return self.offset + time.perf_counter() - self.start

    def state(self) -> dict:
        return {"loss_sum": self.loss_sum, "tokens": self.tokens, "steps": self.steps,
                "seconds": self.seconds}

    def restore(self, state: dict, trained: int, offset: float) -> None:
        self.loss_sum, self.tokens, self.steps = state["loss_sum"], state["tokens"], state["steps"]
        self.seconds = state["seconds"]
        self.trained, self.offset = trained, offset

    def report(self, it: int, steps_per_epoch: int, optimizer, val_loss) -> dict:
        seconds, self.trained = max(self.seconds, 1e-9), self.trained + self.tokens
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
            "wall_time_s": self.elapsed(),
        }
        self.loss_sum, self.tokens, self.steps, self.seconds = 0, 0, 0, 0.0
        return row


def _progress(disable: bool = False) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                    disable=disable)
