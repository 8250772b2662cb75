"""The text the embedded tiny model is built from: the train split only, never valid or test.

`invoke tiny-model` pre-trains the base on these answers, so the split must be the one
`invoke prepare` makes from the same inputs, config and seed.
"""

import tempfile
from pathlib import Path

from farol_core.config import load_config

from farol_data.prepare import prepare


def train_split_corpus(inputs: list[str | Path], biographies: str | Path | None = None,
                       config: str | Path | dict | None = None, seed: int | None = None) -> dict:
    """{"texts", "documents", "source"}: every message of the train split (for the
    tokenizer), its answers alone as plain-text documents (for pre-training, never paired
    with their questions), and a sentence saying where they come from and what was held out."""
    with tempfile.TemporaryDirectory() as tmp:
        splits = prepare(inputs, tmp, biographies=biographies, config=config, seed=seed).splits
    train = [r["messages"] for r in splits["train"]]
    answers = [m["content"] for chat in train for m in chat if m["role"] == "assistant"]
    held = {name: len(splits[name]) for name in ("valid", "test")}
    source = (f"the answers of the {len(train)} train-split records of "
              f"{', '.join(Path(p).name for p in inputs) or 'no Q&A file'}"
              f"{' and ' + Path(biographies).name + ' biographies' if biographies else ''} "
              f"(farol-data prepare, seed {splits_seed(config, seed)}), as plain text without "
              f"their questions; the {held['valid']} valid and {held['test']} test records "
              f"were held out")
    return {"texts": [m["content"] for chat in train for m in chat], "documents": answers,
            "source": source}


def splits_seed(config, seed) -> int:
    """The split seed `prepare` uses for these arguments."""
    return load_config("data", config, {"seed": seed})["seed"]
