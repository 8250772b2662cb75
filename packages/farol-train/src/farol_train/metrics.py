"""metrics.jsonl and metrics.csv (one row per report), steps.jsonl (one row per step), and the
Window that turns the steps since the last report into a row.

All are appended and flushed as training goes, so a crash can cut only the line being written.
On resume, rows after the checkpoint's step are dropped: those steps are trained again.
"""

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import numpy as np
from farol_core.io import atomic_write_text, read_log
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

COLUMNS = ["step", "epoch", "train_loss", "val_loss", "val_step", "learning_rate",
           "tokens_per_second", "iterations_per_second", "trained_tokens", "peak_memory_gb",
           "wall_time_s"]


class MetricsLog:
    """Append-only JSON Lines log with a CSV twin (same rows, header first)."""

    def __init__(self, path: Path, csv_path: Path | None = None):
        self.path = Path(path)
        self.csv_path = Path(csv_path) if csv_path else self.path.with_suffix(".csv")
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        with open(self.csv_path, "a", encoding="utf-8", newline="") as f:
            f.write(_csv_text([row], header=new))

    def keep_until(self, step: int) -> None:
        """Drop rows after `step` from both files (resume) and remember the kept ones."""
        self.rows = [r for r in read_log(self.path) if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.rows))
        atomic_write_text(self.csv_path, _csv_text(self.rows, header=True))


class StepLog:
    """steps.jsonl: the loss and trained tokens of every step, for exact comparisons."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, step: int, loss: float, tokens: int) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "loss": loss, "tokens": tokens}) + "\n")

    def keep_until(self, step: int) -> None:
        rows = [r for r in read_log(self.path) if r["step"] <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))




def _csv_text(rows: list[dict], header: bool) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


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


def progress_bar(disable: bool = False) -> Progress:
    """The terminal bar: step, total, loss and time left."""
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(),
                    disable=disable)
