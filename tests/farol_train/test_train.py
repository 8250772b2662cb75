"""Smoke test of farol-train: quantize, a short QLoRA run, and its bad-input errors."""

import json
import math
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from click.testing import CliRunner
from farol_core.config import ConfigError
from farol_core.dataset import collate, load_split, masked_loss
from farol_core.errors import FarolError
from farol_core.model import load_model
from farol_train import quantize, train
from farol_train.cli import main
from farol_train.data_order import DataOrder, answerable, trained_tokens
from farol_train.lora import apply_lora
from farol_train.run_config import resolve
from farol_train.step import make_step
from mlx.utils import tree_flatten
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


def test_quantize_refuses_what_mlx_cannot_quantize_before_writing(tiny_model, tmp_path):
    # mlx-lm's convert took bits 0 as 4 and left every layer float at group size 48, silently.
    with pytest.raises(FarolError) as caught:
        quantize(tiny_model, tmp_path / "q", bits=7, group_size=48)
    assert str(caught.value) == ("bits must be 2, 3, 4, 5, 6 or 8, got 7; "
                                 "group size must be 32, 64 or 128, got 48")
    assert not (tmp_path / "q").exists()
    result = CliRunner().invoke(main, ["quantize", "--model", str(tiny_model), "--out",
                                       str(tmp_path / "q"), "--bits", "7"])
    assert result.exit_code == 2 and "'7' is not one of" in result.output


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
    config["lora"]["keys"] = []  # used to reach mlx's grad with nothing to differentiate
    with pytest.raises(FarolError, match="lora.keys is empty"):
        train(config, log=lambda _: None)


def test_peft_key_names_get_farols_names_in_the_hint():
    with pytest.raises(ConfigError) as caught:
        resolve({"lora": {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj"]},
                 "training": {"num_epochs": 2, "batch_size": 0}})
    assert len(caught.value.problems) == 3  # every problem at once, the bad value included
    for rename in ("r -> lora.rank", "lora_alpha -> lora.alpha", "target_modules -> lora.keys",
                   "num_epochs -> training.epochs"):
        assert rename in caught.value.hint
    with pytest.raises(ConfigError) as caught:  # mlx-lm's own lora config layout
        resolve({"num_layers": 8, "lora_parameters": {"rank": 8}, "max_grad_norm": 1.0})
    for rename in ("num_layers -> lora.num_layers", "lora_parameters -> lora (rank",
                   "max_grad_norm -> training.max_grad_norm"):
        assert rename in caught.value.hint
    with pytest.raises(ConfigError) as caught:  # mlx-lm's flat training keys
        resolve({"batch_size": 4, "iters": 1000, "learning_rate": 1e-5})
    for key in ("batch_size", "iters", "learning_rate"):
        assert f"{key} -> training.{key}" in caught.value.hint


def test_trained_tokens_count_what_the_masked_loss_counts(tiny_4bit, processed):
    model, tokenizer = load_model(tiny_4bit)
    examples = load_split(processed / "valid.jsonl", tokenizer)[:6]
    for max_len in (16, 32, 48, 256):
        for example in examples:
            _, ntoks = masked_loss(model, *collate([example], max_len))
            assert trained_tokens(example, max_len) == ntoks.item()


def test_examples_cut_to_no_answer_token_are_counted_in_a_warning():
    long_prompt, short_prompt = (list(range(40)), 30), (list(range(40)), 5)
    logs = []
    assert answerable([long_prompt, short_prompt], 20, "train", logs.append) == [long_prompt,
                                                                                 short_prompt]
    assert logs == ["warning: 2 of 2 train examples are longer than max_seq_length 20 and are "
                    "cut; 1 of them keep no answer token and add nothing to the loss (the "
                    "longest is 40 tokens)"]


def test_a_max_seq_length_shorter_than_every_prompt_stops_before_training(tiny_4bit, processed,
                                                                          tmp_path):
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(processed),
              "runs_dir": str(tmp_path)}
    config["training"] = {**TEST_RUN["training"], "max_seq_length": 16}
    with pytest.raises(FarolError, match="no train example keeps an answer token within "
                                         "training.max_seq_length 16"):
        train(config, log=lambda _: None)
    assert not (tmp_path / "test" / "steps.jsonl").exists()  # no step trained on nothing


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


def test_max_grad_norm_clips_each_update(tiny_4bit, processed):
    # With plain SGD at learning rate 1 the change of the weights is the gradient itself, so
    # a clipped update moves them by exactly max_grad_norm (an unclipped one by far more).
    def moved(max_norm):
        model, tokenizer = load_model(tiny_4bit)
        apply_lora(model, {"num_layers": 2, "rank": 4, "scale": 10.0, "dropout": 0.0})
        before = dict(tree_flatten(model.trainable_parameters()))
        batch = DataOrder(load_split(processed / "train.jsonl", tokenizer), 4, 64,
                          np.random.default_rng(0)).next()
        make_step(model, optim.SGD(learning_rate=1.0), 1, False, {"grad": None},
                  max_grad_norm=max_norm)(batch, True)
        after = dict(tree_flatten(model.trainable_parameters()))
        return math.sqrt(sum(mx.sum((after[k] - before[k]) ** 2).item() for k in before))

    assert moved(1e-3) == pytest.approx(1e-3, rel=1e-3)
    assert moved(None) > 1e-2


def test_alpha_given_with_scale_wins_and_the_note_names_the_replaced_scale():
    notes = []
    cfg = resolve({"lora": {"rank": 8, "alpha": 16, "scale": 10.0}}, log=notes.append)
    assert cfg["lora"]["scale"] == 2.0 and "alpha" not in cfg["lora"]
    assert len(notes) == 1 and notes[0].endswith("it replaces lora.scale 10")
    resolve({"lora": {"scale": 10.0}}, log=notes.append)
    assert len(notes) == 1


def test_alpha_becomes_scale_before_validation_so_the_checked_config_is_the_saved_one():
    # Before, resolve returned lora.alpha and train() popped it afterwards, unchecked.
    from farol_core.config import load_schema, validate

    cfg = resolve({"lora": {"rank": 8, "alpha": 16}})
    assert "alpha" not in cfg["lora"] and cfg["lora"]["scale"] == 2.0
    validate(load_schema("train"), cfg)
    with pytest.raises(ConfigError, match="lora.alpha"):
        resolve({"lora": {"rank": 8, "alpha": "sixteen"}})


def test_the_learning_rate_schedule_counts_steps_under_gradient_accumulation():
    # The optimizer steps the schedule once per update, every 2 steps here: warmup_steps 4 must
    # end at the 2nd update and the cosine must reach a tenth of the peak at the 10th, the last.
    from farol_train.step import learning_rate_schedule

    schedule = learning_rate_schedule({"learning_rate": 1e-3, "warmup_steps": 4, "iters": 20,
                                       "grad_accumulation_steps": 2})
    assert schedule(mx.array(2)).item() == pytest.approx(1e-3)
    assert schedule(mx.array(10)).item() == pytest.approx(1e-4)


@pytest.mark.parametrize(("training", "warning"), [
    # The learning rate would only ever climb toward its peak, never reaching or decaying.
    ({"iters": 2, "warmup_steps": 2},
     "warning: warmup_steps 2 is not shorter than the run (2 steps): the learning rate never "
     "reaches training.learning_rate 0.003 and never decays"),
    # Step 3's gradient would wait for a fourth step that never comes: it trains nothing.
    ({"iters": 3, "grad_accumulation_steps": 2},
     "warning: iters 3 is not a multiple of grad_accumulation_steps 2: the last 1 step(s) "
     "train nothing"),
], ids=["warmup", "accumulation"])
def test_settings_that_waste_steps_are_called_out(training, warning, tiny_4bit, processed,
                                                  tmp_path):
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(processed),
              "runs_dir": str(tmp_path)}
    config["training"] = {**TEST_RUN["training"], **training, "max_seq_length": 64,
                          "val_batches": 1}
    logs = []
    train(config, log=logs.append)
    assert warning in logs


def test_a_run_stopped_before_its_first_report_says_so_not_nan():
    from farol_train.loop import TrainResult

    early = TrainResult(Path("runs/x"), 2, float("nan"), float("nan"), None, 10, "interrupted")
    assert early.loss_line() == "no loss reported yet"
    done = TrainResult(Path("runs/x"), 9, 2.3104, 1.2, 1.35, 10)
    assert done.loss_line() == "loss 2.310 -> 1.200, val loss 1.350"


def test_quantize_a_mistyped_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    # "models/typo" looked like a Hub id ("org/name") and ended in a network error.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FarolError, match="Model not found: models/typo"):
        quantize("models/typo", tmp_path / "out")


def test_each_validation_record_carries_the_step_it_was_measured_at(tiny_4bit, processed,
                                                                    tmp_path):
    # Before, every row repeated the last val_loss under its own step: the monitor said
    # "val loss (step 270)" for a loss measured at step 200. Validation every 7 steps and a
    # report every 5 put each validation in the next report's row.
    training = {**TEST_RUN["training"], "iters": 18, "steps_per_report": 5,
                "steps_per_eval": 7, "save_every": 100}
    config = {**TEST_RUN, "training": training, "model": str(tiny_4bit),
              "data": str(processed), "runs_dir": str(tmp_path)}
    result = train(config, log=lambda _: None)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    assert [(r["step"], r["val_step"]) for r in rows] == [(5, None), (10, 7), (15, 14),
                                                          (18, 18)]
    assert rows[0]["val_loss"] is None and all(r["val_loss"] > 0 for r in rows[1:])
    assert len({r["val_loss"] for r in rows[1:]}) == 3
    header = (result.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "val_loss,val_step" in header
