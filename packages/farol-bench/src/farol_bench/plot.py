"""Tokens/s per mlx version over time, from the results files, as a PNG."""

from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

from farol_bench.compare import figures_by_key  # noqa: E402


def series(docs: list[dict]) -> dict[str, list[tuple]]:
    """`"<device> <shape>: <figure>"` -> [(time, median, min, max, mlx version)], oldest first."""
    out: dict[str, list[tuple]] = {}
    unique = {(d["created"], d["host"], d["shape"]): d for d in docs}  # a baseline is a copy
    for doc in sorted(unique.values(), key=lambda d: d["created"]):
        when = datetime.strptime(doc["created"], "%Y-%m-%dT%H:%M:%SZ")
        for key, fig in figures_by_key(doc).items():
            if fig["unit"].endswith("tokens/s"):
                label = f"{doc['device']['name']} {doc['shape']}: {key}"
                point = (when, fig["median"], fig["min"], fig["max"], doc["versions"]["mlx"])
                out.setdefault(label, []).append(point)
    return out


def plot(docs: list[dict], out: str | Path) -> Path:
    """Draw every tokens/s figure across the runs, each point labelled with its mlx version."""
    data = series(docs)
    fig, ax = plt.subplots(figsize=(10, 6))
    for label, points in data.items():
        times, med, lo, hi, versions = zip(*points, strict=True)
        err = [[m - a for m, a in zip(med, lo, strict=True)],
               [b - m for m, b in zip(med, hi, strict=True)]]
        ax.errorbar(times, med, yerr=err, marker="o", capsize=3, label=label)
        for t, m, v in zip(times, med, versions, strict=True):
            ax.annotate(f"mlx {v}", (t, m), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set(yscale="log", xlabel="run (UTC)", ylabel="tokens/s (median; bars: min to max)",
           title="Farol benchmarks: tokens/s per mlx version")
    ax.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out
