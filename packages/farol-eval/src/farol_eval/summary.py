"""The run summary: the facts of a finished (or stopped) run, as text and as one HTML file."""

import base64
import html
import json
from pathlib import Path

from farol_core.errors import FarolError
from farol_core.io import atomic_write_text
from farol_core.rundir import RunDir

from farol_eval.plots import plot
from farol_eval.report import LABELS
from farol_eval.runlog import read_metrics, series

# Overfitting: validation loss this much above its best while train loss still falls.
RISE = 0.02
OVERFIT_RULE = (f"overfitting when the last validation loss is more than {RISE:.0%} above the "
                "best one and the train loss fell over the same steps")


def summarize(run_dir: str | Path) -> dict:
    """The facts of a run from the files it wrote: duration, losses, % improvement, the
    overfitting check, checkpoints, best adapter and base against tuned when evaluated."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise FarolError(f"no metrics in {RunDir(run_dir).metrics}",
                         hint="train the run first (`invoke train`)")
    steps, train = series(rows, "train_loss")
    val_steps, val = series(rows, "val_loss")
    best = min(zip(val, val_steps, strict=True)) if val else None
    return {
        "run": str(run_dir), "steps": rows[-1]["step"], "duration_s": rows[-1]["wall_time_s"],
        "first_loss": {"step": steps[0], "loss": train[0]},
        "last_loss": {"step": steps[-1], "loss": train[-1]},
        "improvement_pct": 100 * (train[0] - train[-1]) / train[0] if train[0] else None,
        "best_val": {"step": best[1], "loss": best[0]} if best else None,
        "last_val": {"step": val_steps[-1], "loss": val[-1]} if val else None,
        "overfitting": overfitting(rows),
        "checkpoints": [str(p) for p in RunDir(run_dir).checkpoints()],
        "best_adapter": _best_adapter(run_dir),
        "evaluation": _evaluation(RunDir(run_dir).report),
    }


def overfitting(rows: list[dict]) -> dict:
    """The overfitting check and the rule it applies (see OVERFIT_RULE)."""
    val_steps, val = series(rows, "val_loss")
    if len(val) < 2:
        return {"verdict": "unknown", "rule": OVERFIT_RULE,
                "reason": f"{len(val)} validation measurement(s); the check needs 2"}
    best = min(range(len(val)), key=val.__getitem__)
    rise = (val[-1] - val[best]) / val[best]
    train_then, train_now = _train_at(rows, val_steps[best]), _train_at(rows, val_steps[-1])
    train_fell = train_now < train_then
    verdict = "overfitting" if rise > RISE and train_fell else "no sign of overfitting"
    if best == len(val) - 1:
        reason = f"validation loss is at its best at the last measurement (step {val_steps[-1]})"
    else:
        reason = (f"validation loss {val[-1]:.4f} at step {val_steps[-1]} is {rise:+.1%} from "
                  f"its best {val[best]:.4f} at step {val_steps[best]}; train loss went "
                  f"{train_then:.4f} -> {train_now:.4f} over the same steps")
    return {"verdict": verdict, "rule": OVERFIT_RULE, "reason": reason,
            "gap": val[-1] - train_now}


def _train_at(rows: list[dict], step: int) -> float:
    """The train loss of the last report at or before `step`."""
    return [r["train_loss"] for r in rows if r["step"] <= step][-1]


def _best_adapter(run_dir: Path) -> dict | None:
    run = RunDir(run_dir)
    best = run.best()
    if best is None:
        return None
    return {"path": str(run.best_dir), "step": best.get("step"),
            "val_loss": best.get("val_loss")}


def _evaluation(path: Path) -> dict | None:
    """Base against tuned from the eval report: loss per split and answer-metric means."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    splits = {name: {v: s[v]["loss"] for v in ("base", "tuned") if v in s}
              for name, s in report["splits"].items()}
    answers = {metric: {v: s[v]["mean"] for v in ("base", "tuned") if v in s}
               for metric, s in report["generation"]["summary"].items()}
    return {"report": str(path), "loss": splits, "answers": answers}


def summary_lines(s: dict) -> list[str]:
    """The summary as lines of text for the terminal and the notebook."""
    lines = [f"run: {s['run']} ({s['steps']} steps in {_clock(s['duration_s'])})",
             f"train loss: {s['first_loss']['loss']:.4f} (step {s['first_loss']['step']}) -> "
             f"{s['last_loss']['loss']:.4f} (step {s['last_loss']['step']})",
             "improvement: " + (f"{s['improvement_pct']:.1f}%" if s["improvement_pct"]
                                is not None else "n/a (first loss is 0)")]
    best = s["best_val"]
    lines.append(f"best validation loss: {best['loss']:.4f} at step {best['step']}" if best
                 else "best validation loss: not measured")
    o = s["overfitting"]
    lines += [f"overfitting check: {o['verdict']} ({o['reason']})", f"  rule: {o['rule']}"]
    if "gap" in o:
        lines.append(f"  gap (last validation loss - train loss): {o['gap']:+.4f}")
    lines.append(f"checkpoints: {len(s['checkpoints'])}")
    lines += [f"  {c}" for c in s["checkpoints"]]
    a = s["best_adapter"]
    lines.append(f"best adapter: {a['path']} (step {a['step']}, val loss {a['val_loss']:.4f})"
                 if a else "best adapter: none saved")
    return lines + _evaluation_lines(s["evaluation"])


def _evaluation_lines(e: dict | None) -> list[str]:
    if e is None:
        return ["base against tuned: not evaluated (run `invoke eval`)"]
    lines = ["base against tuned:"]
    for name, v in e["loss"].items():
        lines.append(f"  {name} loss: " + ", ".join(f"{k} {x:.4f}" for k, x in v.items()))
    for name, v in e["answers"].items():
        lines.append(f"  {LABELS.get(name, name)}: "
                     + ", ".join(f"{k} {x:.3f}" for k, x in v.items()))
    return lines


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def write_html(run_dir: str | Path, summary: dict | None = None, log=print) -> Path:
    """runs/<name>/summary.html: the summary and every chart of the run embedded as base64
    PNG, so the one file can be mailed or printed."""
    run_dir = Path(run_dir)
    summary = summary or summarize(run_dir)
    images = "".join(f'<h2>{html.escape(p.stem)}</h2><img alt="{html.escape(p.stem)}" '
                     f'src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
                     for p in plot(run_dir, log=log))
    text = html.escape("\n".join(summary_lines(summary)))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Farol run "
            f"{html.escape(run_dir.name)}</title><style>body{{font-family:sans-serif;"
            f"max-width:1100px;margin:auto}}img{{max-width:100%}}</style></head><body>"
            f"<h1>Farol run {html.escape(run_dir.name)}</h1><pre>{text}</pre>{images}"
            f"</body></html>\n")
    path = RunDir(run_dir).summary_html
    atomic_write_text(path, page)
    return path
