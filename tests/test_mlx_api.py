"""Every mlx and mlx-lm function, class and parameter Farol calls, checked by signature.

mlx-lm has renamed and reshaped these between releases (`load(q_config=...)`, `LoRA.from_model`,
`linear_to_lora_layers(..., lora_rank=...)`), which is what broke the user's old scripts. When
an upgrade breaks one, the failing test names the call.
"""

import dataclasses
import inspect
import re

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest

# (dotted path, parameters Farol passes by name or position, in order where position matters)
CALLS = [
    ("mlx_lm.load", ["path_or_hf_repo", "tokenizer_config", "model_config", "adapter_path",
                     "return_config"]),
    ("mlx_lm.convert", ["hf_path", "mlx_path", "quantize", "q_group_size", "q_bits"]),
    ("mlx_lm.stream_generate", ["model", "tokenizer", "prompt", "max_tokens"]),
    ("mlx_lm.batch_generate", ["model", "tokenizer", "prompts", "max_tokens"]),
    ("mlx_lm.tuner.utils.linear_to_lora_layers", ["model", "num_layers", "config"]),
    ("mlx_lm.utils.load_adapters", ["model", "adapter_path"]),
    ("mlx_lm.utils.load_tokenizer", ["model_path"]),
    ("mlx_lm.generate.BatchGenerator", ["model", "max_tokens", "stop_tokens", "sampler",
                                        "completion_batch_size"]),
    ("mlx_lm.tuner.trainer.grad_checkpoint", ["layer"]),
    ("mlx_lm.sample_utils.make_sampler", ["temp", "top_p"]),
    ("mlx_lm.generate.generate_step", ["prompt", "model", "max_tokens", "sampler",
                                       "prompt_cache"]),
    ("mlx_lm.sample_utils.make_logits_processors", ["repetition_penalty"]),
    # farol-train: fuse, GGUF export, the memory measurement, and mlx-lm's trainer (tests)
    ("mlx_lm.utils.save", ["dst_path", "src_path_or_repo", "model", "tokenizer", "config",
                           "donate_model"]),
    ("mlx_lm.utils.dequantize_model", ["model"]),
    ("mlx_lm.gguf.permute_weights", ["weights", "n_head", "n_head_kv"]),
    ("mlx_lm.gguf.translate_weight_names", ["name"]),
    ("mlx_lm.tuner.trainer.train", ["model", "optimizer", "train_dataset", "val_dataset", "args",
                                    "training_callback"]),
    ("mlx_lm.tuner.datasets.load_local_dataset", ["data_path", "tokenizer", "config"]),
    # benchmarks (farol_bench.workloads, farol_core.shapes)
    ("mlx_lm.models.cache.make_prompt_cache", ["model"]),
    ("mlx.nn.quantize", ["model", "group_size", "bits"]),
    ("mlx.optimizers.clip_grad_norm", ["grads", "max_norm"]),
    # the training step and checkpoint restore (farol_train.loop, farol_train.checkpoint)
    ("mlx.utils.tree_map", ["fn", "tree"]),
    ("mlx.utils.tree_map_with_path", ["fn", "tree"]),
    ("mlx.core.random.randint", ["low", "high", "shape", "key"]),
    ("mlx.core.random.key", ["seed"]),
    # distributed training (farol_train.distributed)
    ("mlx.core.distributed.init", ["strict", "backend"]),
    ("mlx.core.distributed.all_sum", ["x", "group"]),
    ("mlx.core.distributed.all_max", ["x", "group"]),
    ("mlx.nn.average_gradients", ["gradients", "group"]),
]


def _resolve(dotted: str):
    module_name, _, attr = dotted.rpartition(".")
    module = __import__(module_name, fromlist=[attr])
    assert hasattr(module, attr), f"{dotted} is gone: Farol calls it"
    return getattr(module, attr)


def _parameters(fn) -> tuple[list[str], str]:
    """Parameter names and the signature text; mlx.core's C++ functions carry it in __doc__."""
    try:
        sig = inspect.signature(fn)
        return list(sig.parameters), str(sig)
    except ValueError:
        text = (fn.__doc__ or "").splitlines()[0]
        inner = text[text.index("(") + 1: text.rindex(")")]
        names = [re.split(r"[:=]", p)[0].strip().lstrip("*") for p in inner.split(", ")]
        return [n for n in names if n and n != "/"], text


@pytest.mark.parametrize(("dotted", "params"), CALLS, ids=[c[0] for c in CALLS])
def test_call_signature(dotted, params):
    fn = _resolve(dotted)
    found, text = _parameters(fn)
    missing = [p for p in params if p not in found]
    assert not missing, f"{dotted}{text} no longer takes {missing}"
    positions = [found.index(p) for p in params]
    assert positions == sorted(positions), f"{dotted}: parameter order changed: {found}"


def test_generation_step_dataclass_fields():
    from mlx_lm.generate import GenerationResponse

    fields = {f.name for f in dataclasses.fields(GenerationResponse)}
    needed = {"text", "token", "prompt_tokens", "prompt_tps", "generation_tokens",
              "generation_tps", "peak_memory", "finish_reason"}
    assert needed <= fields, f"GenerationResponse lost {needed - fields}"


def test_batch_response_fields():
    from mlx_lm.generate import BatchResponse

    assert "texts" in {f.name for f in dataclasses.fields(BatchResponse)}


def test_batch_generator_methods_the_bridge_calls():
    from mlx_lm.generate import BatchGenerator, GenerationBatch

    for name, params in (("insert", ["prompts", "max_tokens", "samplers", "logits_processors"]),
                         ("remove", ["uids"]), ("next_generated", []), ("close", [])):
        found = list(inspect.signature(getattr(BatchGenerator, name)).parameters)
        assert [p for p in params if p not in found] == [], f"BatchGenerator.{name}{found}"
    assert hasattr(mx.random, "seed")

    fields = {f.name for f in dataclasses.fields(GenerationBatch.Response)}
    assert {"uid", "token", "finish_reason"} <= fields, f"GenerationBatch.Response is {fields}"


def test_tokenizer_wrapper_streaming_detokenizer(tiny_model):
    # Checked on an instance: releases differ in how they provide these (a property in 0.32, a
    # __getattr__ in 0.31), and the bridge only needs them to work.
    from mlx_lm.utils import load_tokenizer

    wrapper = load_tokenizer(tiny_model)
    assert wrapper.eos_token_id in wrapper.eos_token_ids  # the bridge's stop tokens
    detokenizer = wrapper.detokenizer  # a fresh streaming detokenizer per request
    text = "Olá, Farense!"
    for token in wrapper.encode(text, add_special_tokens=False):
        detokenizer.add_token(token)
    detokenizer.finalize()
    assert detokenizer.text == text and isinstance(detokenizer.last_segment, str)


def test_lora_config_keys_and_adapter_loading_contract(tmp_path):
    from mlx_lm.models import llama
    from mlx_lm.tuner.utils import linear_to_lora_layers

    args = llama.ModelArgs.from_dict({
        "model_type": "mistral", "hidden_size": 64, "num_hidden_layers": 2,
        "intermediate_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1,
        "vocab_size": 32, "rms_norm_eps": 1e-5})
    model = llama.Model(args)
    model.freeze()
    linear_to_lora_layers(model, 1, {"rank": 2, "scale": 10.0, "dropout": 0.0,
                                     "keys": ["self_attn.q_proj"]})
    names = [k for k, _ in __import__("mlx.utils").utils.tree_flatten(
        model.trainable_parameters())]
    assert names == ["model.layers.1.self_attn.q_proj.lora_a",
                     "model.layers.1.self_attn.q_proj.lora_b"]


def test_adapter_layers_wrap_the_base_layer_where_eval_takes_it_back():
    """farol_eval.checkpoints.remove_adapters puts back `.linear` / `.embedding` of each."""
    from mlx_lm.tuner.dora import DoRAEmbedding, DoRALinear
    from mlx_lm.tuner.lora import LoRAEmbedding, LoRALinear, LoRASwitchLinear

    base = nn.Linear(4, 4)
    for cls in (LoRALinear, DoRALinear):
        assert cls.from_base(base, r=2).linear is base
    embedding = nn.Embedding(8, 4)
    for cls in (LoRAEmbedding, DoRAEmbedding):
        assert cls.from_base(embedding, r=2).embedding is embedding
    from mlx_lm.models.switch_layers import SwitchLinear

    experts = SwitchLinear(4, 4, 2)
    assert LoRASwitchLinear.from_base(experts, r=2).linear is experts


def test_mlx_core_calls():
    needed = [(mx, "mlx.core", n) for n in (
        "compile", "checkpoint", "get_peak_memory", "reset_peak_memory", "set_memory_limit",
        "save_safetensors", "load", "default_device", "device_info", "eval")]
    needed += [(nn, "mlx.nn", "value_and_grad"), (nn.losses, "mlx.nn.losses", "cross_entropy"),
               (nn.Module, "mlx.nn.Module", "set_dtype")]
    needed += [(optim, "mlx.optimizers", n) for n in
               ("AdamW", "cosine_decay", "linear_schedule", "join_schedules")]
    gone = [f"{where}.{name}" for obj, where, name in needed if not hasattr(obj, name)]
    assert not gone, f"gone, and Farol calls them: {', '.join(gone)}"


def test_training_state_round_trip_calls():
    """farol-train's checkpoints: optimizer state out and back in, MLX's RNG and device calls."""
    from mlx.utils import tree_flatten, tree_unflatten

    opt = optim.AdamW(learning_rate=0.1)
    params = {"layers": [{}, {"w": mx.ones((2,))}]}
    opt.init(params)
    flat = dict(tree_flatten(opt.state))
    opt.state = tree_unflatten(list(flat.items()))
    assert set(dict(tree_flatten(opt.state))) == set(flat)
    mx.random.seed(1)
    assert mx.metal.is_available() in (True, False) and mx.cuda.is_available() in (True, False)
    assert isinstance(mx.device_info(), dict)
    from mlx_lm.tuner.lora import LoRALinear

    assert "dequantize" in inspect.signature(LoRALinear.fuse).parameters


def test_distributed_calls_and_the_mlx_launch_options():
    """A single-process group does the collectives Farol uses; mlx.launch takes its options."""
    import subprocess
    import sys
    from pathlib import Path

    group = mx.distributed.init()
    assert (group.rank(), group.size()) == (0, 1)
    assert mx.distributed.all_sum(mx.array([2.0]), group=group).item() == 2.0
    assert mx.distributed.all_max(mx.array([3], dtype=mx.int32), group=group).item() == 3
    assert nn.average_gradients({"g": mx.ones((2,))}, group=group)["g"].tolist() == [1.0, 1.0]
    # resume on ranks other than 0 loads weights from (name, array) pairs
    assert list(inspect.signature(nn.Module.load_weights).parameters)[1:3] == \
        ["file_or_weights", "strict"]
    script = Path(sys.executable).parent / "mlx.launch"
    text = subprocess.run([str(script), "--help"], capture_output=True, text=True).stdout
    for option in ("--hosts", "--repeat-hosts", "--hostfile", "--backend", "--env",
                   "--starting-port"):
        assert option in text, f"mlx.launch no longer takes {option}"
