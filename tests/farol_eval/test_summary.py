"""`farol-eval summary` and `invoke summary` on a real short run, and the overfitting rule."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from farol_eval.summary import overfitting
from invoke import Context

import tasks

FAROL_EVAL = Path(sys.executable).parent / "farol-eval"


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """The session run copied, so summary.html and charts do not land in the shared one."""
    result, _ = trained_run
    return Path(shutil.copytree(result.run_dir, tmp_path / "runs" / "short"))


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_summary_command_prints_the_runs_facts_and_writes_one_html_file(run_copy):
    out = subprocess.run([str(FAROL_EVAL), "summary", "--run", str(run_copy)],
                         capture_output=True, text=True, check=True).stdout
    rows = _rows(run_copy)
    first, last = rows[0], rows[-1]
    # the first and last reported losses, not a window mean or a checkpoint's loss
    assert f"train loss: {first['train_loss']:.4f} (step {first['step']}) -> " \
           f"{last['train_loss']:.4f} (step {last['step']})" in out
    pct = 100 * (first["train_loss"] - last["train_loss"]) / first["train_loss"]
    assert f"improvement: {pct:.1f}%" in out
    vals = [(r["val_loss"], r["step"]) for r in rows if r.get("val_loss") is not None]
    best = min(vals)
    assert f"best validation loss: {best[0]:.4f} at step {best[1]}" in out
    assert "rule: overfitting when" in out
    assert "step-0000015" in out and "best adapter: " in out
    assert "base against tuned: not evaluated" in out
    page = (run_copy / "summary.html").read_text(encoding="utf-8")
    # self-contained: every image inline, none a path that breaks once the file is mailed
    assert page.count('src="data:image/png;base64,') >= 2
    assert re.findall(r'src="(?!data:)', page) == []


def test_invoke_summary_reads_runs_name(run_copy, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "RUNS", run_copy.parent)
    tasks.summary(Context(), run="short")
    out = capsys.readouterr().out
    assert f"run: {run_copy}" in out and (run_copy / "summary.html").is_file()


def test_summary_of_a_run_without_metrics_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    res = subprocess.run([str(FAROL_EVAL), "summary", "--run", str(tmp_path / "empty")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "no metrics" in res.stderr and "Traceback" not in res.stderr


def _log(pairs):
    """Reports every 10 steps: (train loss, val loss or None)."""
    return [{"step": 10 * (i + 1), "train_loss": t, "val_loss": v} for i, (t, v) in
            enumerate(pairs)]


@pytest.mark.parametrize("pairs, verdict", [
    # validation rose 10% from its best while train kept falling: the textbook case
    ([(3.0, 2.0), (2.0, 1.5), (1.0, 1.65)], "overfitting"),
    # both rose: a bad learning rate, not overfitting
    ([(3.0, 2.0), (2.0, 1.5), (2.5, 1.65)], "no sign of overfitting"),
    # a 1% wobble is under the 2% margin
    ([(3.0, 2.0), (2.0, 1.5), (1.0, 1.515)], "no sign of overfitting"),
    ([(3.0, None), (2.0, 1.5)], "unknown"),
])
def test_overfitting_rule(pairs, verdict):
    assert overfitting(_log(pairs))["verdict"] == verdict
