"""A trained adapter moves the answers to the questions it was trained on towards their
references, on the pre-trained tiny base (random weights cannot be steered)."""

import json

import pytest
from farol_core.dataset import read_messages
from farol_core.model import load_model
from farol_eval import checkpoints
from farol_eval.generation import answer
from farol_eval.metrics import token_f1
from farol_train import train
from farol_train.memory import ALL_KEYS


# Catches an adapter that is trained but not applied at generation, a prompt mask that hides
# the answer, and a chat template that differs between training and generation.
@pytest.mark.slow
def test_a_trained_adapter_moves_answers_towards_their_references(pretrained_4bit, processed,
                                                                   tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = (processed / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(lines[:4]) + "\n")  # four questions to learn
    (data / "valid.jsonl").write_text((processed / "valid.jsonl").read_text())
    config = {"name": "learn", "seed": 0, "model": str(pretrained_4bit), "data": str(data),
              "runs_dir": str(tmp_path / "runs"),
              "lora": {"num_layers": 4, "rank": 16, "keys": ALL_KEYS},
              "training": {"iters": 40, "batch_size": 4, "learning_rate": 5e-4,
                           "steps_per_eval": 40, "val_batches": 1, "save_every": 40}}
    result = train(config, log=lambda _: None)
    chats = read_messages(data / "train.jsonl")
    model, tokenizer = load_model(str(pretrained_4bit))
    f1 = {}
    for name, adapter in (("base", None), ("tuned", result.run_dir)):
        checkpoints.use_adapter(model, adapter)
        texts, _ = answer(model, tokenizer, [c[:-1] for c in chats], max_tokens=48)
        f1[name] = [token_f1(t, c[-1]["content"]) for t, c in zip(texts, chats, strict=True)]
    # Every trained question gets closer to its reference, and on average by a wide margin.
    assert all(t > b for t, b in zip(f1["tuned"], f1["base"], strict=True)), json.dumps(f1)
    assert sum(f1["tuned"]) / 4 >= sum(f1["base"]) / 4 + 0.3, json.dumps(f1)
