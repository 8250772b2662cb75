from click.testing import CliRunner
from farol_eval.cli import main


def test_unknown_model_and_malformed_data_are_clear_errors(tmp_path, tiny_4bit):
    runner = CliRunner()
    res = runner.invoke(main, ["run", "--model", str(tmp_path / "nope"), "--data", str(tmp_path)])
    assert res.exit_code == 1 and "Model not found" in res.output
    (tmp_path / "valid.jsonl").write_text('{"messages": "oops"}\n')
    res2 = runner.invoke(main, ["run", "--model", str(tiny_4bit), "--data", str(tmp_path),
                                "--out", str(tmp_path / "eval")])
    assert res2.exit_code == 1
    assert "valid.jsonl:1: expected a non-empty 'messages' list" in res2.output
    assert "Traceback" not in res.output + res2.output
