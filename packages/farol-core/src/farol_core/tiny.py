"""The embedded default model: Mistral architecture, a BPE tokenizer of our own, and weights
that are random or briefly pre-trained on plain text.

It lets every Farol path run with nothing downloaded. mlx-lm serves `model_type: "mistral"`
with its llama model, the same code that runs a real Mistral-7B-v0.1. Random weights know no
token statistics, so no adapter can steer them; a short next-token pre-training on plain text
(`pretrain`) gives the base varied text for an adapter to steer.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from farol_core.io import staged_dir
from farol_core.template import CHAT_TEMPLATE

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2, as in Mistral's tokenizer
PRETRAINING_FILE = "pretraining.json"

TINY_SHAPE = {
    "hidden_size": 128,  # a multiple of 64, so 4-bit quantization with group size 64 applies
    "num_hidden_layers": 4,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
}


# The embedded model's pre-training: ~30 s on 2 CPU cores with OpenBLAS (farol_core.blas; several
# minutes with mlx's reference BLAS). Rows are windows of the documents' token stream, so one step
# sees seq_length * batch_size tokens: 400 steps are ~23 passes over the train split. At 1e-2 the
# loss stalled at 4.3 nats; 1e-3 reaches 0.42, so the base writes the answers' sentences.
PRETRAINING = {"steps": 400, "batch_size": 8, "seq_length": 64, "learning_rate": 1e-3,
               "warmup_steps": 30, "weight_decay": 0.01, "seed": 0}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Tokenizer:
    """A byte-level BPE tokenizer trained on `texts`, with Mistral's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def model_config(vocab_size: int, shape: dict | None = None) -> dict:
    """A Hugging Face `config.json` for a Mistral model of the given shape."""
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        **(shape or TINY_SHAPE),
        "vocab_size": vocab_size,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }


def tokenizer_config() -> dict:
    """`tokenizer_config.json`: special tokens and Farol's chat template."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<unk>",
        "model_max_length": 4096,
        "chat_template": CHAT_TEMPLATE,
    }


def random_weights(config: dict, seed: int = 0) -> dict[str, mx.array]:
    """Randomly initialised weights for `config`, built with mlx-lm's llama model class.

    mlx-lm loads `model_type: "mistral"` with that same class.
    """
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    return weights


def token_stream(tok: Tokenizer, documents: Iterable[str]) -> np.ndarray:
    """Every document followed by a blank line, one after another: the pre-training stream.
    No special tokens: the base learns to write text, and only the adapter, trained on
    answers that end in `</s>`, learns where an answer stops."""
    ids = []
    for doc in documents:
        ids += tok.encode(doc + "\n\n").ids
    return np.array(ids, dtype=np.int32)


def pretrain(model: nn.Module, stream: np.ndarray, settings: dict) -> list[float]:
    """Full-parameter next-token training of `model` on windows of `stream` (AdamW, linear
    warm-up then cosine decay); returns the loss of every step."""
    s, rng = settings, np.random.default_rng(settings["seed"])
    length = min(s["seq_length"], len(stream) - 1)
    schedule = optim.join_schedules(
        [optim.linear_schedule(s["learning_rate"] / 10, s["learning_rate"], s["warmup_steps"]),
         optim.cosine_decay(s["learning_rate"], max(1, s["steps"] - s["warmup_steps"]),
                            s["learning_rate"] / 10)], [s["warmup_steps"]])
    opt = optim.AdamW(learning_rate=schedule, weight_decay=s["weight_decay"])
    step = nn.value_and_grad(model, lambda m, x, y: nn.losses.cross_entropy(
        m(x), y, reduction="mean"))
    losses = []
    for _ in range(s["steps"]):
        starts = rng.integers(0, len(stream) - length, s["batch_size"])
        rows = np.stack([stream[i:i + length + 1] for i in starts])
        loss, grads = step(model, mx.array(rows[:, :-1]), mx.array(rows[:, 1:]))
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state, loss)
        losses.append(round(loss.item(), 4))
    return losses


def pretrained_weights(config: dict, tok: Tokenizer, documents: Sequence[str],
                       settings: dict, seed: int = 0) -> tuple[dict[str, mx.array], dict]:
    """(weights, record): the random model of `config` pre-trained on `documents`, and what
    it was trained on (settings, losses and a SHA-256 digest of every document)."""
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    stream = token_stream(tok, documents)
    losses = pretrain(model, stream, settings)
    weights = dict(tree_flatten(model.parameters()))
    mx.eval(weights)
    record = {"settings": settings, "documents": len(documents), "tokens": int(len(stream)),
              "losses": losses,
              "document_sha256": sorted({text_digest(d) for d in documents})}
    return weights, record


def text_digest(text: str) -> str:
    """SHA-256 of `text` with its whitespace collapsed: how pretraining.json names a document."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def create_tiny_model(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 1024,
                      seed: int = 0, force: bool = False, shape: dict | None = None,
                      pretraining: dict | None = None) -> Path:
    """Write the tiny model (or one of another `shape`, TINY_SHAPE's keys) in Hugging Face
    layout to `out_dir` and return the path.

    The weights are random unless `pretraining` is given: {"documents": [...], "source":
    "what they are", "settings": PRETRAINING or another}. Then they are pre-trained on those
    documents, and `pretraining.json` beside them records the source, settings, losses and
    document digests. The folder appears whole or not at all (see `farol_core.io.staged_dir`).
    """
    with staged_dir(out_dir, force) as tmp:
        tmp.mkdir()
        tok = train_tokenizer(texts, vocab_size)
        tok.save(str(tmp / "tokenizer.json"))
        config = model_config(tok.get_vocab_size(), shape)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2))
        weights = random_weights(config, seed)
        if pretraining is not None:
            weights, record = pretrained_weights(
                config, tok, pretraining["documents"],
                {**PRETRAINING, **pretraining.get("settings", {})}, seed)
            record = {"source": pretraining["source"], **record}
            (tmp / PRETRAINING_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False))
        mx.save_safetensors(str(tmp / "model.safetensors"), weights, metadata={"format": "mlx"})
    return Path(out_dir)
