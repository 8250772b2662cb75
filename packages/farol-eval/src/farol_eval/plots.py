"""PNG charts of a run: training dashboard, loss analysis, base against tuned, checkpoints."""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, works on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from farol_core.errors import FarolError  # noqa: E402
from farol_core.rundir import RunDir  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from farol_eval.report import LABELS  # noqa: E402
from farol_eval.runlog import read_metrics, series, validation  # noqa: E402

STEP = "step (training batches)"
LOSS = "loss (nats per token)"
SCORE_METRICS = ("exact_match", "token_f1", "rouge_l")


def plot(run_dir: str | Path, out: str | Path | None = None, window: int = 5,
         log=print) -> list[Path]:
    """Write every chart the run's files allow into `out` (default runs/<name>/eval/plots);
    `log` says which charts were skipped and why."""
    run = RunDir(run_dir)
    rows = read_metrics(run.path)
    if not rows:
        raise FarolError(f"No metrics in {run.metrics}", hint="run `invoke train`")
    out = Path(out) if out else run.plots
    out.mkdir(parents=True, exist_ok=True)
    bad = sum(not _finite(r.get("train_loss")) for r in rows)
    if bad:  # left out rather than let one NaN blank the means and the EMA after it
        log(f"warning: {bad} report(s) with a non-finite train loss left out of analysis.png")
    paths = [dashboard(rows, out / "dashboard.png"), analysis(rows, out / "analysis.png", window)]
    return paths + _report_charts(run.report, out, log, rows)


def _report_charts(report_path: Path, out: Path, log, rows: list[dict]) -> list[Path]:
    """The charts drawn from the eval report, each skipped with a note when it has no data."""
    if not report_path.is_file():
        log(f"skipped base_vs_tuned.png and checkpoints.png: no {report_path} "
            "(run `invoke eval` first)")
        return []
    report, paths = json.loads(report_path.read_text()), []
    if report["generation"]["summary"]:
        paths.append(base_vs_tuned(report, out / "base_vs_tuned.png"))
    else:
        log("skipped base_vs_tuned.png: the eval report has no answered test questions")
    if (report.get("checkpoints") or {}).get("points"):
        paths.append(checkpoint_curve(report["checkpoints"], out / "checkpoints.png", rows))
    else:
        log("skipped checkpoints.png: the eval report has no checkpoint curve")
    return paths


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _steps_axis(a) -> None:
    """Label the x axis as optimizer steps, on whole numbers only (never "step 9.6")."""
    a.set_xlabel(STEP)
    a.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dashboard(rows: list[dict], path: Path) -> Path:
    """Train and validation loss, learning rate, tokens/s and peak memory over steps."""
    fig, ax = plt.subplots(2, 2, figsize=(11, 7))
    # ".-": a run with a single report is a dot, where a bare line would draw nothing
    ax[0, 0].plot(*series(rows, "train_loss"), ".-", label="train")
    val_steps, val = validation(rows)  # a marker only at the steps validation was measured
    ax[0, 0].plot(val_steps, val, "o-",
                  label="validation" if val_steps else "validation (not measured yet)")
    ax[0, 0].legend()
    for a, key, title, unit in ((ax[0, 0], None, "Loss", LOSS),
                                (ax[0, 1], "learning_rate", "Learning rate", "learning rate"),
                                (ax[1, 0], "tokens_per_second", "Throughput",
                                 "trained tokens per second"),
                                (ax[1, 1], "peak_memory_gb", "Peak memory", "memory (GB)")):
        if key:
            a.plot(*series(rows, key), ".-")
        a.set(title=title, ylabel=unit)
        _steps_axis(a)
        a.ticklabel_format(axis="y", useOffset=False)  # flat series otherwise get "1e-6+4.8e-2"
    ax[1, 1].set_ylim(bottom=0)  # from 0, so a small change in memory does not look large
    return _save(fig, path)


def ema(values: list[float], window: int) -> list[float]:
    """Exponential moving average with smoothing 2 / (window + 1)."""
    alpha, out = 2 / (window + 1), []
    for v in values:
        out.append(v if not out else alpha * v + (1 - alpha) * out[-1])
    return out


def per_epoch(rows: list[dict]) -> tuple[list[int], list[float]]:
    """Mean reported train loss per epoch; a row at epoch 1.3 belongs to epoch 2. Rows with
    a non-finite loss are left out."""
    groups: dict[int, list[float]] = {}
    for r in (r for r in rows if _finite(r.get("train_loss"))):
        groups.setdefault(max(1, math.ceil(r["epoch"])), []).append(r["train_loss"])
    epochs = sorted(groups)
    return epochs, [float(np.mean(groups[e])) for e in epochs]


def analysis(rows: list[dict], path: Path, window: int = 5) -> Path:
    """Mean train loss per epoch, and the smoothed train loss with validation over steps
    (epochs on the top axis)."""
    steps, loss = series([r for r in rows if _finite(r.get("train_loss"))], "train_loss")
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    a.plot(*per_epoch(rows), "o-")
    # at most about ten whole-epoch labels: 38 epochs labelled one by one overlapped
    a.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True, min_n_ticks=1))
    a.set(title="Mean train loss per epoch", xlabel="epoch", ylabel=LOSS)
    b.plot(steps, loss, ".-", alpha=0.35, label="train, reported")
    b.plot(steps, ema(loss, window), ".-", label=f"train, smoothed (EMA, span {window})")
    b.plot(*validation(rows), "o-", label="validation, where measured")
    b.legend()
    b.set(title="Train and validation loss", ylabel=LOSS)
    _steps_axis(b)
    _epochs_on_top(b, rows)
    return _save(fig, path)


def _epochs_on_top(a, rows: list[dict]) -> None:
    """A second x axis in epochs over a steps axis (epochs per step from the last report)."""
    last = rows[-1]
    per_step = last["epoch"] / last["step"] if last.get("step") else 0
    if per_step <= 0:
        return
    top = a.secondary_xaxis("top", functions=(lambda s: s * per_step, lambda e: e / per_step))
    top.set_xlabel("epoch")
    top.xaxis.set_major_locator(MaxNLocator(nbins=8, min_n_ticks=1))


def base_vs_tuned(report: dict, path: Path) -> Path:
    """Left: mean exact match, token F1 and ROUGE-L per model with bootstrap interval whiskers.
    Right: held-out loss per split and model."""
    summary, pct = report["generation"]["summary"], round(report["settings"]["confidence"] * 100)
    names = [n for n in ("base", "tuned") if n in summary["token_f1"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    x, width = np.arange(len(SCORE_METRICS)), 0.8 / len(names)
    for i, name in enumerate(names):
        cells = [summary[m][name] for m in SCORE_METRICS]
        means = np.array([c["mean"] for c in cells])
        err = _whiskers(means, cells)
        bars = a.bar(x + (i - (len(names) - 1) / 2) * width, means, width, yerr=err, capsize=4,
                     label=name)
        a.bar_label(bars, fmt="%.3f", padding=2)
    a.set_xticks(x, [LABELS[m] for m in SCORE_METRICS])
    a.set(ylim=(0, 1.05), ylabel="mean score (0 to 1)",
          title=f"Answers to {report['generation']['questions']} test questions "
                f"({pct}% bootstrap CI)")
    a.legend()
    _loss_bars(b, report["splits"], names)
    return _save(fig, path)


def _whiskers(values, cells: list[dict]) -> list[list[float]] | None:
    """yerr for bars at `values`; None (no whiskers) when a bound is missing, as with a
    single question, rather than a zero-length whisker that would read as certainty."""
    if any(c["low"] is None for c in cells):
        return None
    return [[v - c["low"] for v, c in zip(values, cells, strict=True)],
            [c["high"] - v for v, c in zip(values, cells, strict=True)]]


def _loss_bars(a, splits: dict, names: list[str]) -> None:
    x, width = np.arange(len(splits)), 0.8 / len(names)
    for i, name in enumerate(names):
        cells = [splits[s][name] for s in splits]
        err = _whiskers([c["loss"] for c in cells], cells)
        bars = a.bar(x + (i - (len(names) - 1) / 2) * width, [c["loss"] for c in cells], width,
                     yerr=err, capsize=4, label=name)
        a.bar_label(bars, fmt="%.3f", padding=2)
    a.set_xticks(x, list(splits))
    a.set(title="Held-out loss (lower is better)", xlabel="split", ylabel=LOSS)
    a.legend()


def checkpoint_curve(ck: dict, path: Path, rows: list[dict] | None = None) -> Path:
    """Validation loss at every step training measured it (the checkpoints saved there,
    deleted since or not), and train and validation loss of the checkpoints still kept,
    measured again by the eval; the best one marked."""
    steps = [p["step"] for p in ck["points"]]
    fig, a = plt.subplots(figsize=(8, 5))
    a.plot(*validation(rows or []), ".-", color="grey", alpha=0.6,
           label="validation, as measured during training")
    a.plot(steps, [p["train_loss"] for p in ck["points"]], "o-", label="train (sample), kept")
    a.plot(steps, [p["valid_loss"] for p in ck["points"]], "o-", label="validation, kept")
    a.axvline(ck["best"]["step"], color="grey", linestyle="--", label="best (lowest validation)")
    a.set(title="Checkpoints: train/validation gap", xlabel=STEP, ylabel=LOSS)
    a.legend()
    return _save(fig, path)
