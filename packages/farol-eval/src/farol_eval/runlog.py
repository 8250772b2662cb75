"""Reading a run's metrics and config while training may still be writing them."""

from pathlib import Path

from farol_core.rundir import RunDir


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The complete rows of runs/<name>/metrics.jsonl ([] before the first report).

    A line still being written has no newline yet, so it is left for the next read.
    """
    return RunDir(run_dir).read_metrics()


def total_iters(run_dir: str | Path) -> int | None:
    """training.iters from the run's config.json, or None before training wrote it."""
    try:
        return int(RunDir(run_dir).read_config()["training"]["iters"])
    except (KeyError, TypeError, ValueError):
        return None


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of `key` over the rows where it is present and not null."""
    pairs = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def validation(rows: list[dict]) -> tuple[list[int], list[float]]:
    """(steps, losses) of the validation records, each at the step it was measured.

    Logs from before `val_step` repeated the last loss in every row: there a value counts
    once, at the first row that carries it."""
    steps, losses = [], []
    for r in rows:
        if r.get("val_loss") is None:
            continue
        if "val_step" in r:
            steps.append(r["val_step"])
            losses.append(r["val_loss"])
        elif not losses or r["val_loss"] != losses[-1]:
            steps.append(r["step"])
            losses.append(r["val_loss"])
    return steps, losses
