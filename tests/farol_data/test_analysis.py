"""Token lengths with the base model's own tokenizer, and the max_seq_length recommendation."""

import io
import json

import pytest
from click.testing import CliRunner
from farol_core import template
from farol_core.model import load_tokenizer
from farol_data import prepare
from farol_data.analysis import recommend_max_seq_length, stats
from farol_data.cli import main

from tests.conftest import SAMPLE_BIOS, SAMPLE_QA


@pytest.mark.parametrize(("p95", "expected"), [
    (1, 128), (128, 128), (128.5, 256), (300, 384), (2000, 2048), (9000, 2048)])
def test_recommendation_is_p95_rounded_up_to_128_capped_at_2048(p95, expected):
    assert recommend_max_seq_length(p95) == expected


def test_the_cap_and_the_unset_limit_are_trainings_own_max_seq_length(tiny_model, tmp_path,
                                                                      monkeypatch):
    # Three copies of 2048 (data schema, train schema, SEQ_CAP) could drift apart; now the
    # train schema's default is read, so a run's default and the recommendation agree.
    from farol_core.config import load_config
    from farol_data import analysis

    assert load_config("train")["training"]["max_seq_length"] == analysis.SEQ_CAP
    monkeypatch.setattr(analysis, "SEQ_CAP", 128)
    out = prepare([SAMPLE_QA], tmp_path / "out", biographies=SAMPLE_BIOS, tokenizer=tiny_model)
    assert out.report["tokens"]["limit"] == 128
    assert out.report["tokens"]["recommended_max_seq_length"] <= 128


def test_stats_are_numpys_linear_percentiles():
    assert stats(list(range(1, 101))) == {"min": 1, "max": 100, "mean": 50.5, "p50": 50.5,
                                          "p95": 95.0}
    assert stats([]) is None


def test_token_lengths_use_the_models_tokenizer_and_template(tiny_model, tmp_path):
    out = prepare([SAMPLE_QA], tmp_path / "out", biographies=SAMPLE_BIOS, tokenizer=tiny_model,
                  config={"max_seq_length": 64})
    tokens = out.report["tokens"]
    tok = load_tokenizer(tiny_model)
    kept = [r for records in out.splits.values() for r in records]
    lengths = sorted(len(template.encode(tok, r["messages"])) for r in kept)
    assert (tokens["min"], tokens["max"]) == (lengths[0], lengths[-1])
    assert tokens["over_limit"] == sum(n > 64 for n in lengths) > 0
    assert tokens["recommended_max_seq_length"] == recommend_max_seq_length(tokens["p95"])
    assert out.report["tokenizer"] == str(tiny_model)


def test_cli_prints_the_accounting_and_the_token_summary(tiny_model, tmp_path):
    # rich sizes the summary table to COLUMNS, and a narrow terminal wraps the "read" cell
    # (COLUMNS=40 failed here); wrapping itself is tested at a fixed width below.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["prepare", "--input", str(SAMPLE_QA), "--biographies", str(SAMPLE_BIOS),
               "--out", str(tmp_path / "o"), "--tokenizer", str(tiny_model), "--seed", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert f"{report['read']} = kept {report['kept']} + rejected 0" in result.output
    assert f"recommended {report['tokens']['recommended_max_seq_length']}" in result.output
    assert report["config"]["seed"] == 4
    bad = CliRunner().invoke(main, ["prepare", "--input", str(SAMPLE_QA), "--out",
                                    str(tmp_path / "x"), "--tokenizer", str(tmp_path / "none")])
    assert bad.exit_code == 1 and "Tokenizer folder not found" in bad.output


def test_the_summary_shows_a_long_output_path_whole(tmp_path):
    from farol_data.console import summary_table
    from rich.console import Console

    out = tmp_path / ("a-long-folder-name-" * 6) / "processed"
    report = prepare([SAMPLE_QA], out).report
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(summary_table(report, out))
    # The value column's pieces, row by row, from "wrote" to the bottom border.
    lines = console.export_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "wrote" in line)
    cells = [line.split("│")[2].strip() for line in lines[start:] if line.count("│") == 3]
    assert "".join(cells) == f"{out}/"


def test_a_negative_seed_is_a_usage_error_naming_the_option(tmp_path):
    result = CliRunner().invoke(main, ["prepare", "--input", str(SAMPLE_QA), "--out",
                                       str(tmp_path / "out"), "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output
    assert not (tmp_path / "out").exists()
