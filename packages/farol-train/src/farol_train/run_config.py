"""The run config: resolution, the names other trainers use, and what resuming must match."""

import re
from pathlib import Path

from farol_core.config import ConfigError, load_config, merge
from farol_core.errors import FarolError

# Settings that must match for a checkpoint to be resumed (the rest may change between runs).
RESUME_KEYS = {"model": None, "data": None, "seed": None, "lora": None, "template": None,
               "training": ["batch_size", "max_seq_length", "mask_prompt", "pack",
                            "grad_accumulation_steps", "learning_rate", "warmup_steps"]}
# Names that configs carried over from PEFT or Hugging Face's Trainer use, and Farol's key.
FOREIGN_KEYS = {"r": "lora.rank", "lora_rank": "lora.rank", "lora_alpha": "lora.alpha",
                "lora_dropout": "lora.dropout", "target_modules": "lora.keys",
                "num_epochs": "training.epochs", "num_train_epochs": "training.epochs",
                "gradient_accumulation_steps": "training.grad_accumulation_steps",
                "gradient_checkpointing": "training.grad_checkpoint",
                # mlx-lm's own lora config file, and the keys old scripts passed to its calls
                "lora_parameters": "lora (rank, scale, dropout, keys)",
                "num_layers": "lora.num_layers", "lora_layers": "lora.num_layers",
                "max_length": "training.max_seq_length", "max_seq_len": "training.max_seq_length",
                "per_device_train_batch_size": "training.batch_size",
                "quantization": "a 4-bit base from `invoke quantize`",
                "q_bits": "a 4-bit base from `invoke quantize`",
                "group_size": "a 4-bit base from `invoke quantize`",
                "bias": "nothing (LoRA layers have no bias term)",
                "max_grad_norm": "training.max_grad_norm",
                "gradient_accumulation": "training.grad_accumulation_steps",
                # mlx-lm's flat training keys: the same names, under training
                **{k: f"training.{k}" for k in (
                    "batch_size", "iters", "learning_rate", "steps_per_eval", "steps_per_report",
                    "save_every", "max_seq_length", "val_batches", "grad_checkpoint",
                    "mask_prompt", "grad_accumulation_steps")}}


def resolve(config=None, iters: int | None = None, log=None, **overrides) -> dict:
    """The validated run config: file or dict, then `overrides` (nested dicts merge), then
    `iters`, the override asked for most often. PEFT's lora.alpha becomes lora.scale before
    validation, so the config checked is the one saved; `log` gets the note saying so."""
    def prepare(data: dict) -> None:
        note = convert_alpha(data)
        if note and log:
            log(note)
    try:
        return load_config("train", config, merge(overrides, {"training": {"iters": iters}}),
                           prepare=prepare)
    except ConfigError as e:
        e.hint = e.hint or _rename_hint(e.problems)
        raise


def _rename_hint(problems: list[str]) -> str | None:
    """Farol's name for each unknown key that another trainer's config would use."""
    unknown = [name for p in problems if "unexpected" in p
               for name in re.findall(r"'([^']+)'", p.split("(", 1)[-1])]
    renames = [f"{k} -> {FOREIGN_KEYS[k]}" for k in unknown if k in FOREIGN_KEYS]
    return f"Farol's names for these keys: {'; '.join(renames)}" if renames else None


def convert_alpha(cfg: dict) -> str | None:
    """Turn PEFT's `lora.alpha` into mlx-lm's `lora.scale` (alpha / rank); returns the note.
    Values of the wrong type are left in place for validation to name."""
    lora = cfg.get("lora")
    if not isinstance(lora, dict) or not all(_positive(lora.get(k)) for k in ("rank", "scale")):
        return None
    if not _positive(lora.get("alpha")):
        return None if lora.get("alpha") is not None else lora.pop("alpha", None)
    alpha = lora.pop("alpha")
    replaced, cfg["lora"]["scale"] = cfg["lora"]["scale"], alpha / cfg["lora"]["rank"]
    # Name the scale it replaces: the schema's default, or one the user also wrote.
    return (f"note: lora.alpha {alpha} with rank {cfg['lora']['rank']} is "
            f"lora.scale {cfg['lora']['scale']:g} in mlx-lm's terms; it replaces "
            f"lora.scale {replaced:g}")


def _positive(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0



def _pick(value, keys: list[str] | None):
    """The part of a config section that resuming depends on."""
    return value if keys is None else {k: value[k] for k in keys}


def _changes(name: str, saved, now) -> list[str]:
    """Each setting that differs, as `name: now X, checkpoints Y`, sections key by key."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [c for k in sorted(saved.keys() | now.keys())
                for c in _changes(f"{name}.{k}", saved.get(k), now.get(k))]
    return [] if saved == now else [f"{name} (now {now!r}, checkpoints {saved!r})"]



def check_compatible(cfg: dict, saved_path: Path, log) -> None:
    """Refuse to resume checkpoints made under other RESUME_KEYS settings than `cfg`'s (the
    run's config.json at `saved_path`), and note a changed training.iters."""
    saved = load_config("train", saved_path) if saved_path.is_file() else cfg
    changed = [c for key, sub in RESUME_KEYS.items()
               for c in _changes(key, _pick(saved[key], sub), _pick(cfg[key], sub))]
    if changed:
        raise FarolError(
            f"run {cfg['name']} has checkpoints made with a different "
            f"{'; '.join(changed)}",
            hint="use the run's config.json, pick another --run name, or pass --fresh "
                 "to start this run over")
    if saved["training"]["iters"] != cfg["training"]["iters"]:  # the schedule spans iters
        log(f"note: training.iters is {cfg['training']['iters']}, the checkpoints' run had "
            f"{saved['training']['iters']}: the learning rate from here follows the "
            f"schedule over {cfg['training']['iters']} steps")


def schedule_warnings(tcfg: dict) -> list[str]:
    """What in the `training` section makes the schedule or the last steps do nothing."""
    out = []
    if tcfg["warmup_steps"] >= tcfg["iters"]:  # the schedule would only ever climb
        out.append(f"warning: warmup_steps {tcfg['warmup_steps']} is not shorter than the run "
                   f"({tcfg['iters']} steps): the learning rate never reaches "
                   f"training.learning_rate {tcfg['learning_rate']:g} and never decays")
    left = tcfg["iters"] % tcfg["grad_accumulation_steps"]
    if left:  # their gradient waits for an update that never comes
        out.append(f"warning: iters {tcfg['iters']} is not a multiple of "
                   f"grad_accumulation_steps {tcfg['grad_accumulation_steps']}: the last "
                   f"{left} step(s) train nothing")
    return out


def check_same_data(state: dict, prints: dict, steps_per_epoch: int) -> None:
    """Refuse to resume checkpoint `state` on data that changed since it was saved."""
    saved = state.get("data_fingerprint", {})  # absent from checkpoints of older versions
    changed = [s for s in saved if saved[s] != prints[s]]
    if changed or state["data"]["batches"] != steps_per_epoch:
        raise FarolError(f"the {' and '.join(changed) or 'train'} data changed since "
                         f"checkpoint step-{state['step']:07d} was saved (the .jsonl "
                         "content or the model's tokenizer); nothing was changed",
                         hint="pass --fresh to start the run over on the new data, or "
                              "put the old data back to resume")
