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
    assert facts["size_bytes"] > 0


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
