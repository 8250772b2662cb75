"""A live terminal view of a training run, following its metrics.jsonl with rich."""

import math
import os
import socket
import time
from pathlib import Path

from farol_core.rundir import RunDir
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from farol_eval.runlog import read_metrics, total_iters, validation

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 48) -> str:
    """The last `width` values as block characters, lowest to highest; a NaN or infinite
    value is drawn as "!" (it must show, and it has no place on the scale)."""
    values = values[-width:]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "!" * len(values)
    lo, hi = min(finite), max(finite)
    span = (hi - lo) or 1.0
    return "".join(BLOCKS[round((v - lo) / span * (len(BLOCKS) - 1))]
                   if math.isfinite(v) else "!" for v in values)


def eta_seconds(row: dict, total: int | None) -> float | None:
    """Seconds left at the run's average pace so far (wall time per step since the start)."""
    if not total or row["step"] <= 0:
        return None
    return max(total - row["step"], 0) * row["wall_time_s"] / row["step"]


def snapshot(run_dir: str | Path) -> dict:
    """What the monitor shows: the rows so far, the planned steps and the run's state."""
    run_dir = Path(run_dir)
    rows, total = read_metrics(run_dir), total_iters(run_dir)
    path = RunDir(run_dir).metrics
    if total and rows and rows[-1]["step"] >= total:
        state = "finished"
    else:
        state = ended(run_dir) or ("running" if rows else "waiting")
    age = time.time() - path.stat().st_mtime if path.is_file() else None
    return {"run": str(run_dir), "rows": rows, "total": total, "state": state, "age_s": age}


def ended(run_dir: Path) -> str | None:
    """How a run that is no longer training ended, from the status.json the trainer keeps:
    "stopped (interrupted at step 40)", or "stopped (process gone at step 40)" when the run
    still says training but its process on this host is dead (a crash or a kill -9)."""
    status = RunDir(run_dir).read_status()
    if status is None:
        return None  # no status yet (or a run from before status.json): judge by metrics
    if status.get("state") in ("training", "loading"):  # loading: a resume, before step 1
        if status.get("host") != socket.gethostname() or _alive(status.get("pid")):
            return None
        where = "while loading" if status["state"] == "loading" else f"at step {status.get('step')}"
        return f"stopped (process gone {where})"
    return f"stopped ({status.get('state')} at step {status.get('step')})"


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # someone else's process, or no pid to check: do not claim it died
    return True


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def render(snap: dict):
    """The rich renderable for one snapshot."""
    title = f"farol monitor: {snap['run']} ({snap['state']})"
    if not snap["rows"]:
        waiting = snap["state"] in ("running", "waiting")
        return Panel(Text("waiting for the first report in metrics.jsonl ..." if waiting
                          else "it stopped before its first report"), title=title)
    rows, last, total = snap["rows"], snap["rows"][-1], snap["total"]
    val_steps, vals = validation(rows)
    table = Table.grid(padding=(0, 2))
    for label, value in (
        ("step", f"{last['step']} / {total or '?'}  (epoch {last['epoch']:.2f})"),
        ("train loss", f"{last['train_loss']:.4f} nats/token"),
        # validation runs less often than reports: say which step the value is from
        ("val loss", f"{vals[-1]:.4f} nats/token (step {val_steps[-1]})" if vals
         else "not measured yet"),
        ("learning rate", f"{last['learning_rate']:.3g}"),
        ("speed", f"{last['tokens_per_second']:.0f} tokens/s, "
                  f"{last['iterations_per_second']:.2f} it/s"),
        ("peak memory", f"{last['peak_memory_gb']:.3f} GB"),
        ("elapsed", _clock(last["wall_time_s"])),
        ("ETA", "done" if snap["state"] == "finished" else
         _clock(eta_seconds(last, total)) if snap["state"] == "running" else "-"),
        ("last write", f"{snap['age_s']:.0f} s ago" if snap["age_s"] is not None else "-"),
    ):
        table.add_row(Text(label, style="bold"), value)
    spark = Text(f"train loss  {sparkline([r['train_loss'] for r in rows])}")
    return Panel(Group(table, spark), title=title)


def monitor(run_dir: str | Path, refresh: float = 2.0, max_updates: int | None = None,
            console: Console | None = None) -> dict:
    """Redraw every `refresh` seconds until the run finishes, `max_updates` draws were made
    or Ctrl+C; returns the last snapshot. A run with no metrics yet is waited for."""
    console = console or Console()
    snap = snapshot(run_dir)
    updates = 0
    try:
        with Live(render(snap), console=console, auto_refresh=False) as live:
            while True:
                snap = snapshot(run_dir)
                live.update(render(snap), refresh=True)
                updates += 1
                done = snap["state"] not in ("running", "waiting")  # finished or stopped
                if done or (max_updates and updates >= max_updates):
                    break
                time.sleep(refresh)
    except KeyboardInterrupt:
        pass  # Ctrl+C is how a user leaves a live view: not an error
    if not console.is_terminal:
        console.line()  # rich ends its last frame with a newline only on a terminal
    return snap
