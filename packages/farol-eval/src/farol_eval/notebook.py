"""Jupyter views of a run that update in place: a progress line and the live loss charts."""

import time
from pathlib import Path

from farol_core.rundir import RunDir
from IPython.display import Image, Pretty, display

from farol_eval.monitor import snapshot
from farol_eval.plots import dashboard
from farol_eval.runlog import series

BAR = 30


def progress_text(snap: dict) -> str:
    """One line: a bar over the planned steps, train and validation loss, lr, tokens/s."""
    rows, total = snap["rows"], snap["total"]
    if not rows:
        return f"{snap['run']}: {snap['state']}, no report yet"
    last = rows[-1]
    done = min(last["step"] / total, 1.0) if total else 0.0
    bar = "#" * round(done * BAR) + "." * (BAR - round(done * BAR))
    val_steps, vals = series(rows, "val_loss")
    val = f"{vals[-1]:.4f} (step {val_steps[-1]})" if vals else "-"
    return (f"[{bar}] step {last['step']}/{total or '?'} ({snap['state']}) | "
            f"loss {last['train_loss']:.4f} | val loss {val} | "
            f"lr {last['learning_rate']:.3g} | {last['tokens_per_second']:.0f} tokens/s")


def progress(run_dir: str | Path, chart_every: float | None = 10.0):
    """A display that shows the run's progress line, and with `chart_every` the loss charts
    redrawn at most that often; call the returned function to update both in place
    (farol_train.background.follow does, every second)."""
    handle = display(Pretty(progress_text(snapshot(run_dir))), display_id=True)
    chart = {"handle": None, "drawn": -1.0, "rows": 0}

    def show():
        snap = snapshot(run_dir)
        handle.update(Pretty(progress_text(snap)))
        # the run's last rows are always drawn, however soon after the previous chart
        due = time.monotonic() - chart["drawn"] >= (chart_every or 0) \
            or snap["state"] not in ("running", "waiting")
        if chart_every is not None and len(snap["rows"]) > chart["rows"] and due:
            chart["handle"] = _show(chart["handle"], _dashboard(run_dir, snap["rows"]))
            chart.update(drawn=time.monotonic(), rows=len(snap["rows"]))
    return show


def _dashboard(run_dir: str | Path, rows: list[dict]) -> Image:
    path = RunDir(run_dir).plots / "dashboard.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return Image(filename=str(dashboard(rows, path)))


def charts(run_dir: str | Path, refresh: float = 5.0, max_wait: float = 600.0) -> dict:
    """Loss, validation loss, learning rate and tokens/s charts, redrawn in place every
    `refresh` seconds while the run trains, then once more; Interrupt leaves the view only.
    A run with no report after `max_wait` seconds is left. Returns the last snapshot."""
    run_dir = Path(run_dir)
    handle, snap, start = None, snapshot(run_dir), time.monotonic()
    try:
        while True:
            snap = snapshot(run_dir)
            if snap["rows"]:
                handle = _show(handle, _dashboard(run_dir, snap["rows"]))
            waited_out = not snap["rows"] and time.monotonic() - start > max_wait
            if snap["state"] not in ("running", "waiting") or waited_out:
                return snap
            time.sleep(refresh)
    except KeyboardInterrupt:
        return snap  # leaving the view; the run goes on


def _show(handle, obj):
    if handle is None:
        return display(obj, display_id=True)
    handle.update(obj)
    return handle
