"""run-7b.sh's Python steps, one per call, each printing one JSON line of results.

  save-shape SHAPE TOKENIZER_DIR OUT   a random 4-bit model of SHAPE (tiny or mistral-7b) with the
                                       tokenizer of TOKENIZER_DIR, saved in MLX layout
  warmup SHAPE                         one untimed training-peak measurement of SHAPE, so CUDA
                                       compiles its kernels before the first measured point
  train farol|mlx-lm MODEL DATA ITERS  one trainer (batch 4, max_seq_length 512, LoRA rank 8 on
                                       16 layers or all when fewer): tokens/s and peak memory
Run each `train` in its own process: a second model in one process inflates the peak.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import mlx.core as mx
from farol_core import shapes
from farol_core.tiny import model_config
from mlx_lm.utils import save_config, save_model

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SETTINGS = {"batch_size": 4, "max_seq_length": 512, "rank": 8, "num_layers": 16}
REPORT = 2  # steps per report; the first window (compilation) is left out of the rate


def _shape(name: str, tokenizer_dir: Path) -> tuple[dict, int]:
    if name == "mistral-7b":
        return shapes.MISTRAL_7B, shapes.MISTRAL_7B_VOCAB
    config = json.loads((tokenizer_dir / "config.json").read_text())
    keys = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
            "num_key_value_heads", "head_dim")
    return {k: config[k] for k in keys if k in config}, config["vocab_size"]


def save_shape(name: str, tokenizer_dir: str, out: str) -> dict:
    """Random 4-bit weights of the shape, float16 scales, the tiny tokenizer's files beside."""
    shape, vocab = _shape(name, Path(tokenizer_dir))
    model = shapes.build_quantized(shape, vocab, 4, 64, mx.float16)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(out_dir, model)
    config = {**model_config(vocab, shape), "quantization": {"bits": 4, "group_size": 64},
              "torch_dtype": "float16"}
    save_config(config, out_dir / "config.json")
    for f in Path(tokenizer_dir).glob("tokenizer*"):
        shutil.copy(f, out_dir / f.name)
    for f in ("special_tokens_map.json", "chat_template.jinja"):
        if (Path(tokenizer_dir) / f).is_file():
            shutil.copy(Path(tokenizer_dir) / f, out_dir / f)
    return {"saved": str(out_dir), "shape": name, "vocab": vocab}


def warmup(name: str) -> dict:
    """One training-peak measurement of the shape at its smallest grid setting, timed."""
    from farol_train.calibrate import MISTRAL_7B, grid
    from farol_train.memory import measure_peak

    point = grid("tiny")[0] if name == "tiny" else grid("mistral-7b-16gb")[4]
    shape = point.shape if name == "tiny" else MISTRAL_7B
    start = time.perf_counter()
    peak = measure_peak(shape, point.lora, point.training, steps=1)
    return {"warmup_s": round(time.perf_counter() - start, 1), "peak_bytes": peak}


def train(which: str, model: str, data: str, iters: str) -> dict:
    """tokens/s (windows after the first) and peak memory of one trainer."""
    layers = min(SETTINGS["num_layers"], json.loads(
        (Path(model) / "config.json").read_text())["num_hidden_layers"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = _farol(model, data, tmp, int(iters), layers) if which == "farol" else \
            _mlx_lm(model, data, tmp, int(iters), layers)
    rows = [r for r in rows if r.get("iterations_per_second")]  # train reports only
    later = rows[1:] or rows
    seconds = [REPORT / r["iterations_per_second"] for r in later]
    tokens = sum(r["tokens_per_second"] * s for r, s in zip(later, seconds, strict=True))
    return {"trainer": which, "tokens_per_s": round(tokens / sum(seconds), 1),
            "peak_memory_gb": round(mx.get_peak_memory() / 1e9, 3), "lora_layers": layers,
            **{k: v for k, v in SETTINGS.items() if k != "num_layers"}, "iters": int(iters)}


def _farol(model, data, tmp, iters, layers) -> list[dict]:
    from farol_train import train as farol_train

    run = farol_train({"name": "bench", "model": model, "data": data, "runs_dir": tmp,
                       "lora": {"num_layers": layers, "rank": SETTINGS["rank"]},
                       "training": {"batch_size": SETTINGS["batch_size"], "iters": iters,
                                    "max_seq_length": SETTINGS["max_seq_length"],
                                    "steps_per_report": REPORT, "steps_per_eval": 10**6,
                                    "val_batches": 1,  # as mlx_lm_run gives mlx-lm
                                    "save_every": 10**6}},
                      log=lambda _: None, fresh=True)
    return [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]


def _mlx_lm(model, data, tmp, iters, layers) -> list[dict]:
    from tests.farol_train.mlx_lm_run import train_with_mlx_lm

    return train_with_mlx_lm(model, data, Path(tmp) / "mlx-lm", iters=iters,
                             batch_size=SETTINGS["batch_size"],
                             max_seq_length=SETTINGS["max_seq_length"], num_layers=layers,
                             rank=SETTINGS["rank"], steps_per_report=REPORT)


if __name__ == "__main__":
    step = {"save-shape": save_shape, "warmup": warmup, "train": train}[sys.argv[1]]
    print(json.dumps(step(*sys.argv[2:])))
