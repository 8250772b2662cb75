"""Base against tuned on held-out data, with the same model loaded once.

Loss is the mean cross-entropy per trained token (answer tokens only when the run used prompt
masking) and perplexity is exp(loss); both are computed over whole splits, from per-example
losses so that base and tuned can be compared in pairs. Answers to the test questions are
generated greedily, scored per question, and compared in pairs with bootstrap intervals. A
seeded sample of train-split questions is answered and scored the same way: what the adapter
learned of what it was shown, beside what it makes of questions it never saw.
"""

import json
import random
from collections import defaultdict
from pathlib import Path

from farol_core.config import load_config
from farol_core.dataset import load_split, read_messages
from farol_core.errors import FarolError
from farol_core.io import read_jsonl
from farol_core.model import check_adapter_dir, load_model
from farol_core.rundir import RunDir
from farol_core.tiny import PRETRAINING_FILE, text_digest

from farol_eval import checkpoints
from farol_eval.generation import answer
from farol_eval.losses import example_losses, split_loss
from farol_eval.metrics import score
from farol_eval.report import summary_lines, write_reports
from farol_eval.stats import compare, compare_losses

SPLITS = ("valid", "test")
__all__ = ["evaluate", "held_out_records", "resolve", "run_config", "summary_lines",
           "train_records"]


def run_config(run_dir: str | Path) -> dict:
    """The resolved config a training run saved, re-validated."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise FarolError(f"No run at {run_dir} ({path.name} missing)", hint="run `invoke train`")
    return load_config("train", json.loads(path.read_text()))


def evaluate(run_dir: str | Path | None = None, model: str | None = None,
             adapter: str | Path | None = None, data: str | Path | None = None,
             samples: int | None = None, max_tokens: int | None = None,
             out: str | Path | None = None, base_only: bool = False, log=print,
             **eval_overrides) -> dict:
    """Evaluate the base model and, unless `base_only` or there is no adapter, the tuned one
    on the same questions; write report.json, report.csv and report.md. `eval_overrides` set
    keys of the config's `eval` section (questions, accent_folding, seed, ...)."""
    cfg = resolve(run_dir, {**eval_overrides, "samples": samples, "max_tokens": max_tokens})
    ecfg, tcfg, model = cfg["eval"], cfg["training"], model or cfg["model"]
    adapter = None if base_only else (adapter or run_dir)
    data = Path(data or cfg["data"])
    lm, tokenizer = load_model(model, template_choice=cfg["template"])
    splits = _splits(data, tokenizer, tcfg["mask_prompt"])
    records = held_out_records(data, ecfg["questions"])
    train = train_records(data, ecfg["train_questions"], ecfg["seed"])
    variants = {"base": None} | ({"tuned": check_adapter_dir(adapter)} if adapter else {})
    _check_base(lm, model, variants.get("tuned"), cfg["model"] if run_dir else model, log)
    measured = {name: _measure(lm, tokenizer, adapter_dir, splits, records + train, cfg, log,
                               name)
                for name, adapter_dir in variants.items()}
    curve = _curve(lm, run_dir, data, tokenizer, splits, cfg, log) if run_dir else None
    report = build_report(model, adapter, run_dir, tcfg["mask_prompt"], ecfg, measured,
                          records, curve, train)
    report["base_pretraining"] = base_pretraining(model, records)
    write_reports(report, Path(out) if out else RunDir(run_dir or ".").eval_dir)
    return report


def _check_base(lm, model, adapter, trained_on, log) -> None:
    """Fail on an adapter that does not fit the base before minutes go into measuring the
    base, and say so when the base is not the model the run trained on."""
    if Path(model).resolve() != Path(trained_on).resolve():
        log(f"note: the run trained on {trained_on}; the base evaluated here is {model}")
    if adapter is not None:
        checkpoints.use_adapter(lm, adapter)


def resolve(run_dir: str | Path | None, eval_overrides: dict) -> dict:
    """The run's config (or the defaults), with `eval_overrides` (None ignored) validated."""
    cfg = run_config(run_dir) if run_dir else load_config("train", None)
    given = {k: v for k, v in eval_overrides.items() if v is not None}
    cfg["eval"] = load_config("train", {"eval": {**cfg["eval"], **given}})["eval"]
    return cfg


def _measure(lm, tokenizer, adapter_dir, splits, records, cfg, log, name) -> dict:
    """Loss per split and answers to `records` with one adapter (or none) applied."""
    ecfg = cfg["eval"]
    checkpoints.use_adapter(lm, adapter_dir)
    log(f"evaluating {name} ...")
    losses = {s: example_losses(lm, ex, cfg["training"]["max_seq_length"])
              for s, ex in splits.items()}
    texts, seconds = answer(lm, tokenizer, [r["messages"][:-1] for r in records],
                            ecfg["max_tokens"], ecfg["temperature"],
                            ecfg["generation_batch_size"])
    return {"losses": losses, "answers": texts, "seconds": seconds}


def _splits(data: Path, tokenizer, mask_prompt: bool) -> dict:
    splits = {s: load_split(data / f"{s}.jsonl", tokenizer, mask_prompt)
              for s in SPLITS if (data / f"{s}.jsonl").is_file()}
    if not splits:
        raise FarolError(f"No valid.jsonl or test.jsonl in {data}", hint="run `invoke prepare`")
    return splits


def held_out_records(data: Path, n: int, name: str = "test.jsonl") -> list[dict]:
    """The first `n` records of test.jsonl (or another split file: `name`; all for -1), each
    with id, category and messages. A plain-text record (an answer with no question) has
    nothing to ask, so it is left out here; the test loss still counts it."""
    path = data / name
    if not path.is_file() or n == 0:
        return []
    chats = read_messages(path)  # checks every record is a well-formed chat
    rows = [r for _, r in read_jsonl(path)]
    records = [{"id": str(r.get("source") or f"{name}:{i + 1}"),
                "category": str(r.get("category") or "uncategorised"), "messages": chat}
               for i, (r, chat) in enumerate(zip(rows, chats, strict=True))
               if any(m["role"] == "user" for m in chat)]
    return records if n < 0 else records[:n]


def train_records(data: Path, n: int, seed: int) -> list[dict]:
    """`n` train-split questions (all for -1), drawn with `seed`, in held_out_records' form:
    the questions the adapter was shown, to measure what it learned of them."""
    path = data / "train.jsonl"
    if not path.is_file() or n == 0:
        return []
    records = held_out_records(path.parent, -1, path.name)
    if 0 <= n < len(records):
        picked = sorted(random.Random(seed).sample(range(len(records)), n))
        records = [records[i] for i in picked]
    return records


def base_pretraining(model: str | Path, held_out: list[dict]) -> dict | None:
    """What the base model was pre-trained on (its pretraining.json), and how many of the
    held-out answers were among those documents; None when the model records nothing."""
    path = Path(model) / PRETRAINING_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    seen = set(record.get("document_sha256", []))
    leaked = sum(text_digest(r["messages"][-1]["content"]) in seen for r in held_out)
    return {"source": record["source"], "documents": record["documents"],
            "tokens": record["tokens"], "final_loss": record["losses"][-1],
            "held_out_answers_seen": leaked}


def _curve(lm, run_dir, data, tokenizer, splits, cfg, log) -> dict | None:
    ecfg = cfg["eval"]
    if not ecfg["checkpoints"] or "valid" not in splits or not (data / "train.jsonl").is_file():
        return None
    train = load_split(data / "train.jsonl", tokenizer, cfg["training"]["mask_prompt"])
    sample = checkpoints.train_sample(train, len(splits["valid"]), ecfg["seed"])
    return checkpoints.curve(lm, run_dir, sample, splits["valid"], ecfg["batch_size"],
                             cfg["training"]["max_seq_length"], log)


def build_report(model, adapter, run_dir, mask_prompt, ecfg, measured, records,
                 curve, train: list[dict] | None = None) -> dict:
    """The report.json object from the measured losses, answers (to `records`, then to the
    train-split questions `train`) and checkpoint curve."""
    scored = [_question(r, {n: m["answers"][i] for n, m in measured.items()},
                        ecfg["accent_folding"]) for i, r in enumerate(records + (train or []))]
    questions, shown = scored[:len(records)], scored[len(records):]
    boot = (ecfg["bootstrap_resamples"], ecfg["seed"], ecfg["confidence"])
    return {
        "model": str(model),
        "adapter": str(adapter) if adapter else None,
        "run": str(run_dir) if run_dir else None,
        "loss_tokens": "answer tokens only" if mask_prompt else "all tokens",
        "settings": {k: ecfg[k] for k in ("questions", "train_questions", "max_tokens",
                                          "temperature", "accent_folding",
                                          "bootstrap_resamples", "confidence", "seed",
                                          "samples")},
        "splits": _split_losses(measured, boot),
        "generation": {"questions": len(questions),
                       "seconds": {n: m["seconds"] for n, m in measured.items()},
                       "summary": _summary(questions, *boot),
                       "by_category": _by_category(questions, boot)},
        "questions": questions,
        "train_split": {"questions": len(shown), "summary": _summary(shown, *boot),
                        "answers": shown},
        "checkpoints": curve,
    }


def _split_losses(measured: dict, boot: tuple) -> dict:
    out = {}
    for split in measured["base"]["losses"]:
        per_model = {n: m["losses"][split] for n, m in measured.items()}
        ci = compare_losses(per_model, *boot)
        out[split] = {n: {**split_loss(pm), "low": ci[n]["low"], "high": ci[n]["high"]}
                      for n, pm in per_model.items()}
        out[split] |= {"gain": ci["gain"]} if "gain" in ci else {}
    return out


def _question(record: dict, answers: dict, accent_folding: bool) -> dict:
    messages = record["messages"]
    reference = messages[-1]["content"]
    question = messages[-2]["content"] if len(messages) > 1 else ""
    return {"id": record["id"], "category": record["category"], "question": question,
            "reference": reference, "answers": answers,
            "scores": {n: score(a, reference, accent_folding) for n, a in answers.items()}}


def _summary(questions: list[dict], resamples: int, seed: int, confidence: float) -> dict:
    if not questions:
        return {}
    names = questions[0]["scores"].keys()
    return compare({n: [q["scores"][n] for q in questions] for n in names},
                   resamples, seed, confidence)


def _by_category(questions: list[dict], boot: tuple) -> dict:
    groups = defaultdict(list)
    for q in questions:
        groups[q["category"]].append(q)
    return {cat: {"questions": len(qs), "summary": _summary(qs, *boot)}
            for cat, qs in sorted(groups.items())}
