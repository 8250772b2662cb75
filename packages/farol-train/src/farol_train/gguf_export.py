"""A fused model as one GGUF file for llama.cpp and Ollama, written with the `gguf` package.

mlx-lm's own exporter writes float32 tensors under an F16 header, labels every tokenizer
SentencePiece and leaves out merges and the chat template; this one writes what the header
says, quantizes with `gguf.quants`, and takes the vocabulary from the tokenizer it finds.
"""

import json
from pathlib import Path

import gguf
import mlx.core as mx
import numpy as np
from farol_core.errors import FarolError
from gguf.vocab import BpeVocab, LlamaHfVocab, SentencePieceVocab, SpecialVocab
from mlx_lm.gguf import permute_weights, translate_weight_names

Q = gguf.GGMLQuantizationType
# --gguf-type: the type of the 2-D weights (norms stay F32, as llama.cpp expects) and the
# header's general.file_type.
TYPES = {"f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
         "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
         "q4_0": (Q.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0)}


def write_gguf(folder: Path, weights: dict[str, mx.array], config: dict, path: Path,
               kind: str = "f16") -> Path:
    """Write `weights` (float, Hugging Face names) and `folder`'s tokenizer as GGUF `path`."""
    if kind not in TYPES:
        raise FarolError(f"--gguf-type must be one of {', '.join(TYPES)}, not {kind!r}")
    tensors = gguf_tensors(weights, config)
    writer = gguf.GGUFWriter(str(path), "llama")
    _add_model_fields(writer, config, TYPES[kind][1])
    add_tokenizer(writer, Path(folder))
    planned = {name: _plan(array, TYPES[kind][0]) for name, array in tensors.items()}
    for name, (shape, ggml_type, nbytes) in planned.items():
        # a dtype other than uint8: the shape given is the tensor's, not its bytes'
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=ggml_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for name, array in tensors.items():  # one tensor in memory at a time
        writer.write_tensor_data(encode(array, planned[name][1]))
    writer.close()
    return path


def gguf_tensors(weights: dict[str, mx.array], config: dict) -> dict[str, mx.array]:
    """The weights under llama.cpp's names, q and k rows in its rotary order (mlx-lm's maps)."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    out = {}
    for name, array in weights.items():
        if name.endswith("self_attn.q_proj.weight"):
            array = permute_weights(array, heads, heads)
        elif name.endswith("self_attn.k_proj.weight"):
            array = permute_weights(array, heads, kv_heads)
        out[translate_weight_names(name)] = array
    return out


def _plan(array: mx.array, wanted: "gguf.GGMLQuantizationType"):
    """(shape, type, bytes) of one tensor: 1-D ones stay F32; a row that is not whole blocks
    of the format stays F16 (as llama.cpp's own converter does)."""
    ggml_type = Q.F32 if array.ndim < 2 else wanted
    block = gguf.GGML_QUANT_SIZES[ggml_type][0]
    if array.shape[-1] % block:
        ggml_type = Q.F16
    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    nbytes = array.size // block * size
    return list(array.shape), ggml_type, nbytes


def encode(array: mx.array, ggml_type) -> np.ndarray:
    """The tensor's bytes in `ggml_type`, through the gguf package's own quantizers."""
    values = np.array(array.astype(mx.float32))
    if ggml_type == Q.F32:
        return values.view(np.uint8)
    if ggml_type == Q.F16:
        return values.astype(np.float16).view(np.uint8)
    return gguf.quants.quantize(values, ggml_type)


def _add_model_fields(writer, config: dict, file_type) -> None:
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    writer.add_name(str(config.get("_name_or_path") or "farol").rstrip("/").split("/")[-1])
    writer.add_context_length(config.get("max_position_embeddings", 4096))
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_rope_dimension_count(config.get("head_dim") or hidden // heads)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads", heads))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-5))
    writer.add_rope_freq_base(config.get("rope_theta", 10000.0))
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def add_tokenizer(writer, folder: Path) -> str:
    """The vocabulary as llama.cpp reads it: byte-level BPE as "gpt2" with its merges, a
    SentencePiece-style one as "llama" with scores; special ids and the chat template too.
    Returns the tokenizer model written."""
    vocab = _vocab(folder)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    special = _special_ids(folder)
    types = [gguf.TokenType.CONTROL if i in special else t for i, t in enumerate(types)]
    writer.add_tokenizer_model(vocab.tokenizer_model)
    if vocab.tokenizer_model == "gpt2":
        writer.add_tokenizer_pre(_pre_tokenizer(folder))
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    SpecialVocab(folder, load_merges=vocab.tokenizer_model == "gpt2",
                 n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)
    return vocab.tokenizer_model


def _vocab(folder: Path):
    for kind in (BpeVocab, LlamaHfVocab, SentencePieceVocab):
        try:
            return kind(folder)
        except (FileNotFoundError, TypeError, RuntimeError):
            continue
    raise FarolError(f"no tokenizer that GGUF can hold in {folder}",
                     hint="GGUF takes a byte-level BPE tokenizer.json or a SentencePiece "
                          "tokenizer.model")


def _special_ids(folder: Path) -> set[int]:
    """Ids of the tokenizer.json tokens marked special (<s>, </s>, ...): control tokens."""
    try:
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {t["id"] for t in data.get("added_tokens", []) if t.get("special")}


def _pre_tokenizer(folder: Path) -> str:
    """llama.cpp's name for the split before BPE: GPT-2's regex for a plain ByteLevel."""
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    pre = data.get("pre_tokenizer") or {}
    plain = pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
    return "gpt-2" if plain else "default"


# Farol's Mistral format in Ollama's Go template language: Ollama maps a GGUF's Jinja
# template only onto the templates it knows, so the prompt format is spelled out.
MISTRAL_TEMPLATE = ('[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }} [/INST]'
                    '{{ .Response }}')


def modelfile(gguf_name: str, folder: Path) -> str:
    """An Ollama Modelfile for the GGUF beside it: the file, the prompt format when it is
    Mistral's [INST] one, and the end-of-sequence token as the stop word."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    eos = config.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    lines = [f"FROM ./{gguf_name}"]
    # the gguf package finds the template where transformers put it (tokenizer_config.json
    # or chat_template.jinja)
    if "[INST]" in str(SpecialVocab(folder).chat_template or ""):
        lines.append(f'TEMPLATE """{MISTRAL_TEMPLATE}"""')
    lines += [f'PARAMETER stop "{eos}"'] if eos else []
    return "\n".join(lines) + "\n"
