"""farol-train against mlx-lm's own trainer (mlx_lm.tuner.train): same model, data, settings.

Target: farol-train's trained tokens/s >= 1.0x mlx-lm's. Both trainers time the step alone
(forward, backward, update; batch building and evaluation excluded). Rates leave out the first
report window (it holds the compilation) and weight each window by its duration. mlx-lm's
`default_loss` counts one padding token per sequence, so its token count is corrected by
batch_size per step before the ratio is taken (the raw ratio is reported too).
With --benchmark-disable (the suite's default) each trainer runs once, briefly.
"""

import json

from farol_train import train

from tests.farol_train.mlx_lm_run import train_with_mlx_lm

BATCH, REPORT = 4, 6
SETTINGS = {"batch_size": BATCH, "max_seq_length": 256, "learning_rate": 3e-3,
            "steps_per_report": REPORT}


def rate(rows: list[dict], extra_per_step: int = 0) -> float:
    """Duration-weighted tokens/s over every report window after the first, less
    `extra_per_step` tokens that a trainer counts but does not train."""
    seconds = [REPORT / r["iterations_per_second"] for r in rows[1:]]
    tokens = [r["tokens_per_second"] * s - extra_per_step * REPORT
              for r, s in zip(rows[1:], seconds, strict=True)]
    return sum(tokens) / sum(seconds)


def run_both(model, data, tmp_path, iters: int) -> dict:
    farol = train({"name": "bench", "model": str(model), "data": str(data),
                   "runs_dir": str(tmp_path), "lora": {"num_layers": 2, "rank": 4},
                   "training": {**SETTINGS, "iters": iters, "steps_per_eval": 10**6,
                                "save_every": 10**6}},
                  log=lambda _: None, fresh=True)
    lines = (farol.run_dir / "metrics.jsonl").read_text().splitlines()
    farol_tps = rate([json.loads(line) for line in lines])
    mlx_rows = train_with_mlx_lm(model, data, tmp_path / "mlx-lm", iters=iters,
                                 batch_size=BATCH, max_seq_length=256, num_layers=2, rank=4,
                                 steps_per_report=REPORT)
    mlx_raw, mlx_tps = rate(mlx_rows), rate(mlx_rows, extra_per_step=BATCH)
    return {"farol_tokens_per_s": farol_tps, "mlx_lm_tokens_per_s": mlx_tps,
            "ratio": farol_tps / mlx_tps, "ratio_uncorrected": farol_tps / mlx_raw}


def test_farol_train_vs_mlx_lm_trainer(benchmark, tiny_4bit, processed, tmp_path):
    iters = 12 if benchmark.disabled else 48  # the suite runs it once, briefly
    result = benchmark.pedantic(run_both, args=(tiny_4bit, processed, tmp_path, iters),
                                rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\nfarol-train {result['farol_tokens_per_s']:.0f} tok/s, mlx-lm trainer "
          f"{result['mlx_lm_tokens_per_s']:.0f} tok/s, ratio {result['ratio']:.2f} "
          f"(uncorrected {result['ratio_uncorrected']:.2f})")
    assert result["farol_tokens_per_s"] > 0 and result["mlx_lm_tokens_per_s"] > 0
