"""Merge a trained adapter into its base model, and export the result as GGUF, through mlx-lm."""

from pathlib import Path

from farol_core.errors import FarolError
from mlx.utils import tree_flatten, tree_unflatten
from mlx_lm.gguf import convert_to_gguf
from mlx_lm.utils import dequantize_model, load, save

GGUF_ARCHITECTURES = ("llama", "mistral", "mixtral")


def fuse(model: str | Path, adapter: str | Path, out: str | Path, dequantize: bool = False,
         gguf: str | None = None, force: bool = False) -> Path:
    """Write base + adapter as one MLX model folder `out`; with `gguf`, also `out/<gguf>`.

    GGUF holds float weights only, so exporting it dequantizes the model first.
    """
    out, adapter = Path(out), Path(adapter)
    if out.exists() and not force:
        raise FarolError(f"{out} already exists", hint="pick another --out or pass --force")
    if not (adapter / "adapters.safetensors").is_file():
        raise FarolError(f"no adapter in {adapter}",
                         hint="point --adapter at runs/<name> (or runs/<name>/adapters)")
    if not (Path(model) / "config.json").is_file():
        raise FarolError(f"Model not found: {model}")
    net, tokenizer, config = load(str(model), adapter_path=str(adapter), return_config=True)
    fused = [(n, m.fuse(dequantize=dequantize or bool(gguf)))
             for n, m in net.named_modules() if hasattr(m, "fuse")]
    net.update_modules(tree_unflatten(fused))
    if dequantize or gguf:
        net = dequantize_model(net)
        config.pop("quantization", None)
        config.pop("quantization_config", None)
    save(out, str(model), net, tokenizer, config, donate_model=False)
    if gguf:
        export_gguf(out, net, config, out / gguf)
    return out


def export_gguf(folder: Path, net, config: dict, path: Path) -> Path:
    """Write `net` as a float16 GGUF file with its tokenizer, via mlx-lm's converter."""
    if config.get("model_type") not in GGUF_ARCHITECTURES:
        raise FarolError(f"GGUF export supports {', '.join(GGUF_ARCHITECTURES)} models, "
                         f"not {config.get('model_type')}")
    convert_to_gguf(folder, dict(tree_flatten(net.parameters())), config, str(path))
    return path
