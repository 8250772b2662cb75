"""The embedded default model: Mistral architecture, random weights, a BPE tokenizer of our own.

It lets every Farol path run with nothing downloaded. mlx-lm serves `model_type: "mistral"`
with its llama model, the same code that runs a real Mistral-7B-v0.1.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from farol_core.io import staged_dir
from farol_core.template import CHAT_TEMPLATE

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2, as in Mistral's tokenizer

TINY_SHAPE = {
    "hidden_size": 128,  # a multiple of 64, so 4-bit quantization with group size 64 applies
    "num_hidden_layers": 4,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
}


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


def create_tiny_model(out_dir: str | Path, texts: Iterable[str], vocab_size: int = 1024,
                      seed: int = 0, force: bool = False, shape: dict | None = None) -> Path:
    """Write the tiny model (or one of another `shape`, TINY_SHAPE's keys) in Hugging Face
    layout to `out_dir` and return the path.

    The folder appears whole or not at all (see `farol_core.io.staged_dir`).
    """
    with staged_dir(out_dir, force) as tmp:
        tmp.mkdir()
        tok = train_tokenizer(texts, vocab_size)
        tok.save(str(tmp / "tokenizer.json"))
        config = model_config(tok.get_vocab_size(), shape)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2))
        mx.save_safetensors(str(tmp / "model.safetensors"), random_weights(config, seed),
                            metadata={"format": "mlx"})
    return Path(out_dir)
