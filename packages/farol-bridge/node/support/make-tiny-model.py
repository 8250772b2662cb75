"""Create the tiny model and its 4-bit copy in a new temp folder; print the 4-bit path.

The Node tests run this (with the workspace's Python) when FAROL_TEST_MODEL is not set."""

import sys
import tempfile
from pathlib import Path

from farol_core.tiny import create_tiny_model
from farol_data import texts
from farol_train import quantize

root = Path(__file__).resolve().parents[4]  # node/support/ -> the repo
sample = root / "data" / "sample"
out = Path(tempfile.mkdtemp(prefix="farol-node-"))
tiny = create_tiny_model(out / "tiny", texts([sample / "farense_qa.jsonl"],
                                            sample / "biografias" / "jogadores"))
print(quantize(tiny, out / "tiny-4bit"), file=sys.__stdout__)
