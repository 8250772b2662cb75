"""Smoke test of farol-train: quantize, a short QLoRA run, and its bad-input errors."""

import json

import mlx.nn as nn
import pytest
from click.testing import CliRunner
from farol_core.errors import FarolError
from farol_train import quantize, train
from farol_train.cli import main
from mlx_lm import load

from tests.conftest import TEST_RUN


def test_quantize_makes_a_4bit_model(tiny_4bit):
    config = json.loads((tiny_4bit / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 64
    model, _ = load(str(tiny_4bit))
    assert isinstance(model.layers[0].self_attn.q_proj, nn.QuantizedLinear)
    assert (tiny_4bit / "chat_template.jinja").is_file()


def test_quantize_never_overwrites_by_accident(tiny_model, tiny_4bit):
    with pytest.raises(FarolError, match="already exists"):
        quantize(tiny_model, tiny_4bit)


def test_short_run_lowers_the_loss_and_writes_an_mlx_lm_adapter(trained_run, tiny_4bit):
    result, _ = trained_run
    assert result.last_loss < result.first_loss - 0.1
    rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert rows[-1]["val_loss"] is not None and rows[-1]["tokens_per_second"] > 0
    assert json.loads((result.run_dir / "config.json").read_text())["training"]["iters"] == 30
    model, _ = load(str(tiny_4bit), adapter_path=str(result.run_dir))
    assert type(model.layers[-1].self_attn.q_proj).__name__ == "LoRALinear"


def test_unknown_lora_key_is_an_error(tiny_4bit, processed, tmp_path):
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(processed),
              "runs_dir": str(tmp_path), "lora": {"num_layers": 2, "keys": ["qq_proj"]}}
    with pytest.raises(FarolError, match="LoRA keys not found in the model: qq_proj"):
        train(config, log=lambda _: None)


def test_cli_bad_input_gives_a_message_not_a_traceback(tiny_4bit, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["run", "--model", str(tmp_path / "nope"), "--runs-dir",
                               str(tmp_path)])
    assert res.exit_code == 1 and "Model not found" in res.output
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"messages": [}\n')
    res2 = runner.invoke(main, ["run", "--model", str(tiny_4bit), "--data", str(data),
                                "--runs-dir", str(tmp_path)])
    assert res2.exit_code == 1 and "train.jsonl:1: not valid JSON" in res2.output
    res3 = runner.invoke(main, ["quantize", "--model", str(tmp_path / "nope"),
                                "--out", str(tmp_path / "q")])
    assert res3.exit_code == 1 and "Model not found" in res3.output
    assert "Traceback" not in res.output + res2.output + res3.output
