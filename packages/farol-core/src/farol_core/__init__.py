"""Farol's shared core: configs, the chat template, model loading and device facts."""

# First, before any farol module imports mlx: a system OpenBLAS for mlx's CPU matmuls (blas.py).
from farol_core.blas import use_system_blas

use_system_blas()

from farol_core.errors import FarolError  # noqa: E402

__all__ = ["FarolError"]
__version__ = "0.1.0"
