"""Base against tuned on held-out data, with the same model loaded once.

Loss is the mean cross-entropy per trained token (answer tokens only when the run used prompt
masking) and perplexity is exp(loss); both are computed over whole splits.
"""

import json
import math
from pathlib import Path

from farol_core.config import load_config
from farol_core.dataset import evaluate_loss, load_split, read_messages
from farol_core.errors import FarolError
from farol_core.generate import complete
from farol_core.io import write_json
from farol_core.model import check_adapter_dir, load_model
from mlx_lm.utils import load_adapters

SPLITS = ("valid", "test")


def run_config(run_dir: str | Path) -> dict:
    """The resolved config a training run saved, re-validated."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FarolError(f"No run at {run_dir} (config.json missing)", hint="run `invoke train`")
    return load_config("train", json.loads(path.read_text()))


def evaluate(run_dir: str | Path | None = None, model: str | None = None,
             adapter: str | Path | None = None, data: str | Path | None = None,
             samples: int | None = None, max_tokens: int | None = None,
             out: str | Path | None = None, log=print) -> dict:
    """Evaluate the base model and, when there is an adapter, the tuned one; write report.json."""
    cfg = run_config(run_dir) if run_dir else load_config("train", None)
    model = model or cfg["model"]
    adapter = adapter or run_dir
    data, ecfg, tcfg = Path(data or cfg["data"]), cfg["eval"], cfg["training"]
    samples = ecfg["samples"] if samples is None else samples
    max_tokens = max_tokens or ecfg["max_tokens"]
    out = Path(out) if out else (Path(run_dir) / "eval" if run_dir else Path("eval"))

    lm, tokenizer = load_model(model)
    splits = {s: load_split(data / f"{s}.jsonl", tokenizer, tcfg["mask_prompt"])
              for s in SPLITS if (data / f"{s}.jsonl").is_file()}
    if not splits:
        raise FarolError(f"No valid.jsonl or test.jsonl in {data}", hint="run `invoke prepare`")
    questions = _questions(data, samples)
    variants = {"base": None} | ({"tuned": check_adapter_dir(adapter)} if adapter else {})
    results, answers = {}, {}
    for name, adapter_dir in variants.items():
        if adapter_dir is not None:
            load_adapters(lm, str(adapter_dir))
        lm.eval()
        log(f"evaluating {name} ...")
        results[name] = {s: _loss(lm, ex, ecfg, tcfg) for s, ex in splits.items()}
        answers[name] = [complete(lm, tokenizer, q[:-1], max_tokens).text for q in questions]
    report = _report(model, adapter, tcfg["mask_prompt"], results, questions, answers)
    write_json(out / "report.json", report)
    return report


def _loss(model, examples, ecfg, tcfg) -> dict:
    loss, tokens = evaluate_loss(model, examples, ecfg["batch_size"], tcfg["max_seq_length"])
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": tokens}


def _questions(data: Path, n: int) -> list[list[dict]]:
    path = data / "test.jsonl"
    return read_messages(path)[:n] if path.is_file() and n else []


def _report(model, adapter, mask_prompt, results, questions, answers) -> dict:
    splits = {s: {name: r[s] for name, r in results.items()} for s in results["base"]}
    return {
        "model": str(model),
        "adapter": str(adapter) if adapter else None,
        "loss_tokens": "answer tokens only" if mask_prompt else "all tokens",
        "splits": splits,
        "samples": [
            {"question": q[-2]["content"] if len(q) > 1 else "",
             "reference": q[-1]["content"],
             **{name: a[i] for name, a in answers.items()}}
            for i, q in enumerate(questions)
        ],
    }


def summary_lines(report: dict) -> list[str]:
    """A few lines for the terminal: loss and perplexity per split and variant."""
    lines = [f"loss over {report['loss_tokens']}"]
    for split, variants in report["splits"].items():
        cells = ", ".join(f"{name} loss {v['loss']:.3f} / ppl {v['perplexity']:.1f}"
                          for name, v in variants.items())
        lines.append(f"  {split}: {cells}")
    for s in report["samples"]:
        lines += [f"  Q: {s['question']}", f"     reference: {s['reference']}"]
        lines += [f"     {name}: {s[name]!r}" for name in ("base", "tuned") if name in s]
    return lines
