"""metrics.jsonl and metrics.csv (one row per report) and steps.jsonl (one row per step).

All are appended and flushed as training goes, so a crash can cut only the line being written.
On resume, rows after the checkpoint's step are dropped: those steps are trained again.
"""

import csv
import io
import json
from pathlib import Path

from farol_core.io import atomic_write_text, read_log

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
