"""Quantize a Hugging Face layout model into MLX format through mlx-lm's `convert`."""

import shutil
from pathlib import Path

from farol_core.config import schema_default
from farol_core.errors import FarolError
from farol_core.io import staged_dir
from farol_core.model import check_model_dir
from farol_core.template import CHAT_TEMPLATE, CHOICES
from farol_core.tiny import PRETRAINING_FILE
from mlx_lm import convert

# What MLX's quantize supports. mlx-lm's convert reads bits 0 as "the default" and skips the
# layers a group size does not divide, so a value outside these would still write a model.
BITS = (2, 3, 4, 5, 6, 8)
GROUP_SIZES = (32, 64, 128)


def quantize(model: str | Path, out: str | Path, bits: int = 4, group_size: int = 64,
             force: bool = False, template: str | None = None) -> Path:
    """Write a `bits`-bit copy of `model` (a folder, or a Hugging Face repo id) to `out`.

    The output appears whole or not at all. The chat template a run will train with is written
    beside it (`template`, as in the run config: Farol's Mistral layout by default, or with
    "model" the model's own, kept as convert copied it), so that mlx-lm's own tools prompt the
    model the way Farol trained it.
    A pretraining.json (what the embedded model was pre-trained on) travels with the
    weights.
    """
    _check_settings(bits, group_size)
    template = template or schema_default("train", "template")
    if template not in CHOICES:
        raise FarolError(f"template must be one of {', '.join(CHOICES)}, got {template!r}")
    source = str(check_model_dir(model)) if _is_local(model) else str(model)
    with staged_dir(out, force) as target:
        _convert(source, target, bits, group_size)
        if template == "mistral":
            (target / "chat_template.jinja").write_text(CHAT_TEMPLATE)
        record = Path(source) / PRETRAINING_FILE
        if record.is_file():
            shutil.copyfile(record, target / PRETRAINING_FILE)
    return Path(out)


def _check_settings(bits: int, group_size: int) -> None:
    problems = [f"{name} must be {', '.join(map(str, allowed[:-1]))} or {allowed[-1]}, got {value}"
                for name, value, allowed in (("bits", bits, BITS),
                                             ("group size", group_size, GROUP_SIZES))
                if value not in allowed]
    if problems:
        raise FarolError("; ".join(problems))


def _is_local(model: str | Path) -> bool:
    # "org/name" with no such folder here is a Hub id; anything else is a local path, and so is
    # "models/typo" when models/ is a folder here: a mistyped path, not a download.
    text = str(model)
    return (Path(text).exists() or text.startswith((".", "/", "~")) or text.count("/") != 1
            or Path(text).parent.is_dir())


def _convert(source: str, target: Path, bits: int, group_size: int) -> None:
    try:
        convert(source, str(target), quantize=True, q_bits=bits, q_group_size=group_size)
    except ValueError as e:
        raise FarolError(f"Could not quantize {source}: {e}",
                         hint="group_size must divide the model's hidden size") from None
    except OSError as e:
        raise FarolError(f"Could not read or download {source}: {e}") from None
