"""farol-eval on the short run: base against tuned on the same questions, honestly computed."""

import csv
import io
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from farol_core.errors import FarolError
from farol_eval import evaluate
from farol_eval.cli import main
from farol_eval.metrics import score
from farol_eval.report import validate_report, wins_and_losses

QUIET = {"log": lambda _: None}


def test_loss_base_and_tuned_on_the_same_splits(evaluated):
    run_dir, report = evaluated
    assert json.loads((run_dir / "eval" / "report.json").read_text()) == report
    assert report["loss_tokens"] == "answer tokens only"
    for split in ("valid", "test"):
        base, tuned = report["splits"][split]["base"], report["splits"][split]["tuned"]
        assert base["tokens"] == tuned["tokens"] > 0
        assert tuned["loss"] < base["loss"]
        assert math.isclose(tuned["perplexity"], math.exp(tuned["loss"]))


def test_every_test_question_is_answered_and_scored_in_pairs(evaluated, processed):
    _, report = evaluated
    n = sum(1 for line in (processed / "test.jsonl").open() if line.strip())
    qs = report["questions"]
    assert len(qs) == report["generation"]["questions"] == n
    for q in qs:
        assert set(q["answers"]) == set(q["scores"]) == {"base", "tuned"}
        assert q["scores"]["tuned"] == score(q["answers"]["tuned"], q["reference"])
    f1 = report["generation"]["summary"]["token_f1"]
    assert math.isclose(f1["base"]["mean"], sum(q["scores"]["base"]["token_f1"] for q in qs) / n)
    gain = f1["gain"]
    assert gain["low"] <= gain["mean"] <= gain["high"]
    assert math.isclose(gain["mean"], f1["tuned"]["mean"] - f1["base"]["mean"], abs_tol=1e-12)
    cats = report["generation"]["by_category"]
    assert sum(c["questions"] for c in cats.values()) == n
    assert set(cats) == {q["category"] for q in qs} and "uncategorised" not in cats


def test_report_matches_its_schema_and_the_schema_catches_breakage(evaluated):
    _, report = evaluated
    validate_report(report)
    broken = json.loads(json.dumps(report))
    broken["questions"][0]["scores"]["base"]["token_f1"] = 1.5
    del broken["splits"]["valid"]["base"]["perplexity"]
    with pytest.raises(FarolError) as e:
        validate_report(broken)
    assert "token_f1" in str(e.value) and "perplexity" in str(e.value)


def test_checkpoint_curve_names_the_best_and_swaps_adapters_exactly(evaluated):
    _, report = evaluated
    ck = report["checkpoints"]
    steps = [p["step"] for p in ck["points"]]
    assert steps == [0, 3, 30]
    assert ck["best"] == min(ck["points"], key=lambda p: p["valid_loss"])
    for p in ck["points"]:
        assert math.isclose(p["gap"], p["valid_loss"] - p["train_loss"])
    # A fresh adapter adds zero (lora_b starts at 0), so step 0 must score as the base model;
    # the last checkpoint is the run's final adapter, so it must score as tuned.
    valid = report["splits"]["valid"]
    assert math.isclose(ck["points"][0]["valid_loss"], valid["base"]["loss"], rel_tol=1e-5)
    assert math.isclose(ck["points"][-1]["valid_loss"], valid["tuned"]["loss"], rel_tol=1e-5)
    assert ck["train_examples"] == ck["valid_examples"]


def test_csv_and_markdown(evaluated):
    run_dir, report = evaluated
    with open(run_dir / "eval" / "report.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(report["questions"])
    assert rows[0]["tuned_answer"] == report["questions"][0]["answers"]["tuned"]
    assert float(rows[0]["base_rouge_l"]) == report["questions"][0]["scores"]["base"]["rouge_l"]
    md = (run_dir / "eval" / "report.md").read_text()
    for heading in ("Loss and perplexity", "Answers, base against tuned", "Checkpoints",
                    "Largest wins", "Largest losses", "95% CI"):
        assert heading in md
    assert f"Best checkpoint by validation loss: step {report['checkpoints']['best']['step']}" in md


def test_wins_and_losses_rank_by_f1_gain():
    def q(base, tuned):
        s = {"exact_match": 0.0, "rouge_l": 0.0, "answer_length": 1}
        return {"scores": {"base": {**s, "token_f1": base}, "tuned": {**s, "token_f1": tuned}}}

    report = {"questions": [q(0.5, 0.5), q(0.0, 0.9), q(0.2, 0.4), q(0.8, 0.1), q(0.3, 0.2)]}
    wins, losses = wins_and_losses(report, top=10)
    assert [w["scores"]["tuned"]["token_f1"] for w in wins] == [0.9, 0.4]
    assert [x["scores"]["tuned"]["token_f1"] for x in losses] == [0.1, 0.2]


def test_base_model_alone(trained_run, tmp_path):
    result, _ = trained_run
    report = evaluate(result.run_dir, base_only=True, questions=3, out=tmp_path, **QUIET)
    assert report["adapter"] is None
    assert all(set(v) == {"base"} for v in report["splits"].values())
    assert len(report["questions"]) == 3 and set(report["questions"][0]["answers"]) == {"base"}
    assert "gain" not in report["generation"]["summary"]["token_f1"]
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.csv").is_file()


def test_cli_missing_run_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(main, ["run", "--run", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "No run at" in res.output and "Traceback" not in res.output


def test_report_from_known_answers_ranks_wins_and_losses_in_markdown():
    from farol_core.config import load_config
    from farol_eval.evaluate import build_report
    from farol_eval.report import to_csv, to_markdown

    refs = ["Faro fica no Algarve", "O Farense foi fundado em 1910", "Hassan Nader"]
    records = [{"id": f"t:{i}", "category": "c", "messages": [
        {"role": "user", "content": f"pergunta {i}?"}, {"role": "assistant", "content": r}]}
        for i, r in enumerate(refs)]
    # summed loss and tokens per example: base 2, 2, 2 nats/token; tuned 1, 1, 4
    counts = np.array([10, 10, 20])
    base = {"sums": np.array([20.0, 20.0, 40.0]), "counts": counts}
    tuned = {"sums": np.array([10.0, 10.0, 80.0]), "counts": counts}
    measured = {
        "base": {"losses": {"test": base}, "seconds": 1.0,
                 "answers": ["Faro", "fundado em 1910", "um avançado marroquino"]},
        "tuned": {"losses": {"test": tuned}, "seconds": 1.0,
                  "answers": ["Faro fica no Algarve", "não sei", "Hassan Nader"]},
    }
    ecfg = load_config("train")["eval"]
    report = build_report("m", "a", None, True, ecfg, measured, records, None)
    validate_report(report)
    test = report["splits"]["test"]
    assert test["base"]["loss"] == 2.0 and test["tuned"]["loss"] == 2.5  # 100 / 40 tokens
    assert test["gain"]["mean"] == 0.5 and test["base"]["tokens"] == 40
    assert test["gain"]["low"] < 0.5 < test["gain"]["high"]
    f1 = report["generation"]["summary"]["token_f1"]
    # base: "faro" P 1, R 1/3 -> 0.5; "fundado em 1910" P 1, R 3/5 -> 0.75; no overlap -> 0
    # tuned: exact, nothing shared, exact -> 1, 0, 1
    assert math.isclose(f1["base"]["mean"], (0.5 + 0.75 + 0) / 3)
    assert math.isclose(f1["tuned"]["mean"], 2 / 3)
    wins, losses = wins_and_losses(report)
    assert [w["id"] for w in wins] == ["t:2", "t:0"] and [x["id"] for x in losses] == ["t:1"]
    md = to_markdown(report)
    wins_part = md.split("## Largest wins")[1].split("## Largest losses")[0]
    assert "| +1.000 | pergunta 2? | Hassan Nader | um avançado marroquino | Hassan Nader |" \
        in wins_part
    assert "não sei" in md.split("## Largest losses")[1]
    assert to_csv(report).count("\n") == 4


def test_an_adapter_for_another_base_is_a_clear_error_before_any_measuring(trained_run,
                                                                         tmp_path):
    from farol_core.tiny import TINY_SHAPE, create_tiny_model

    result, _ = trained_run
    wider = create_tiny_model(tmp_path / "wider", ["Faro fica no Algarve."] * 50, vocab_size=300,
                              shape={**TINY_SHAPE, "hidden_size": 192, "head_dim": 48})
    logs = []
    with pytest.raises(FarolError, match=r"The adapter .* does not fit this base model"):
        evaluate(result.run_dir, model=str(wider), out=tmp_path / "eval", log=logs.append)
    assert logs[0].startswith("note: the run trained on") and len(logs) == 1  # nothing measured
    assert not (tmp_path / "eval").exists()


def test_a_corrupt_checkpoint_is_left_out_of_the_curve_with_a_warning(trained_run, tiny_4bit,
                                                                     processed, tmp_path):
    from farol_core.dataset import load_split
    from farol_core.model import load_model
    from farol_eval.checkpoints import curve

    result, _ = trained_run
    shutil.copytree(result.run_dir / "checkpoints", tmp_path / "checkpoints")
    broken = tmp_path / "checkpoints" / "step-0000030" / "adapters.safetensors"
    broken.write_bytes(broken.read_bytes()[:100])  # a save cut short
    model, tokenizer = load_model(tiny_4bit)
    valid = load_split(processed / "valid.jsonl", tokenizer)[:4]
    logs = []
    found = curve(model, tmp_path, valid, valid, 4, 256, logs.append)
    assert [p["step"] for p in found["points"]] == [15] and found["best"]["step"] == 15
    assert ("warning: skipping checkpoint step-0000030: adapters.safetensors does not match "
            "its checksum") in logs


def test_the_curve_refuses_a_checkpoint_that_training_would_refuse(trained_run, tiny_4bit,
                                                                   processed, tmp_path):
    # Eval used to accept any folder holding an adapter that loads; one whose files are not
    # those its manifest records (here, step 15's adapter put in step 30) is not step 30.
    from farol_core.dataset import load_split
    from farol_core.model import load_model
    from farol_eval.checkpoints import curve
    from farol_train.checkpoint import load_latest

    result, _ = trained_run
    shutil.copytree(result.run_dir / "checkpoints", tmp_path / "run" / "checkpoints")
    folders = sorted((tmp_path / "run" / "checkpoints").iterdir())
    shutil.copy(folders[0] / "adapters.safetensors", folders[-1] / "adapters.safetensors")
    model, tokenizer = load_model(tiny_4bit)
    valid = load_split(processed / "valid.jsonl", tokenizer)[:4]
    train_logs, eval_logs = [], []
    assert load_latest(tmp_path / "run", warn=train_logs.append).path == folders[0]
    found = curve(model, tmp_path / "run", valid, valid, 4, 256, eval_logs.append)
    assert [p["step"] for p in found["points"]] == [15]
    assert train_logs == [w for w in eval_logs if w.startswith("warning")]


def _tiny_report(answers: dict, refs: list[str], categories: list[str]) -> dict:
    """A report built from known answers and per-example losses, no model involved."""
    from farol_core.config import load_config
    from farol_eval.evaluate import build_report

    records = [{"id": f"t:{i}", "category": c, "messages": [
        {"role": "user", "content": f"pergunta {i}?"}, {"role": "assistant", "content": r}]}
        for i, (r, c) in enumerate(zip(refs, categories, strict=True))]
    counts = np.full(len(refs), 4)
    measured = {n: {"losses": {"test": {"sums": 2.0 * counts, "counts": counts}},
                    "seconds": 1.0, "answers": a} for n, a in answers.items()}
    report = build_report("m", "a", None, True, load_config("train")["eval"], measured,
                          records, None)
    validate_report(report)  # null bounds are allowed by the schema
    return report


def test_a_single_question_claims_no_interval_in_markdown():
    from farol_eval.report import to_markdown

    report = _tiny_report({"base": ["Faro"], "tuned": ["Olhão"]}, ["Faro"], ["c"])
    md = to_markdown(report)
    assert "1.000 [no interval: n = 1]" in md and "[1.000, 1.000]" not in md
    assert "[2.0000, 2.0000]" not in md  # the one example's loss has no interval either


def test_pipes_newlines_and_html_in_texts_keep_tables_and_csv_whole():
    from farol_eval.report import to_csv, to_markdown

    refs, cats = ["Faro | Algarve", "São Luís"], ["história|clube"] * 2
    answers = {"base": ["Faro\n| Loulé", "<s>Estádio</s> \\"], "tuned": ["Faro", "São Luís"]}
    md = to_markdown(_tiny_report(answers, refs, cats))
    # each row of a table has as many unescaped pipes as the row before: no cell broke out
    lines = md.splitlines()
    for above, line in zip(lines, lines[1:], strict=False):
        if above.startswith("|") and line.startswith("|"):
            assert above.replace("\\|", "").count("|") == line.replace("\\|", "").count("|")
    assert "| história\\|clube | 2 |" in md
    assert "&lt;s>Estádio&lt;/s> \\\\" in md and "<s>" not in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(_tiny_report(answers, refs, cats)))))
    assert [r["base_answer"] for r in parsed] == answers["base"]
    assert parsed[0]["category"] == "história|clube"


def test_a_carriage_return_in_an_answer_keeps_its_csv_row_whole():
    # A model can write "\r" (byte-fallback tokens); unquoted, every CSV reader ends the row there.
    from farol_eval.report import to_csv

    answers = {"base": ["Faro\r\nLoulé", "Olhão\r"], "tuned": ["Faro, \"Algarve\"", "Olhão"]}
    report = _tiny_report(answers, ["Faro", "Olhão"], ["c", "c"])
    rows = list(csv.DictReader(io.StringIO(to_csv(report), newline="")))
    assert [r["base_answer"] for r in rows] == answers["base"]
    assert [r["tuned_answer"] for r in rows] == answers["tuned"]
    assert [r["base_token_f1"] for r in rows] == ["0.6666666666666666", "1.0"]


def test_base_vs_tuned_chart_of_a_single_question_draws_no_whiskers(tmp_path, monkeypatch):
    # The bars are drawn by matplotlib as usual; the test only records the whiskers asked for.
    from farol_eval.plots import base_vs_tuned
    from matplotlib.axes import Axes

    whiskers, bar = [], Axes.bar
    monkeypatch.setattr(Axes, "bar", lambda self, *a, yerr=None, **k: whiskers.append(yerr)
                        or bar(self, *a, yerr=yerr, **k))
    one = _tiny_report({"base": ["Faro"], "tuned": ["Olhão"]}, ["Faro"], ["c"])
    assert base_vs_tuned(one, tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert whiskers == [None] * 4  # scores and losses, base and tuned: no zero-length whisker
    whiskers.clear()
    two = _tiny_report({"base": ["Faro", "Loulé"], "tuned": ["Olhão", "Loulé"]},
                       ["Faro", "Loulé"], ["c", "c"])
    base_vs_tuned(two, tmp_path / "b2.png")
    assert len(whiskers) == 4 and all(w is not None for w in whiskers)  # two: real intervals


def test_a_plain_text_test_record_is_not_asked(tmp_path):
    from farol_eval.evaluate import held_out_records

    chat = [{"role": "user", "content": "Onde joga o Farense?"},
            {"role": "assistant", "content": "No Estádio de São Luís."}]
    text = [{"role": "assistant", "content": "O Farense foi fundado em 1910."}]
    (tmp_path / "test.jsonl").write_text(
        "\n".join(json.dumps({"messages": m, "category": "clube"}) for m in (text, chat)) + "\n",
        encoding="utf-8")
    records = held_out_records(tmp_path, -1)
    assert [r["messages"] for r in records] == [chat]


def _adapter_dir(path, weights: dict, config: dict):
    """An mlx-lm adapter folder holding `weights` and `config`."""
    import mlx.core as mx

    path.mkdir()
    mx.save_safetensors(str(path / "adapters.safetensors"), weights)
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path


def test_dora_and_full_fine_tunes_never_stay_on_the_base(tiny_4bit, processed, tmp_path):
    # The base is measured after the tuned adapter was tried on it (to fail early), so taking
    # an adapter off must restore the base exactly, or the base-vs-tuned gain is a silent 0.
    import mlx.core as mx
    from farol_core.dataset import load_split
    from farol_core.model import load_model
    from farol_eval.checkpoints import use_adapter
    from farol_eval.losses import example_losses, split_loss
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, tokenizer = load_model(tiny_4bit)
    valid = load_split(processed / "valid.jsonl", tokenizer)[:2]

    def loss() -> float:
        return split_loss(example_losses(model, valid, 256))["loss"]

    base, lora = loss(), {"rank": 4, "scale": 20.0, "dropout": 0.0, "keys": None}
    trained, _ = load_model(tiny_4bit)  # a DoRA adapter as mlx-lm's trainer would save it
    trained.freeze()
    linear_to_lora_layers(trained, 2, lora, use_dora=True)
    mx.random.seed(0)
    weights = {k: mx.random.normal(v.shape) * 0.05 if k.endswith("lora_b") else v
               for k, v in tree_flatten(trained.trainable_parameters())}
    dora = _adapter_dir(tmp_path / "dora", weights,
                        {"fine_tune_type": "dora", "num_layers": 2, "lora_parameters": lora})
    use_adapter(model, dora)
    assert loss() != base
    use_adapter(model, None)
    assert loss() == base
    full = _adapter_dir(tmp_path / "full", {k: v * 2 for k, v in tree_flatten(model.parameters())
                                            if "norm" in k}, {"fine_tune_type": "full"})
    with pytest.raises(FarolError, match="full fine-tune"):
        use_adapter(model, full)
    assert loss() == base


def test_markdown_cuts_long_answers_and_the_csv_keeps_them_whole():
    # Before, a 2,000-character rambling answer filled report.md's table and hid the others.
    from farol_eval.report import CELL_CHARS, to_csv, to_markdown

    long = " ".join(f"palavra{i}" for i in range(300))  # about 2,700 characters
    answers = {"base": [long, "Faro"], "tuned": ["Faro", long]}
    report = _tiny_report(answers, ["Faro", "Olhão"], ["c", "c"])
    md = to_markdown(report)
    rows = [line for line in md.splitlines() if "palavra0 " in line]
    assert rows and all(len(line) < 3 * CELL_CHARS for line in rows)
    assert all("palavra299" not in line and " … |" in line for line in rows)
    assert "report.csv holds them whole" in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["base_answer"] for r in parsed] == answers["base"]
