"""Model and adapter loading on top of `mlx_lm.load`, with errors a user can act on."""

import json
from pathlib import Path

from mlx_lm import load
from mlx_lm.utils import load_adapters
from mlx_lm.utils import load_tokenizer as _mlx_load_tokenizer

from farol_core import template
from farol_core.errors import FarolError
from farol_core.rundir import ADAPTER_CONFIG, ADAPTER_FILE, RunDir

ADAPTER_FILES = (ADAPTER_FILE, ADAPTER_CONFIG)


def check_model_dir(path: str | Path) -> Path:
    """The model folder, or a FarolError saying what is missing and how to make it."""
    path = Path(path)
    if not path.is_dir():
        raise FarolError(
            f"Model not found: {path}",
            hint="check the path; `invoke tiny-model quantize` makes the embedded tiny model, "
                 "and `invoke quantize --model mistralai/Mistral-7B-v0.1 --out "
                 "models/mistral-7b-4bit` a 4-bit Mistral-7B",
        )
    if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
        raise FarolError(
            f"{path} is not a model folder (it needs config.json and *.safetensors)",
            hint="convert a Hugging Face model with `invoke quantize --model PATH`",
        )
    return path


def check_adapter_dir(path: str | Path) -> Path:
    """The adapter folder, or a FarolError naming the missing file."""
    path = Path(path)
    missing = [f for f in ADAPTER_FILES if not (path / f).is_file()]
    if missing:
        raise FarolError(
            f"No adapter at {path} (missing {', '.join(missing)})",
            hint="check the path: a run's folder (runs/NAME) or its best adapter "
                 "(runs/NAME/adapters); `invoke train` makes one",
        )
    _check_adapter_config(path / ADAPTER_CONFIG)
    return path


def _check_adapter_config(path: Path) -> None:
    # mlx-lm reads these keys as attributes, so a missing one would be an AttributeError there.
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FarolError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise FarolError(f"{path} must hold a JSON object")
    full = config.get("fine_tune_type") == "full"
    missing = [k for k in ("num_layers", "lora_parameters") if k not in config and not full]
    if missing:
        raise FarolError(f"{path} lacks {', '.join(missing)}: it is not an mlx-lm adapter",
                         hint="train one with `invoke train`")


def load_model(model_path: str | Path, adapter_path: str | Path | None = None,
               return_config: bool = False, template_choice: str | None = None):
    """(model, tokenizer), plus the model's config with `return_config`, via `mlx_lm.load`,
    with the chat template installed: `template_choice`, else the one the adapter's run trained
    with, else Farol's Mistral layout. The adapter is applied in a second step, so an error
    names the folder at fault."""
    model_path = check_model_dir(model_path)
    if adapter_path is not None:
        adapter_path = check_adapter_dir(adapter_path)
    try:
        model, tokenizer, *config = load(str(model_path), return_config=return_config)
    # RuntimeError: mlx's safetensors reader on a truncated or corrupt weights file.
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as e:
        raise FarolError(f"Could not load {model_path}: {e}") from None
    if adapter_path is not None:
        apply_adapter(model, adapter_path, model_path)
    template.install(tokenizer, template_choice or _recorded(adapter_path, "template")
                     or "mistral")
    return (model, tokenizer, *config)


def apply_adapter(model, adapter_path: str | Path, model_path: str | Path | None = None) -> None:
    """Load the LoRA adapter at `adapter_path` into `model` (the base at `model_path`) and put it
    in eval mode; an adapter trained on another model is a one-line FarolError naming the model
    it was trained on."""
    try:
        load_adapters(model, str(adapter_path))
    except ValueError as e:
        if "incompatible tensors" not in str(e):
            raise FarolError(f"Could not load the adapter {adapter_path}: {e}") from None
        lines = str(e).splitlines()  # mlx-lm lists every tensor; one is enough
        first = lines[1].strip() if len(lines) > 1 else lines[0]
        base = f"the model {model_path}" if model_path is not None else "this base model"
        raise FarolError(f"The adapter {adapter_path} does not fit {base} ({first})",
                         hint=_trained_on(Path(adapter_path))) from None
    except (RuntimeError, OSError) as e:  # a truncated or unreadable adapters.safetensors
        raise FarolError(f"Could not load the adapter {adapter_path}: {e}") from None
    model.eval()


def _trained_on(adapter_path: Path) -> str:
    model = recorded_base(adapter_path)
    if model:
        return f"it was trained on {model}; pass that model with it"
    return "pass the base model the adapter was trained on"


def recorded_base(adapter_path: str | Path) -> str | None:
    """The base model a Farol run's adapter was trained on, from the run's config.json beside
    the adapter (runs/<name>) or above it (runs/<name>/adapters, the best one); None if absent."""
    return _recorded(adapter_path, "model")


def _recorded(adapter_path: str | Path | None, key: str) -> str | None:
    """`key` of the run config beside the adapter (runs/<name>) or above it (adapters/)."""
    if adapter_path is None:
        return None
    for run in (RunDir(adapter_path), RunDir(Path(adapter_path).parent)):
        config = run.read_config()
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, str) and value:
            return value
    return None


def load_tokenizer(model_path: str | Path, template_choice: str = "mistral"):
    """The tokenizer alone, via mlx-lm (no weights loaded), with the chosen chat template
    installed (see `template.install`)."""
    path = Path(model_path)
    if not path.is_dir():
        raise FarolError(f"Tokenizer folder not found: {path}",
                         hint="pass the base model's folder, e.g. models/tiny-mistral")
    try:
        tokenizer = _mlx_load_tokenizer(path)
    except (ValueError, KeyError, OSError) as e:
        raise FarolError(f"Could not load a tokenizer from {path}: {e}") from None
    template.install(tokenizer, template_choice)
    return tokenizer


def model_facts(model_path: str | Path) -> dict:
    """Architecture, quantization and size on disk of a model folder, from its files alone."""
    path = check_model_dir(model_path)
    config = json.loads((path / "config.json").read_text())
    quant = config.get("quantization") or config.get("quantization_config") or {}
    return {
        "path": str(path),
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "vocab_size": config.get("vocab_size"),
        "quantization": {"bits": quant.get("bits"), "group_size": quant.get("group_size")}
        if quant
        else None,
        "size_bytes": sum(f.stat().st_size for f in path.glob("*.safetensors")),
    }
