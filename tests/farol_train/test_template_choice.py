"""`template: model`: a base model's own chat template, kept for training, eval and the bridge."""

import json
import shutil
import subprocess
import sys

import pytest
from farol_core import template
from farol_core.dataset import load_split
from farol_core.errors import FarolError
from farol_core.model import load_model, load_tokenizer
from farol_core.rundir import RunDir
from farol_train import quantize, train
from farol_train.data_order import fingerprint

from tests.conftest import TEST_RUN

# A ChatML-like layout, as Qwen's: role headers, no BOS, the answer closed by EOS.
OWN = ("{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] }}"
       "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
       "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}")
CHAT = [{"role": "user", "content": "Onde fica Faro?"},
        {"role": "assistant", "content": "No Algarve."}]


def _with_template(tiny_model, out, chat_template):
    shutil.copytree(tiny_model, out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["chat_template"] = chat_template
    if chat_template is None:
        del config["chat_template"]
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def own_model(tiny_model, tmp_path_factory):
    """The tiny model with a chat template of its own, quantized keeping it."""
    own = _with_template(tiny_model, tmp_path_factory.mktemp("own") / "tiny-own", OWN)
    return quantize(own, own.parent / "tiny-own-4bit", template="model")


def test_model_keeps_the_tokenizers_own_template_and_mistral_replaces_it(own_model):
    own = load_tokenizer(own_model, "model")
    assert template.render(own, CHAT) == ("<|user|>\nOnde fica Faro?\n<|assistant|>\n"
                                          "No Algarve.</s>\n")
    tokens, offset = template.encode_for_training(own, CHAT)
    assert own.decode(tokens[offset:]).strip() == "No Algarve.</s>"
    mistral = load_tokenizer(own_model)  # the default
    assert template.render(mistral, CHAT) == "<s>[INST] Onde fica Faro? [/INST] No Algarve.</s>"


def test_quantize_writes_the_chosen_template_beside_the_model(own_model, tmp_path):
    # mlx_lm.generate reads the tokenizer's template: it must prompt as Farol trained.
    assert (own_model / "chat_template.jinja").read_text() == OWN  # as convert saved it
    farol = quantize(own_model.parent / "tiny-own", tmp_path / "farol-4bit")
    assert (farol / "chat_template.jinja").read_text() == template.CHAT_TEMPLATE
    with pytest.raises(FarolError, match="template must be one of mistral, model"):
        quantize(own_model.parent / "tiny-own", tmp_path / "x", template="llama")


def test_model_without_a_template_of_its_own_is_a_clear_error(tiny_model, tmp_path):
    bare = _with_template(tiny_model, tmp_path / "bare", None)
    load_tokenizer(bare)  # mistral needs none
    with pytest.raises(FarolError, match="has no chat template of its own"):
        load_tokenizer(bare, "model")


@pytest.mark.slow
def test_a_run_with_template_model_trains_and_answers_in_that_template(own_model, processed,
                                                                      tmp_path):
    config = {**TEST_RUN, "model": str(own_model), "data": str(processed),
              "runs_dir": str(tmp_path), "template": "model",
              "training": {**TEST_RUN["training"], "iters": 2}}
    result = train(config, log=lambda _: None)
    run = RunDir(result.run_dir)
    assert run.read_config()["template"] == "model"
    # What training tokenized is the train split in the model's own template, not [INST].
    trained = run.latest().state["data_fingerprint"]["train"]
    own, mistral = load_tokenizer(own_model, "model"), load_tokenizer(own_model)
    assert trained == fingerprint(load_split(processed / "train.jsonl", own))
    assert trained != fingerprint(load_split(processed / "train.jsonl", mistral))
    # The bridge and farol-ask load the adapter's run and take its template from there.
    _, served = load_model(own_model, result.run_dir)
    assert template.render(served, CHAT) == template.render(own, CHAT)
    ask = subprocess.run([sys.executable, "-c", "from farol_bridge.cli import ask_main; "
                          "ask_main()", "Onde fica Faro?", "--model", str(own_model),
                          "--adapter-path", str(result.run_dir), "--max-tokens", "2"],
                         capture_output=True, text=True, timeout=120)
    assert json.loads(ask.stdout)["status"] == "success", ask.stdout + ask.stderr
