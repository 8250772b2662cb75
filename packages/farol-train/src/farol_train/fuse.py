"""Merge a trained adapter into its base model, and export the result as GGUF, through mlx-lm."""

import json
from pathlib import Path

from farol_core.errors import FarolError
from farol_core.io import staged_dir
from farol_core.model import check_adapter_dir, check_model_dir, load_model
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.utils import dequantize_model, save

from farol_train.gguf_export import TYPES, modelfile, write_gguf

# Not mixtral: mlx-lm's GGUF writer names its stacked experts (switch_mlp) as llama.cpp does not.
GGUF_ARCHITECTURES = ("llama", "mistral")


def fuse(model: str | Path, adapter: str | Path, out: str | Path, dequantize: bool = False,
         gguf: str | None = None, force: bool = False, gguf_type: str = "f16") -> Path:
    """Write base + adapter as one MLX model folder `out`; with `gguf`, also `out/<gguf>` in
    `gguf_type` (f16, q8_0 or q4_0) and an Ollama `out/Modelfile` for it.

    The GGUF is quantized from float weights, so exporting it dequantizes the model first.
    `out` appears whole or not at all, and with `force` replaces the old folder entirely.
    """
    out, adapter = Path(out), Path(adapter)
    if gguf and gguf_type not in TYPES:
        raise FarolError(f"--gguf-type must be one of {', '.join(TYPES)}, not {gguf_type!r}")
    _check_inputs(Path(model), adapter, out, gguf, force)
    # A broken base, or an adapter trained on another model, is a one-line FarolError.
    net, tokenizer, config = load_model(model, adapter, return_config=True)
    fused = [(n, m.fuse(dequantize=dequantize or bool(gguf)))
             for n, m in net.named_modules() if hasattr(m, "fuse")]
    net.update_modules(tree_unflatten(fused))
    if dequantize or gguf:
        net = dequantize_model(net)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    with staged_dir(out, force) as target:
        save(target, str(model), net, tokenizer, config, donate_model=False)
        if gguf:
            export_gguf(target, net, config, target / gguf, gguf_type)
    return out


def _check_inputs(model: Path, adapter: Path, out: Path, gguf: str | None, force: bool) -> None:
    """Every refusal before the (slow) load, so a refused run has written nothing."""
    if out.exists() and not force:
        raise FarolError(f"{out} already exists", hint="pick another --out or pass --force")
    check_adapter_dir(adapter)
    check_model_dir(model)
    # --force replaces OUT whole: pointed at the base or the run, it would delete them.
    for name, source in (("model", model), ("adapter", adapter)):
        if out.resolve() == source.resolve() or out.resolve() in source.resolve().parents:
            raise FarolError(f"--out {out} would replace the {name} folder {source}",
                             hint="write the fused model to a new folder")
    model_type = json.loads((model / "config.json").read_text(encoding="utf-8")).get("model_type")
    if gguf and (Path(gguf).name != gguf or not gguf.endswith(".gguf")):
        raise FarolError(f"--gguf {gguf} must be a file name ending in .gguf; it is written "
                         "inside OUT", hint="--out FOLDER --gguf model.gguf")
    if gguf and model_type not in GGUF_ARCHITECTURES:
        raise FarolError(f"GGUF export supports {', '.join(GGUF_ARCHITECTURES)} models, "
                         f"not {model_type}", hint="use `farol-train fuse` for an MLX model")


def export_gguf(folder: Path, net, config: dict, path: Path, kind: str = "f16") -> Path:
    """Write `net` and `folder`'s tokenizer as GGUF `path` in `kind`, a Modelfile beside it."""
    if config.get("model_type") not in GGUF_ARCHITECTURES:
        raise FarolError(f"GGUF export supports {', '.join(GGUF_ARCHITECTURES)} models, "
                         f"not {config.get('model_type')}")
    write_gguf(folder, dict(tree_flatten(net.parameters())), config, path, kind)
    (path.parent / "Modelfile").write_text(modelfile(path.name, folder), encoding="utf-8")
    return path
