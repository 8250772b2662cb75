"""Reading a run's metrics.jsonl and config.json while training may still be writing them."""

import json
from pathlib import Path

from farol_core.errors import FarolError


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The complete rows of runs/<name>/metrics.jsonl ([] before the first report).

    A line still being written has no newline yet, so it is left for the next read.
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(True), 1):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise FarolError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows


def total_iters(run_dir: str | Path) -> int | None:
    """training.iters from the run's config.json, or None before training wrote it."""
    path = Path(run_dir) / "config.json"
    try:
        return int(json.loads(path.read_text())["training"]["iters"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of `key` over the rows where it is present and not null."""
    pairs = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]
