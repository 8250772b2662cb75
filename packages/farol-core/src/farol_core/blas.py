"""Which BLAS mlx multiplies matrices with on Linux, and a system OpenBLAS in place of its own.

mlx's Linux CPU wheel bundles netlib's reference BLAS, about 6 GFLOP/s on a 1024x1024 float32
matmul here. mlx's `cblas_*` calls are resolved by the dynamic linker, global scope first, so a
system OpenBLAS loaded with RTLD_GLOBAL before mlx's first import takes them over (12x faster
here, same results within float tolerance). `farol_core/__init__.py` calls `use_system_blas`;
`FAROL_BLAS=reference` keeps the bundled BLAS. Nothing here may fail: any error keeps it.
"""

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

ENV = "FAROL_BLAS"
# Debian/Ubuntu's libopenblas0-pthread (or -openmp, -serial) installs the first; Fedora the last.
SEARCH = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/x86_64-linux-gnu",
          "/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
FIX = "apt-get install libopenblas0-pthread"
_state = {"blas": "reference", "path": None, "why": "not tried"}


def find_openblas() -> str | None:
    """The path of a system OpenBLAS shared library, or None."""
    for folder in SEARCH:
        path = Path(folder) / "libopenblas.so.0"
        if path.exists():
            return str(path)
    return ctypes.util.find_library("openblas")


def use_system_blas() -> dict:
    """On Linux, before mlx is imported, load a system OpenBLAS for mlx to use; return
    `blas_in_use()`. Never raises."""
    try:
        _state.update(_load())
    except Exception as err:  # a broken library must never stop Farol: keep mlx's own BLAS
        _state.update(blas="reference", path=None, why=f"loading OpenBLAS failed: {err}")
    return blas_in_use()


def _load() -> dict:
    if not sys.platform.startswith("linux"):
        return {"blas": "platform", "path": None, "why": f"{sys.platform}: mlx's own BLAS"}
    if os.environ.get(ENV, "").lower() == "reference":
        return {"blas": "reference", "path": None, "why": f"{ENV}=reference"}
    if "mlx.core" in sys.modules and _state["blas"] != "openblas":
        return {"blas": "reference", "path": None, "why": "mlx was imported before farol_core"}
    path = find_openblas()
    if path is None:
        return {"blas": "reference", "path": None, "why": "no system OpenBLAS found"}
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return {"blas": "openblas", "path": path, "why": "loaded before mlx"}


def blas_in_use() -> dict:
    """{"blas": "openblas" | "reference" | "platform", "path": ..., "why": ...}: which BLAS
    mlx's CPU matmuls use in this process, and why."""
    return dict(_state)


def describe(state: dict | None = None) -> str:
    """One line for preflight: the BLAS in use (or in `state`) and why."""
    s = state or _state
    if s["blas"] == "openblas":
        return f"OpenBLAS ({s['path']})"
    if s["blas"] == "platform":
        return s["why"]
    return f"mlx's bundled reference BLAS ({s['why']})"
