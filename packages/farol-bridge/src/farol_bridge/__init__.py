"""Farol inference bridge: a JSON Lines server on stdin/stdout and the one-shot farol-ask."""

# Before any of this package's modules import mlx: farol_core loads a system BLAS (blas.py).
import farol_core  # noqa: F401

from farol_bridge.ask import ask
from farol_bridge.server import Bridge, serve

__all__ = ["Bridge", "ask", "serve"]
