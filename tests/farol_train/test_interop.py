"""Adapters cross over: farol-train's load in mlx-lm's own CLI, mlx-lm's load in Farol."""

import subprocess
import sys

import pytest
from farol_bridge import Bridge
from farol_eval import evaluate

from tests.farol_bridge.serving import handle
from tests.farol_train.mlx_lm_run import train_with_mlx_lm


def test_farol_adapter_loads_in_mlx_lm_generate(trained_run, tiny_4bit):
    result, _ = trained_run
    out = subprocess.run([sys.executable, "-m", "mlx_lm", "generate", "--model", str(tiny_4bit),
                          "--adapter-path", str(result.run_dir), "--prompt", "Quem foi?",
                          "--max-tokens", "4"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Generation:" in out.stdout and "tokens-per-sec" in out.stdout


@pytest.fixture(scope="module")
def mlx_lm_adapter(tiny_4bit, processed, tmp_path_factory):
    out = tmp_path_factory.mktemp("mlx-lm-adapter")
    train_with_mlx_lm(tiny_4bit, processed, out, iters=5)
    return out


def test_mlx_lm_adapter_loads_in_farol_eval_and_bridge(mlx_lm_adapter, tiny_4bit, processed,
                                                       tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for split in ("valid", "test"):
        lines = (processed / f"{split}.jsonl").read_text().splitlines()[:4]
        (small / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    report = evaluate(model=str(tiny_4bit), adapter=mlx_lm_adapter, data=small, samples=1,
                      max_tokens=4, out=tmp_path / "eval", log=lambda _: None)
    valid = report["splits"]["valid"]
    assert report["adapter"] == str(mlx_lm_adapter) and {"base", "tuned"} <= set(valid)
    assert valid["tuned"]["loss"] != valid["base"]["loss"]  # the adapter was applied
    bridge = Bridge(str(tiny_4bit), str(mlx_lm_adapter))
    reply, keep = handle(bridge, '{"id": 1, "op": "generate", "messages": [{"role": "user", '
                            '"content": "Quem foi Hassan Nader?"}], "max_tokens": 3}')
    assert keep and reply["status"] == "ok", reply
    assert type(bridge.model.layers[-1].self_attn.q_proj).__name__ == "LoRALinear"
