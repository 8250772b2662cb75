"""The Invoke tasks pass the user's choices through: a thin layer, but one that picks defaults."""

import json

import pytest
from invoke import Context

import tasks


def _categories(out):
    return json.loads((out / "report.json").read_text(encoding="utf-8"))["categories"]


def test_prepare_with_an_input_leaves_the_sample_biographies_out(tmp_path):
    qa = tmp_path / "mine.jsonl"
    lines = tasks.SAMPLE_QA.read_text(encoding="utf-8").splitlines()[:20]
    qa.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    assert sum(_categories(tmp_path / "out").values()) <= 20
    assert "jogadores" not in _categories(tmp_path / "out")


def test_prepare_without_inputs_uses_the_whole_sample(tmp_path):
    tasks.prepare(Context(), out=str(tmp_path / "out"))
    assert "jogadores" in _categories(tmp_path / "out")


def test_train_and_preflight_take_model_and_data_from_the_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: models/mistral-7b-4bit\ndata: /srv/farense\n", encoding="utf-8")
    paths = tasks._run_paths(str(config), None, None)
    assert paths == {"model": str(tasks.ROOT / "models" / "mistral-7b-4bit"),
                     "data": "/srv/farense"}
    assert tasks._run_paths(str(config), "m", "d") == {"model": "m", "data": "d"}
    assert tasks._run_paths(None, None, None) == {"model": str(tasks.TINY_4BIT),
                                                  "data": str(tasks.PROCESSED)}


def test_preflight_reports_the_configs_model_not_the_tiny_one(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model: /no-such-model\n", encoding="utf-8")  # short: the table wraps
    with pytest.raises(SystemExit):
        tasks.preflight(Context(), config=str(config))
    assert "/no-such-model not found" in capsys.readouterr().out
