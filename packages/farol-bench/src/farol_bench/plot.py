"""Tokens/s per mlx version over time, from the results files, as a PNG."""

from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)
from farol_core.errors import FarolError  # noqa: E402

from farol_bench.compare import figures_by_key  # noqa: E402
from farol_bench.results import WORKLOAD  # noqa: E402


def series(docs: list[dict]) -> dict[str, list[tuple]]:
    """`"<device> (<backend>) <shape>[, decode N after M]: <figure>"` -> [(time, median, min,
    max, mlx version)], oldest first. Runs on different devices, models or decode workloads are
    different lines, never one."""
    out: dict[str, list[tuple]] = {}
    # A baseline is a copy of a run: drop it, but never a run of another device or model that
    # ended in the same second on a host of the same name.
    unique = {(d["created"], d["host"], _line(d)): d for d in docs}
    for doc in sorted(unique.values(), key=lambda d: d["created"]):
        when = datetime.strptime(doc["created"], "%Y-%m-%dT%H:%M:%SZ")
        for key, fig in figures_by_key(doc).items():
            if fig["unit"].endswith("tokens/s"):
                label = f"{_line(doc)}: {key}"
                point = (when, fig["median"], fig["min"], fig["max"], doc["versions"]["mlx"])
                out.setdefault(label, []).append(point)
    return out


def _line(doc: dict) -> str:
    # A --model run is named by its folder: two models of the same shape are two lines.
    model = f" {doc['model'].get('name')}" if doc["shape"] == "model" else ""
    # Runs of another decode workload are not comparable (bench-compare refuses them either).
    tokens, context = (doc["settings"].get(k) for k in WORKLOAD)
    work = f", decode {tokens} after {context}" if tokens is not None else ""
    return f"{doc['device']['name']} ({doc['device']['backend']}) {doc['shape']}{model}{work}"


def plot(docs: list[dict], out: str | Path) -> Path:
    """Draw every tokens/s figure across the runs, each point labelled with its mlx version."""
    data = series(docs)
    if not data:
        # An empty chart would look like a result; say there is nothing to draw instead.
        raise FarolError(f"no tokens/s figure in {len(docs)} results file(s) to plot",
                         hint="run `invoke bench` first")
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
