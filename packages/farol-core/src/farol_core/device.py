"""What this machine offers MLX: the device, the backend and the memory."""

import platform
import sys
from importlib import metadata

import mlx.core as mx
import psutil


def backend() -> str:
    """"metal", "cuda" or "cpu": where MLX runs its default device."""
    if mx.default_device() == mx.cpu:
        return "cpu"
    if mx.metal.is_available():
        return "metal"
    return "cuda"


def versions() -> dict:
    """Versions of Python, mlx and mlx-lm, as installed."""
    return {
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_lm": metadata.version("mlx-lm"),
        "platform": f"{sys.platform}-{platform.machine()}",
    }


def memory() -> dict:
    """RAM total and available in bytes, plus the device's own figures where MLX gives them."""
    vm = psutil.virtual_memory()
    facts = {"ram_total": vm.total, "ram_available": vm.available}
    info = _device_info()
    for key in ("memory_size", "max_recommended_working_set_size"):
        if key in info:
            facts[f"device_{key}"] = int(info[key])
    return facts


def facts() -> dict:
    """Everything above in one dict, for reports and the bridge's `info`."""
    info = _device_info()
    return {
        "device": str(mx.default_device()),
        "backend": backend(),
        "device_name": info.get("device_name") or info.get("architecture") or platform.processor(),
        **versions(),
        **memory(),
    }


def _device_info() -> dict:
    try:
        return dict(mx.device_info())
    except (AttributeError, RuntimeError):
        return {}
