"""The Invoke tasks pass the user's choices through: a thin layer, but one that picks defaults."""

import json

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
