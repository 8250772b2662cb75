"""Peak training memory: an estimate from the model's shape, and a real measurement to check it.

The estimate adds up what a QLoRA step keeps alive: the (quantized) base weights, the LoRA
weights with their gradient, AdamW moments and any accumulated gradient, the activations kept for
the backward pass through the adapted blocks, one block's attention scores, and the logits. The
activation, attention-score and logits terms carry coefficients fitted to `mx.get_peak_memory()`
measurements, kept per backend in `memory_calibration.json` by `farol_train.calibrate` (cpu and
cuda measured; metal borrowed from cuda), with the safety margin profiles and preflight add.
"""

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from farol_core.errors import FarolError

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
ALL_KEYS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# How far a backend's coefficients can be trusted, by the `status` its calibration records.
CALIBRATION_STATUS = {
    "measured": "fitted to peaks measured on this backend",
    "reference": "fitted to published reference peaks for this backend, not measured by Farol",
    "borrowed": "not measured on this backend: coefficients borrowed from another one",
}


@dataclass
class Shape:
    """What the memory model needs to know about a decoder-only (llama/mistral) model."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype_bytes: int = 2
    bits: int | None = None  # None: not quantized
    group_size: int = 64
    tied: bool = False

    def linear_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one block."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, \
            self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def shape_from_config(config: dict) -> Shape:
    """A Shape from a Hugging Face / MLX config.json."""
    try:
        heads = config["num_attention_heads"]
        quant = config.get("quantization") or {}
        return Shape(
            hidden=config["hidden_size"], layers=config["num_hidden_layers"],
            intermediate=config["intermediate_size"], heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            vocab=config["vocab_size"],
            # Newer Hugging Face configs write "dtype"; older ones "torch_dtype".
            dtype_bytes=DTYPE_BYTES.get(config.get("dtype") or config.get("torch_dtype"), 2),
            bits=quant.get("bits"), group_size=quant.get("group_size", 64),
            tied=bool(config.get("tie_word_embeddings", False)))
    except KeyError as e:
        raise FarolError(f"model config lacks {e.args[0]}; the memory model needs a "
                         "llama/mistral-style config.json") from None


def read_shape(model_dir: str | Path) -> Shape:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FarolError(f"Model not found: {path} is missing")
    return shape_from_config(json.loads(path.read_text(encoding="utf-8")))


def weight_bytes(shape: Shape) -> int:
    """Bytes of the base weights as loaded: quantized matrices carry a scale and a bias (in the
    model's dtype) per group."""
    per_elem = shape.dtype_bytes if shape.bits is None else \
        shape.bits / 8 + 2 * shape.dtype_bytes / shape.group_size
    block = sum(i * o for i, o in shape.linear_dims().values())
    matrices = shape.layers * block + shape.vocab * shape.hidden * (1 if shape.tied else 2)
    norms = (2 * shape.layers + 1) * shape.hidden * shape.dtype_bytes
    return int(matrices * per_elem + norms)


def lora_parameters(shape: Shape, lora: dict) -> int:
    """Trainable parameters: rank * (in + out) per adapted linear layer."""
    dims = shape.linear_dims()
    keys = [k.split(".")[-1] for k in (lora.get("keys") or ALL_KEYS)]
    per_block = sum(lora["rank"] * sum(dims[k]) for k in keys if k in dims)
    return per_block * min(lora["num_layers"], shape.layers)


def load_calibration(backend: str) -> dict:
    """Fitted coefficients for `backend` (cpu, cuda or metal); `status` says how far they can be
    trusted (see CALIBRATION_STATUS) and `source` where they come from."""
    text = resources.files("farol_train").joinpath("memory_calibration.json").read_text()
    table = json.loads(text)
    if backend not in table:
        raise FarolError(f"no memory calibration for backend {backend!r}",
                         hint=f"known: {', '.join(table)}")
    return table[backend]


def estimate(shape: Shape, lora: dict, training: dict, backend: str = "cpu",
             calibration: dict | None = None) -> dict:
    """Estimated peak bytes of one training step, by component, with the total; `calibration`
    replaces `backend`'s fitted coefficients (see farol_train.calibrate)."""
    cal = calibration or load_calibration(backend)
    batch, seq = training["batch_size"], training["max_seq_length"]
    tokens, layers = batch * seq, min(lora["num_layers"], shape.layers)
    copies = 4 + (training.get("grad_accumulation_steps", 1) > 1)  # weight, grad, m, v, pending
    # Activations kept per adapted block: per token, terms in the hidden and MLP widths and,
    # for attention scores, in the sequence length; with checkpointing only block inputs stay.
    per_block = tokens * shape.dtype_bytes * (
        cal["hidden"] * shape.hidden + cal["intermediate"] * shape.intermediate
        + cal["attention"] * shape.heads * seq)
    if training.get("grad_checkpoint"):
        activations = layers * tokens * shape.dtype_bytes * shape.hidden \
            + cal["checkpointed_block"] * per_block
    else:
        activations = layers * per_block
    parts = {
        "weights": weight_bytes(shape),
        "lora_state": lora_parameters(shape, lora) * 4 * copies,
        "activations": int(activations),
        # Every block's forward builds (batch, heads, seq, seq) attention scores; frozen blocks
        # free them at once, so one block's worth is part of the peak whatever the LoRA depth.
        "attention_scores": int(cal.get("attention_transient", 0.0) * tokens * shape.heads
                                * seq * shape.dtype_bytes),
        "logits": int(cal["logits"] * tokens * shape.vocab * 4),
        # A fixed cost per row of the batch, fitted: on the 7B CUDA points it cuts the largest
        # leave-one-out error from 20% to 15%; its cause is not known.
        "batch_rows": int(cal.get("row_bytes", 0) * batch),
        "overhead": int(cal["overhead_bytes"]),
        # CUDA's peak jumps past 1024 tokens per step (measured on H100): fitted per token beyond
        "large_step": int(cal.get("large_step_bytes_per_token", 0)
                          * max(0, tokens - cal.get("large_step_tokens", tokens))),
    }
    parts["total"] = sum(parts.values())
    return parts


def margin(backend: str, calibration: dict | None = None) -> float:
    """The safety margin `backend`'s estimates carry in profiles and preflight: a share of the
    estimate, chosen by `farol_train.calibrate` so that no measured point is underestimated by
    more than 5% once it is added, even when the fit leaves that point out."""
    return (calibration or load_calibration(backend)).get("margin", 0.0)


def planned_peak(shape: Shape, lora: dict, training: dict, backend: str = "cpu") -> int:
    """The estimate with `backend`'s safety margin added: what profiles and preflight plan for."""
    total = estimate(shape, lora, training, backend)["total"]
    return int(total * (1 + margin(backend)))


def measure_peak(shape: Shape, lora: dict, training: dict, steps: int = 2) -> int:
    """Peak bytes (mx.get_peak_memory) of real training steps on a random model of `shape`,
    measured in a fresh process: a second model in one process would inflate the peak."""
    spec = json.dumps({"shape": asdict(shape), "lora": lora, "training": training,
                       "steps": steps})
    out = subprocess.run([sys.executable, "-m", "farol_train.memory", spec],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise FarolError(f"memory measurement failed: {out.stderr.strip()[-500:]}")
    return int(out.stdout.strip().splitlines()[-1])


def _measure_here(spec: dict) -> int:
    import mlx.core as mx
    import mlx.optimizers as optim
    from farol_core.shapes import build_quantized
    from farol_core.tiny import model_config
    from mlx_lm.models import llama  # mlx-lm runs mistral checkpoints on its llama model

    from farol_train.lora import apply_lora
    from farol_train.step import make_step

    s = Shape(**spec["shape"])
    hf = {"hidden_size": s.hidden, "num_hidden_layers": s.layers, "intermediate_size":
          s.intermediate, "num_attention_heads": s.heads, "num_key_value_heads": s.kv_heads,
          "head_dim": s.head_dim}
    dtype = {4: mx.float32, 2: mx.float16}[s.dtype_bytes]
    if s.bits:
        model = build_quantized(hf, s.vocab, s.bits, s.group_size, dtype)
    else:
        model = llama.Model(llama.ModelArgs.from_dict(model_config(s.vocab, hf)))
        model.set_dtype(dtype)
    mx.eval(model.parameters())
    # Count what training holds, as after loading a converted model: not the float weights that
    # existed for a moment while the random model was quantized.
    mx.reset_peak_memory()
    apply_lora(model, {"dropout": 0.0, "scale": 20.0, "keys": None, **spec["lora"]})
    t = spec["training"]
    accumulation = t.get("grad_accumulation_steps", 1)
    step = make_step(model, optim.AdamW(learning_rate=1e-4), accumulation,
                     t.get("grad_checkpoint", False), {"grad": None})
    tokens = mx.random.randint(0, s.vocab, (t["batch_size"], t["max_seq_length"]))
    spans = mx.array([[0, t["max_seq_length"]]] * t["batch_size"])
    for i in range(spec["steps"]):
        step((tokens, spans), (i + 1) % accumulation == 0)
    return mx.get_peak_memory()


if __name__ == "__main__":
    print(_measure_here(json.loads(sys.argv[1])))
