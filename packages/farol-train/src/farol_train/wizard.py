"""The configure wizard's logic, free of any prompt: what to ask, what to advise, what to warn.

`farol-train configure` (and a notebook form) asks each of `QUESTIONS` with the default the run
schema gives and its one-line reason, takes the max_seq_length advice of the prepared data
(`data_advice`), explains when two profiles come out the same (`why_profiles_coincide`), warns
on a plan of many passes over a small split (`plan_warning`), and ends with `train_command`.
"""

import json
import math
from pathlib import Path

import yaml
from farol_core.io import atomic_write_text

# (section, key, why): what the custom mode asks after the memory settings, in order. The
# defaults come from the run schema, through `farol_train.loop.resolve`.
QUESTIONS = [
    ("training", "epochs", "passes over the train split; empty trains `iters` steps instead"),
    ("training", "iters", "optimizer steps when epochs is empty"),
    ("training", "learning_rate", "1e-5 is gentle for LoRA on a 7B model; raise it to learn "
                                  "faster on little data, at the risk of forgetting"),
    ("training", "warmup_steps", "steps that ramp the learning rate up from 0, steadying the "
                                 "first updates"),
    ("lora", "rank", "size of each adapter: 8 is enough for style and facts of one domain"),
    ("lora", "scale", "multiplier of the adapter's output (PEFT's alpha / rank)"),
    ("lora", "dropout", "share of adapter inputs zeroed while training; 0.05-0.1 helps on "
                        "small data"),
]
# More passes than this over the train split usually memorises it.
MANY_EPOCHS = 10
# A configured max_seq_length this many times what the data needs costs memory for nothing.
FAR_ABOVE = 2


def data_advice(data: str | Path) -> dict | None:
    """What the prepared data's report.json says about lengths: `recommended_max_seq_length`,
    `p95` and `limit` (tokens); None when there is no report or it holds no token counts."""
    path = Path(data) / "report.json"
    try:
        tokens = json.loads(path.read_text(encoding="utf-8")).get("tokens")
    except (OSError, ValueError):
        return None
    if not tokens or "recommended_max_seq_length" not in tokens:
        return None
    return {k: tokens.get(k) for k in ("recommended_max_seq_length", "p95", "limit")}


def advised_max_seq_length(cfg: dict) -> int:
    """The max_seq_length to plan with: the data's recommendation when report.json gives one,
    else the config's own."""
    advice = data_advice(cfg["data"])
    return advice["recommended_max_seq_length"] if advice else cfg["training"]["max_seq_length"]


def seq_length_warning(cfg: dict) -> str | None:
    """A line when the config's max_seq_length is FAR_ABOVE times what the data needs or more."""
    advice, asked = data_advice(cfg["data"]), cfg["training"]["max_seq_length"]
    if advice is None or asked < FAR_ABOVE * advice["recommended_max_seq_length"]:
        return None
    return (f"max_seq_length {asked} is far above what the data needs: prepare recommends "
            f"{advice['recommended_max_seq_length']} (95% of examples within {advice['p95']} "
            "tokens); the extra length costs memory and time for padding")


def why_profiles_coincide(found: dict) -> list[str]:
    """A line for each pair of profiles that came out with the same settings, saying why."""
    names, lines = [n for n, p in found.items() if p], []
    for a, b in zip(names, names[1:], strict=False):
        if _settings(found[a]) == _settings(found[b]):
            lines.append(f"{a} and {b} are the same: memory allows more than the data needs "
                         "(the longest rows it needs, the deepest adapters preferred and the "
                         f"whole batch already fit in {a}'s share)")
    return lines


def _settings(p: dict) -> dict:
    return {k: v for k, v in p.items() if k != "estimated_gb"}


def plan_warning(cfg: dict, train_count: int | None) -> str | None:
    """A line when the plan makes more than MANY_EPOCHS passes over the train split."""
    t = cfg["training"]
    if not train_count:
        return None
    per_epoch = math.ceil(train_count / t["batch_size"])
    epochs = t["epochs"] or t["iters"] / per_epoch
    if epochs <= MANY_EPOCHS:
        return None
    steps = t["epochs"] * per_epoch if t["epochs"] else t["iters"]
    return (f"{steps} steps of batch {t['batch_size']} over {train_count} train examples is "
            f"{epochs:.0f} passes: the adapter will learn the examples by heart; set epochs to "
            f"3-{MANY_EPOCHS} or add data")


def train_command(path: str | Path) -> str:
    """The line that trains the written config."""
    return f"invoke train --config {path}"


def write_config(cfg: dict, path: str | Path) -> Path:
    """Write a run config as YAML, atomically: the file `farol-train configure` and the
    notebook's wizard both write."""
    atomic_write_text(Path(path), yaml.safe_dump(cfg, sort_keys=False))
    return Path(path)
