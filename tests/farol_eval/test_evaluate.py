"""Smoke test of farol-eval on the short run: base against tuned, honestly computed."""

import json
import math

from click.testing import CliRunner
from farol_eval import evaluate
from farol_eval.cli import main


def test_base_and_tuned_on_the_same_splits(trained_run):
    result, _ = trained_run
    report = evaluate(result.run_dir, log=lambda _: None)
    assert json.loads((result.run_dir / "eval" / "report.json").read_text()) == report
    assert report["loss_tokens"] == "answer tokens only"
    for split in ("valid", "test"):
        base, tuned = report["splits"][split]["base"], report["splits"][split]["tuned"]
        assert base["tokens"] == tuned["tokens"] > 0
        assert tuned["loss"] < base["loss"]
        assert math.isclose(tuned["perplexity"], math.exp(tuned["loss"]))
    assert len(report["samples"]) == 2
    assert all({"question", "reference", "base", "tuned"} <= s.keys() for s in report["samples"])


def test_cli_missing_run_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["run", "--run", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "No run at" in res.output and "Traceback" not in res.output
