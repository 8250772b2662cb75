"""Farol inference bridge: a JSON Lines server on stdin/stdout and the one-shot farol-ask."""

from farol_bridge.ask import ask
from farol_bridge.server import Bridge, serve

__all__ = ["Bridge", "ask", "serve"]
