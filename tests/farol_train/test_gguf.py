"""`invoke fuse --gguf`: a GGUF file whose header, tensors and tokenizer say what they hold."""

import json

import mlx.core as mx
import numpy as np
import pytest
from farol_core.template import CHAT_TEMPLATE
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf.quants import dequantize
from invoke import Context

import tasks


def _text(reader, key):
    field = reader.fields[key]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def _number(reader, key):
    field = reader.fields[key]
    return field.parts[field.data[0]][0]


def _strings(reader, key):
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def _fused_weights(folder, config):
    """The fused MLX weights under GGUF names, q and k rows in llama.cpp's order."""
    from farol_train.gguf_export import gguf_tensors

    weights = {}
    for path in sorted(folder.glob("*.safetensors")):
        weights.update(mx.load(str(path)))
    return {k: np.array(v.astype(mx.float32)) for k, v in gguf_tensors(weights, config).items()}


def _error_bound(expected, ggml_type):
    """The largest error a block of 32 may carry, with the float16 scale's own rounding on
    top: q8_0 rounds to half a step of amax/127; q4_0's 16 levels run from -8 to +7 steps
    of amax/8, so a value near +amax is clamped a whole step away."""
    blocks = expected.reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    error = amax / 127 * 0.5 if ggml_type == Q.Q8_0 else amax / 8
    return np.broadcast_to(error + amax * 2e-3 + 1e-6, blocks.shape).reshape(expected.shape)


@pytest.fixture(scope="module")
def runs(trained_run):
    result, _ = trained_run
    return result.run_dir.parent, result.run_dir.name


@pytest.mark.slow
@pytest.mark.parametrize("kind, ggml_type, file_type", [("f16", Q.F16, 1), ("q8_0", Q.Q8_0, 7),
                                                        ("q4_0", Q.Q4_0, 2)])
def test_invoke_fuse_gguf_writes_what_its_header_says(kind, ggml_type, file_type, runs, tmp_path,
                                                      monkeypatch, capsys):
    # Before: every tensor F32 under an F16 header, no chat template, a byte-level BPE
    # labelled SentencePiece without merges, and a temporary folder printed as the path.
    runs_dir, name = runs
    monkeypatch.setattr(tasks, "RUNS", runs_dir)
    out = tmp_path / "fused"
    tasks.fuse(Context(), run=name, out=str(out), gguf=True, gguf_type=kind)
    path = out / "model.gguf"
    printed = capsys.readouterr().out
    assert f"GGUF: {path.resolve()}" in printed and path.is_file()

    reader = GGUFReader(str(path))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    expected = _fused_weights(out, config)
    assert _number(reader, "general.file_type") == file_type
    assert sorted(t.name for t in reader.tensors) == sorted(expected)
    for tensor in reader.tensors:
        want = expected[tensor.name]
        got = dequantize(tensor.data, tensor.tensor_type).reshape(want.shape)
        if want.ndim == 1:
            assert tensor.tensor_type == Q.F32
            np.testing.assert_array_equal(got, want)
        elif ggml_type == Q.F16:
            assert tensor.tensor_type == Q.F16
            np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))
        else:
            assert tensor.tensor_type == ggml_type, tensor.name
            assert np.all(np.abs(got - want) <= _error_bound(want, ggml_type)), tensor.name
            assert not np.array_equal(got, want)  # quantized, not copied

    assert _text(reader, "tokenizer.chat_template") == CHAT_TEMPLATE
    assert _text(reader, "tokenizer.ggml.model") == "gpt2"  # the tiny model's byte-level BPE
    tokenizer = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer["model"]["merges"]]
    assert _strings(reader, "tokenizer.ggml.merges") == merges
    tokens = _strings(reader, "tokenizer.ggml.tokens")
    assert all(tokens[i] == t for t, i in tokenizer["model"]["vocab"].items())
    assert tokens[_number(reader, "tokenizer.ggml.eos_token_id")] == "</s>"
    modelfile = (out / "Modelfile").read_text(encoding="utf-8")
    assert modelfile.startswith("FROM ./model.gguf\n") and 'PARAMETER stop "</s>"' in modelfile
    assert "[INST] {{ if .System }}" in modelfile


def test_an_unknown_gguf_type_is_refused_before_writing(runs, tmp_path, monkeypatch, capsys):
    runs_dir, name = runs
    monkeypatch.setattr(tasks, "RUNS", runs_dir)
    with pytest.raises(SystemExit):
        tasks.fuse(Context(), run=name, out=str(tmp_path / "f"), gguf=True, gguf_type="q5_k")
    assert "--gguf-type must be one of f16, q8_0, q4_0" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()
