"""Charts from the short run's metrics.jsonl and eval report: produced, non-empty PNGs."""

import json
import shutil

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from click.testing import CliRunner
from farol_eval import plots
from farol_eval.cli import main
from farol_eval.plots import ema, per_epoch, plot

PNG = b"\x89PNG\r\n\x1a\n"


def test_charts_for_an_evaluated_run(evaluated, tmp_path):
    paths = plot(evaluated[0], tmp_path)
    assert [p.name for p in paths] == ["dashboard.png", "analysis.png", "base_vs_tuned.png",
                                       "checkpoints.png"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000


def test_cli_plot_on_a_run_without_eval(trained_run, tmp_path):
    result, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run, ignore=shutil.ignore_patterns("eval"))
    res = CliRunner().invoke(main, ["plot", str(run)])
    assert res.exit_code == 0, res.output
    made = sorted(p.name for p in (run / "eval" / "plots").iterdir())
    assert made == ["analysis.png", "dashboard.png"]


def test_cli_plot_without_metrics_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code == 1 and "No metrics" in res.output


def test_smoothing_helpers_by_hand():
    # span 3 -> alpha 0.5
    assert ema([4.0, 0.0, 2.0], 3) == [4.0, 2.0, 2.0]
    rows = [{"epoch": e, "train_loss": v} for e, v in ((0.5, 4.0), (1.0, 2.0), (1.5, 1.0))]
    assert per_epoch(rows) == ([1, 2], [3.0, 1.0])


def _row(step: int, loss: float, val=None) -> dict:
    return {"step": step, "epoch": step / 40, "train_loss": loss, "val_loss": val,
            "learning_rate": 1e-3, "tokens_per_second": 500.0, "iterations_per_second": 2.0,
            "trained_tokens": 200 * step, "peak_memory_gb": 0.05, "wall_time_s": step / 2}


def _write_run(run, rows) -> None:
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _blue_pixels(png, quadrant) -> int:
    """Pixels of matplotlib's first line colour (C0) in one quarter of a 2x2 chart."""
    img = plt.imread(png)[..., :3]
    h, w = img.shape[0] // 2, img.shape[1] // 2
    part = img[quadrant[0] * h:(quadrant[0] + 1) * h, quadrant[1] * w:(quadrant[1] + 1) * w]
    c0 = np.array(matplotlib.colors.to_rgb("C0"))
    return int((np.abs(part - c0).max(axis=-1) < 0.05).sum())


def test_a_single_report_is_drawn_and_missing_charts_are_announced(tmp_path):
    run = tmp_path / "run"
    _write_run(run, [_row(10, 6.8)])
    said = []
    dash, _ = plot(run, tmp_path / "out", log=said.append)
    # a one-point line without a marker draws nothing: the learning rate panel stayed blank
    assert _blue_pixels(dash, (0, 1)) > 0
    assert any("skipped base_vs_tuned.png" in s and "invoke eval" in s for s in said)


def test_a_nan_loss_does_not_blank_the_smoothed_curves(tmp_path):
    run = tmp_path / "run"
    _write_run(run, [_row(10, 6.8), _row(20, float("nan")), *(_row(s, 6.5) for s in (30, 40))])
    said = []
    plot(run, tmp_path / "out", log=said.append)
    assert any("1 report(s) with a non-finite train loss" in s for s in said)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert per_epoch(rows) == ([1], [np.mean([6.8, 6.5, 6.5])])  # not nan


# --- what the charts show: validation where measured, legible epochs, memory from 0 ---


def _drawn(monkeypatch):
    """The figures the charts save, as {file name: [(title, x labels, y limits, lines,
    labels of the axes drawn over it)]}."""
    seen, save = {}, plots._save

    def record(fig, path):
        fig.canvas.draw()  # tick labels exist only once drawn
        seen[path.name] = [(a.get_title(), [t.get_text() for t in a.get_xticklabels()
                                             if t.get_text()], a.get_ylim(),
                            {line.get_label(): list(line.get_xdata()) for line in a.lines},
                            [c.get_xlabel() for c in a.child_axes])
                           for a in fig.axes]
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", record)
    return seen


def _long_run(run) -> list[dict]:
    """38 epochs of reports every 10 steps, validation measured every 50 steps and reported
    in the row after it, memory near 5 GB."""
    rows = []
    for step in range(10, 770, 10):
        row = {**_row(step, 3.0 - step / 1000), "epoch": step / 20, "peak_memory_gb": 5.0
               + step / 1e5, "val_loss": None, "val_step": None}
        if step % 50 == 10 and step > 50:
            row.update(val_loss=2.5 - step / 2000, val_step=step - 10)
        rows.append(row)
    _write_run(run, rows)
    return rows


def test_charts_mark_validation_where_measured_and_keep_epochs_legible(tmp_path, monkeypatch):
    # Before: analysis.png labelled all 38 epochs (overlapping), drew a volatility and a
    # histogram panel, and the memory axis started at 4.99 GB, so a 1% change filled it.
    seen = _drawn(monkeypatch)
    _long_run(tmp_path / "run")
    plot(tmp_path / "run", tmp_path / "out", log=lambda _: None)
    memory = next(a for a in seen["dashboard.png"] if a[0] == "Peak memory")
    assert memory[2][0] == 0
    loss = next(a for a in seen["dashboard.png"] if a[0] == "Loss")
    assert loss[3]["validation"] == list(range(50, 760, 50))
    titles = [a[0] for a in seen["analysis.png"] if a[0]]
    assert titles == ["Mean train loss per epoch", "Train and validation loss"]
    per_epoch_labels = seen["analysis.png"][0][1]
    assert 2 <= len(per_epoch_labels) <= 12
    assert seen["analysis.png"][1][4] == ["epoch"]  # steps below, epochs on top


def test_the_checkpoint_curve_covers_checkpoints_deleted_since(tmp_path, monkeypatch):
    # Before, it showed only the checkpoints still on disk (3 of them kept).
    seen = _drawn(monkeypatch)
    rows = _long_run(tmp_path / "run")
    kept = [{"step": s, "path": f"step-{s:07d}", "train_loss": 1.0, "valid_loss": 2.0,
             "valid_perplexity": 7.4, "gap": 1.0} for s in (650, 700, 750)]
    plots.checkpoint_curve({"points": kept, "best": kept[-1]}, tmp_path / "checkpoints.png",
                           rows)
    lines = seen["checkpoints.png"][0][3]
    assert lines["validation, as measured during training"] == list(range(50, 760, 50))
    assert lines["validation, kept"] == [650, 700, 750]
