"""Session fixtures: one tiny model, its 4-bit copy, the prepared sample and a short run.

They are real (mlx and mlx-lm do the work) and small, so the whole suite stays fast on CPU.
`benchmarks/` uses them too; farol-data is imported inside the fixtures that need it, so a
7B-shaped benchmark run on a bare GPU machine needs none of its packages.
"""

from pathlib import Path

import pytest
from farol_core.tiny import create_tiny_model
from farol_train import quantize, train

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_QA = ROOT / "data" / "sample" / "farense_qa.jsonl"
SAMPLE_BIOS = ROOT / "data" / "sample" / "biografias" / "jogadores"

# A run short enough for CI that still shows the loss going down.
TEST_RUN = {
    "name": "test",
    "seed": 0,
    "lora": {"num_layers": 2, "rank": 4, "scale": 20.0},
    "training": {"iters": 30, "batch_size": 4, "learning_rate": 3e-3, "max_seq_length": 256,
                 "steps_per_report": 5, "steps_per_eval": 30, "val_batches": 2, "save_every": 15},
    "eval": {"samples": 2, "max_tokens": 8, "batch_size": 8},
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from farol_data import texts

    out = tmp_path_factory.mktemp("models") / "tiny"
    return create_tiny_model(out, texts([SAMPLE_QA], SAMPLE_BIOS))


@pytest.fixture(scope="session")
def tiny_4bit(tiny_model) -> Path:
    return quantize(tiny_model, tiny_model.parent / "tiny-4bit")


# Most of `invoke tiny-model`'s pre-training (300 of 400 steps: ~25 s on 2 cores with OpenBLAS,
# ~3 min with mlx's reference BLAS): enough for 8 questions to get at least 4 different answers
# with either BLAS (150 steps gave 2 with the reference BLAS), which random weights never give.
TEST_PRETRAINING = {"steps": 300}


@pytest.fixture(scope="session")
def pretrained_tiny(tmp_path_factory) -> Path:
    """The tiny model as `invoke tiny-model` builds it, on the sample's train split, with a
    shorter pre-training (TEST_PRETRAINING)."""
    from farol_data.corpus import train_split_corpus

    corpus = train_split_corpus([SAMPLE_QA], SAMPLE_BIOS)
    out = tmp_path_factory.mktemp("models") / "pretrained"
    return create_tiny_model(out, corpus["texts"], pretraining={
        "documents": corpus["documents"], "source": corpus["source"],
        "settings": TEST_PRETRAINING})


@pytest.fixture(scope="session")
def pretrained_4bit(pretrained_tiny) -> Path:
    return quantize(pretrained_tiny, pretrained_tiny.parent / "pretrained-4bit")


@pytest.fixture(scope="session")
def processed(tmp_path_factory) -> Path:
    from farol_data import prepare

    out = tmp_path_factory.mktemp("processed")
    prepare([SAMPLE_QA], out, biographies=SAMPLE_BIOS)
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_4bit, processed):
    """(TrainResult, run config) of a short QLoRA run on the tiny 4-bit model."""
    runs = tmp_path_factory.mktemp("runs")
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(processed), "runs_dir": str(runs)}
    return train(config, log=lambda _: None), config
