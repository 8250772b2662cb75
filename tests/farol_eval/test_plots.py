"""Charts from the short run's metrics.jsonl and eval report: produced, non-empty PNGs."""

import json
import shutil

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from click.testing import CliRunner
from farol_eval.cli import main
from farol_eval.plots import ema, per_epoch, plot, rolling

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
    assert rolling([1.0, 3.0, 5.0], 2, max) == [1.0, 3.0, 5.0]
    assert rolling([1.0, 3.0, 5.0], 2, sum) == [1.0, 4.0, 8.0]
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
