"""The embedded tiny model: pre-trained on the train split only, reproducibly, and recorded."""

import json

import pytest
from farol_core.tiny import PRETRAINING_FILE, text_digest

# Per-step pre-training losses of the `pretrained_tiny` fixture (30 steps, seed 0), recorded
# on mlx 0.32.4 (CPU). A change to the loss, the windows, the schedule or the optimizer moves
# them by far more than the tolerance, which only absorbs float32 summation order.
GOLDEN_STEPS = {0: 7.1178, 1: 6.9097, 5: 6.4071, 10: 6.7968, 20: 5.8621, 29: 5.7152}
TOLERANCE = 2e-3


def test_pretraining_record_names_its_source_and_every_document(pretrained_tiny):
    record = json.loads((pretrained_tiny / PRETRAINING_FILE).read_text())
    assert "train-split" in record["source"] and "held out" in record["source"]
    assert record["documents"] == len(record["document_sha256"]) > 100
    assert len(record["losses"]) == record["settings"]["steps"] == 30


def test_the_base_never_saw_a_held_out_answer(pretrained_tiny, processed):
    seen = set(json.loads((pretrained_tiny / PRETRAINING_FILE).read_text())["document_sha256"])
    for split, expect_seen in (("valid", False), ("test", False), ("train", True)):
        answers = [json.loads(line)["messages"][-1]["content"]
                   for line in (processed / f"{split}.jsonl").open()]
        hits = sum(text_digest(a) in seen for a in answers)
        assert (hits == len(answers)) if expect_seen else hits == 0, split


def test_pretraining_losses_match_the_recorded_ones(pretrained_tiny):
    losses = json.loads((pretrained_tiny / PRETRAINING_FILE).read_text())["losses"]
    assert losses[-1] < losses[0] - 0.5  # it learns, not only repeats
    for step, expected in GOLDEN_STEPS.items():
        assert losses[step] == pytest.approx(expected, abs=TOLERANCE), step


def test_quantize_keeps_the_pretraining_record(pretrained_tiny, pretrained_4bit):
    assert ((pretrained_4bit / PRETRAINING_FILE).read_text()
            == (pretrained_tiny / PRETRAINING_FILE).read_text())
