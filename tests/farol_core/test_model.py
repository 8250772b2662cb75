"""Smoke test of farol-core: the tiny model loads through mlx-lm and generates."""

import json

import mlx.core as mx
import pytest
from farol_core import device
from farol_core.errors import FarolError
from farol_core.generate import complete
from farol_core.model import load_model, model_facts
from mlx_lm import load


def test_tiny_model_loads_with_mlx_lm_and_generates(tiny_model):
    model, tok = load(str(tiny_model))
    assert json.loads((tiny_model / "config.json").read_text())["model_type"] == "mistral"
    logits = model(mx.array([[1, 5, 9]]))
    assert logits.shape == (1, 3, tok.vocab_size)
    model, tok = load_model(tiny_model)
    done = complete(model, tok, "Quem foi Hassan Nader?", max_tokens=5)
    assert done.prompt_tokens > 5 and 1 <= done.completion_tokens <= 5
    assert done.finish_reason in ("stop", "length")


def test_model_facts_read_the_folder(tiny_4bit):
    facts = model_facts(tiny_4bit)
    assert facts["quantization"] == {"bits": 4, "group_size": 64}
    weights = list(tiny_4bit.glob("*.safetensors"))
    assert weights and facts["size_bytes"] == sum(p.stat().st_size for p in weights)


def test_unknown_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FarolError, match="Model not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FarolError, match="not a model folder"):
        load_model(tmp_path / "empty")


def test_device_facts():
    facts = device.facts()
    assert facts["backend"] in ("cpu", "metal", "cuda")
    assert facts["ram_total"] >= facts["ram_available"] > 0
    assert facts["mlx"] == mx.__version__


def test_load_tokenizer_alone_installs_farols_template(tiny_model, tmp_path):
    from farol_core import template
    from farol_core.model import load_tokenizer

    tok = load_tokenizer(tiny_model)
    messages = [{"role": "user", "content": "Quem foi?"}, {"role": "assistant", "content": "Um."}]
    assert tok.chat_template == template.CHAT_TEMPLATE
    assert tok.apply_chat_template(messages, tokenize=False).startswith(tok.bos_token + "[INST] ")
    with pytest.raises(FarolError, match="Tokenizer folder not found"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FarolError, match="Could not load a tokenizer"):
        load_tokenizer(tmp_path / "empty")


def _adapter(folder, tensors: dict, config: dict | None = None):
    folder.mkdir()
    lora = {"rank": 4, "scale": 20.0, "dropout": 0.0, "keys": None}
    cfg = {"fine_tune_type": "lora", "num_layers": 1, "lora_parameters": lora}
    (folder / "adapter_config.json").write_text(json.dumps(cfg if config is None else config))
    mx.save_safetensors(str(folder / "adapters.safetensors"), tensors)
    return folder


def test_adapter_for_another_model_is_one_clear_line(tiny_model, tmp_path):
    # A rank-4 LoRA of a model 7 wide: it cannot fit the tiny model (128 wide).
    q = "model.layers.3.self_attn.q_proj"
    adapter = _adapter(tmp_path / "run", {f"{q}.lora_a": mx.zeros((7, 4)),
                                          f"{q}.lora_b": mx.zeros((4, 7))})
    (adapter / "config.json").write_text(json.dumps({"model": "models/outro-modelo"}))
    with pytest.raises(FarolError) as err:
        load_model(tiny_model, adapter)
    assert "does not fit the model" in err.value.message
    assert "\n" not in err.value.message and "models/outro-modelo" in err.value.hint


def test_broken_model_and_adapter_files_are_clear_errors(tiny_model, tmp_path):
    import shutil

    broken = shutil.copytree(tiny_model, tmp_path / "broken")
    with open(broken / "model.safetensors", "r+b") as f:  # an interrupted download
        f.truncate(1000)
    with pytest.raises(FarolError, match="Could not load"):
        load_model(broken)
    with pytest.raises(FarolError, match="not an mlx-lm adapter"):
        load_model(tiny_model, _adapter(tmp_path / "peft", {"x": mx.zeros(1)}, config={}))
    cut = _adapter(tmp_path / "cut", {"model.layers.3.self_attn.q_proj.lora_a": mx.zeros((128, 4))})
    with open(cut / "adapters.safetensors", "r+b") as f:
        f.truncate(20)
    with pytest.raises(FarolError, match="Could not load the adapter"):
        load_model(tiny_model, cut)
