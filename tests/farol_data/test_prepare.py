"""Smoke test of farol-data on the sample, plus the accounting and bad-input rules."""

import json
from collections import defaultdict

from click.testing import CliRunner
from farol_data import prepare
from farol_data.clean import clean_text
from farol_data.cli import main

from tests.conftest import SAMPLE_BIOS, SAMPLE_QA


def test_sample_goes_through_cleanly(processed):
    report = json.loads((processed / "report.json").read_text())
    assert report["read"] == report["kept"] + report["rejected"] + report["duplicates"]
    assert report["rejected"] == 0 and report["kept"] >= 160
    assert set(report["formats"]) == {"completion", "alpaca", "chat"}
    assert sum(report["splits"].values()) == report["kept"]
    assert all(n > 0 for n in report["splits"].values())
    for name in ("train", "valid", "test"):
        for line in (processed / f"{name}.jsonl").read_text().splitlines():
            assert json.loads(line)["messages"][-1]["role"] == "assistant"


def test_no_group_lands_in_two_splits(processed):
    seen = defaultdict(set)
    for name in ("train", "valid", "test"):
        for line in (processed / f"{name}.jsonl").read_text().splitlines():
            seen[json.loads(line)["group"]].add(name)
    assert all(len(splits) == 1 for splits in seen.values())


def test_split_is_deterministic_for_a_seed(tmp_path):
    a = prepare([SAMPLE_QA], tmp_path / "a", biographies=SAMPLE_BIOS, seed=3)
    b = prepare([SAMPLE_QA], tmp_path / "b", biographies=SAMPLE_BIOS, seed=3)
    test_a, test_b = (tmp_path / d / "test.jsonl" for d in "ab")
    assert test_a.read_text() == test_b.read_text()
    assert a.report["splits"] == b.report["splits"]


def test_broken_records_are_all_accounted_for(tmp_path):
    good = {"prompt": "Onde fica Faro?", "completion": "Faro fica no Algarve, no sul."}
    lines = [
        json.dumps(good),
        json.dumps(good),  # exact duplicate
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"prompt": "Curta?", "completion": "Sim."}),
        json.dumps({"prompt": 3, "completion": "Três é um número inteiro positivo."}),
        json.dumps({"foo": "bar"}),
        json.dumps({"prompt": "Links?", "completion": "http://a.pt http://b.pt http://c.pt x y"}),
        json.dumps({"messages": [{"role": "user", "content": "Olá, tudo bem contigo?"}]}),
    ]
    src = tmp_path / "raw.jsonl"
    src.write_text("\n".join(lines) + "\n")
    result = prepare([src], tmp_path / "out", config={"split": {"train": 1, "valid": 0,
                                                                "test": 0}})
    r = result.report
    assert (r["read"], r["kept"], r["duplicates"], r["rejected"]) == (9, 1, 1, 7)
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [x["line"] for x in rejects] == [3, 4, 5, 6, 7, 8, 9]
    assert all(x["reason"] and x["raw"] for x in rejects)


def test_cleaning_keeps_meaning():
    raw = "  Estádio   de\u00a0São Luís \x07\n\n\n\nFaro "
    assert clean_text(raw) == "Estádio de São Luís\n\nFaro"


def test_cli_bad_input_gives_a_message_not_a_traceback(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(main, ["prepare", "--input", str(tmp_path / "no.jsonl"),
                                   "--out", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "Input file not found" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n[1]\n")
    broken = runner.invoke(main, ["prepare", "--input", str(bad), "--out", str(tmp_path / "o")])
    assert broken.exit_code == 1 and "Nothing usable" in broken.output
    assert "Traceback" not in missing.output + broken.output
