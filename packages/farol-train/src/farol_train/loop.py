"""QLoRA training: Farol's own loop on mlx-lm's model loading and LoRA layers.

A run resumes by itself from its newest good checkpoint, and a resumed run repeats exactly what
an uninterrupted one would do: the adapter, optimizer and accumulated gradient are restored, the
data order continues from the saved epoch and batch, and MLX's random stream is reseeded from
(seed, step) before every step.
"""

import time
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from farol_core.config import typed
from farol_core.dataset import evaluate_loss, load_split, masked_loss
from farol_core.errors import FarolError, Interrupted
from farol_core.io import write_json
from farol_core.model import load_model
from farol_core.rundir import RunDir
from mlx.utils import tree_flatten

from farol_train import checkpoint as ckpt
from farol_train import distributed
from farol_train.data_order import DataOrder, answerable, fingerprint
from farol_train.guards import MemoryGuard, StopRequest, check_finite
from farol_train.lora import apply_lora, count_parameters
from farol_train.metrics import MetricsLog, StepLog, TrainResult, Window, progress_bar
from farol_train.packing import packed_loss
from farol_train.run_config import check_compatible, check_same_data, resolve, schedule_warnings
from farol_train.step import learning_rate_schedule, make_step

# Why a rank stops, in the order that wins when ranks disagree (see Trainer._agree).
REASONS = (None, "early_stop", "interrupted", "memory")


def train(config=None, log=print, fresh: bool = False, **overrides) -> TrainResult:
    """Train the adapter a run config describes and write everything to runs/<name>/.

    An existing run resumes from its newest good checkpoint unless `fresh` is true. Started as
    one of several ranks (`farol-train run --np/--hosts/--hostfile`), it trains its share of
    every global batch and only rank 0 writes; the others log to stderr.
    """
    group = distributed.world()
    if group is not None and group.rank() != 0:
        log = distributed.rank_log(group.rank())
    cfg = resolve(config, log=log, **overrides)
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
    restore = _loading_status(RunDir.of(cfg["runs_dir"], cfg["name"]).path, group)
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
    """Mark an existing run as loading (see RunDir.mark_loading); rank 0 alone writes."""
    if group is not None and group.rank() != 0:
        return lambda: None
    return RunDir(run_dir).mark_loading()


class Trainer:
    """One run: the model, data order, optimizer and counters that a checkpoint saves."""

    def __init__(self, cfg: dict, log, fresh: bool, group=None):
        self.cfg, self.log, self.tcfg = cfg, log, typed("train", cfg).training
        self.rundir = RunDir.of(cfg["runs_dir"], cfg["name"])
        self.run_dir = self.rundir.path
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
        self.step_fn = make_step(self.model, self.optimizer, self.tcfg.grad_accumulation_steps,
                                 self.tcfg.grad_checkpoint, self.pending,
                                 packed_loss if self.tcfg.pack else masked_loss, group,
                                 self.tcfg.max_grad_norm)

    def _beat(self) -> None:
        if self.watchdog is not None:
            self.watchdog.beat()

    def _load(self, cfg: dict) -> None:
        tcfg = self.tcfg
        self.model, tokenizer = load_model(cfg["model"], template_choice=cfg["template"])
        self.train_set, self.valid_set = (self._split(tokenizer, s) for s in ("train", "valid"))
        # What a checkpoint was trained on, so a resume notices data changed at the same path.
        self.data_prints = {"train": fingerprint(self.train_set),
                            "valid": fingerprint(self.valid_set)}
        mx.random.seed(cfg["seed"])  # the LoRA initialisation depends on the seed alone
        self.adapter_config = apply_lora(self.model, cfg["lora"])
        self.order = DataOrder(self.train_set, tcfg.batch_size, tcfg.max_seq_length,
                               np.random.default_rng(cfg["seed"]), packed=tcfg.pack)
        if self.group is not None:
            distributed.check_batch(tcfg.batch_size, self.group.size())
        if tcfg.epochs:  # config.json records the steps the epochs come to
            cfg["training"]["iters"] = tcfg.epochs * self.order.steps_per_epoch
            self.tcfg = tcfg = typed("train", cfg).training
        for warning in schedule_warnings(cfg["training"]):
            self.log(warning)
        self.optimizer = optim.AdamW(learning_rate=learning_rate_schedule(cfg["training"]))
        self.evaluate = partial(evaluate_loss, self.model, self.valid_set, tcfg.batch_size,
                                tcfg.max_seq_length, tcfg.val_batches)
        trainable, total = count_parameters(self.model)
        self.trainable = trainable
        self.log(f"{len(self.train_set)} train / {len(self.valid_set)} valid examples; "
                 f"{trainable:,} trainable parameters ({100 * trainable / total:.2f}% of "
                 f"{total:,}); {tcfg.iters} steps, {self.order.steps_per_epoch} per epoch")

    def _split(self, tokenizer, split: str) -> list:
        tcfg = self.tcfg
        examples = load_split(Path(self.cfg["data"]) / f"{split}.jsonl", tokenizer,
                              tcfg.mask_prompt)
        return answerable(examples, tcfg.max_seq_length, split, self.log)

    def _resume_or_start(self, fresh: bool) -> int:
        self._open_logs()
        self.pending = {"grad": None}
        if self.main:
            ckpt.sweep_staging(self.run_dir, self.log)
        found = None if fresh or not self.main else ckpt.load_latest(self.run_dir, warn=self.log)
        if found is not None:
            check_compatible(self.cfg, self.rundir.config, self.log)
            self.pending["grad"] = ckpt.restore(found, self.model, self.optimizer)
        elif self.main:
            self._start_over(fresh)
        state = found.state if found is not None else None
        if self.group is not None:
            state = distributed.share_checkpoint(state, self.model, self.optimizer, self.pending,
                                                 self.group)
        if state is not None:
            self._restore_state(state)
            self.log(f"resuming {self.cfg['name']} from "
                     f"{ckpt.checkpoint_dir(self.run_dir, self.step).name} "
                     f"(use --fresh to start over)")
        if self.main:
            write_json(self.rundir.config, self.cfg)
        return self.step

    def _open_logs(self) -> None:
        if not self.main:  # only rank 0 writes
            self.metrics = self.steps_log = distributed.NullLog()
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.rundir.metrics, self.rundir.metrics_csv)
        self.steps_log = StepLog(self.rundir.steps)

    def _start_over(self, fresh: bool) -> None:
        """Clear what an earlier attempt left, saying what goes. Without --fresh, checkpoints
        or a best adapter that no checkpoint can resume are never deleted silently."""
        previous = self.rundir.previous_outputs()
        if not previous:
            return
        what = ", ".join(previous)
        if not fresh and (self.rundir.checkpoints() or self.rundir.best_file.is_file()):
            raise FarolError(f"run {self.cfg['name']} has {what} but no checkpoint that can "
                             "be resumed (see the warnings above); nothing was changed",
                             hint="pass --fresh to start over (it deletes them), or pick "
                                  "another --run name")
        self.rundir.clear()
        self.log(f"{'--fresh' if fresh else 'no checkpoint to resume'}: removed {what} of "
                 f"run {self.cfg['name']}; starting over")

    def _restore_state(self, state: dict) -> None:
        check_same_data(state, self.data_prints, self.order.steps_per_epoch)
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
            "format": 1, "step": self.step, "iters": self.tcfg.iters,
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
        ckpt.prune(self.run_dir, self.tcfg.keep_checkpoints, self.best["step"])
        return folder.name

    def run(self) -> TrainResult:
        iters, stopped = self.tcfg.iters, "done"
        if self.step >= iters:
            more = "training.epochs" if self.tcfg.epochs else "--iters"  # epochs sets iters
            self.log(f"run {self.cfg['name']} is already complete at step {self.step} "
                     f"(use --fresh to train it again, or raise {more} to continue)")
            return self._result(stopped)
        if self._patience_out():  # resumed from its early stop: one more step would stop again
            self.log(f"run {self.cfg['name']} stopped early at step {self.step} (use --fresh "
                     "to train it again, or raise training.patience to continue)")
            return self._result("early_stop")
        guard = MemoryGuard(self.tcfg.memory_fraction)
        self.model.train()
        self._status("training")
        self.ended = "failed"  # what status.json says if an error ends the loop
        try:
            with self.stop as stop, progress_bar(disable=not self.main) as bar:
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
        if self.main:
            self.rundir.write_status(state, self.step)

    def _one_step(self) -> float:
        self.step += 1
        mx.random.seed(self.cfg["seed"] * 1_000_003 + self.step)
        batch = self.order.next()
        if self.group is not None:
            batch = distributed.shard(batch, self.rank, self.group.size())
        tic = time.perf_counter()  # step time, as mlx-lm's trainer counts it: batch excluded
        update = self.step % self.tcfg.grad_accumulation_steps == 0
        loss, ntoks = self.step_fn(batch, update)
        self.window.add(loss, ntoks, time.perf_counter() - tic)
        check_finite(loss, self.step, ckpt.latest_step_name(self.run_dir))
        self.steps_log.write(self.step, loss, ntoks)
        self._beat()
        return loss

    def _after_step(self, stop: StopRequest, guard: MemoryGuard) -> str:
        """Evaluate, report, save and check the guards; returns why to stop, or "done"."""
        last = self.step == self.tcfg.iters
        improved = self._maybe_validate(last)
        if self.step % self.tcfg.steps_per_report == 0 or last:
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
        if reason or improved or last or self.step % self.tcfg.save_every == 0:
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
                     f"{self.tcfg.patience} evaluations (best {self.best['val_loss']:.4f} at "
                     f"step {self.best['step']}, in {self.rundir.best_dir})")
        return reason or "done"

    def _agree(self, reason: str | None) -> str | None:
        """Every rank stops at the same step: the strongest reason any rank has wins."""
        top = REASONS[distributed.any_rank(REASONS.index(reason), self.group)]
        if top == reason or reason == "memory":
            return reason
        self.log(f"stopping at step {self.step}: another rank stopped ({top})")
        return "interrupted" if top == "memory" else top

    def _patience_out(self) -> bool:
        patience = self.tcfg.patience
        return bool(patience) and self.best["evals_without_improvement"] >= patience

    def _maybe_validate(self, last: bool) -> bool:
        if self.step % self.tcfg.steps_per_eval and not last:
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
