"""Train-split questions scored beside the test ones, and the base's pre-training stated."""

import json

from farol_eval.evaluate import train_records
from farol_eval.metrics import score
from farol_eval.report import example_lines, to_markdown


def test_a_seeded_sample_of_train_questions_is_answered_and_scored(evaluated, processed):
    _, report = evaluated
    train = {json.loads(line)["messages"][0]["content"]
             for line in (processed / "train.jsonl").open()}
    shown = report["train_split"]
    assert shown["questions"] == len(shown["answers"]) == report["settings"]["train_questions"]
    for q in shown["answers"]:
        assert q["question"] in train  # from the train split, not the test one
        assert q["scores"]["tuned"] == score(q["answers"]["tuned"], q["reference"])
    # The same seed draws the same questions; another seed draws others.
    again = [r["messages"][0]["content"] for r in train_records(processed, 20, 0)]
    assert again == [q["question"] for q in shown["answers"]]
    assert again != [r["messages"][0]["content"] for r in train_records(processed, 20, 1)]


def test_report_puts_both_splits_side_by_side_and_states_the_base(evaluated):
    _, report = evaluated
    md = to_markdown(report)
    assert "train split: learned what it was shown" in md
    assert "test: generalises to new questions" in md
    assert report["base_pretraining"] is None  # the session's tiny model has random weights
    assert "records no pre-training" in md
    lines = example_lines(report)
    assert lines[0].startswith("a question it was trained on")
    assert any(line.startswith("a question it never saw") for line in lines)
