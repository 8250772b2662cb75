"""Charts from the short run's metrics.jsonl and eval report: produced, non-empty PNGs."""

import shutil

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
