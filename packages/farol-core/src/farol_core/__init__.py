"""Farol's shared core: configs, the chat template, model loading and device facts."""

from farol_core.errors import FarolError

__all__ = ["FarolError"]
__version__ = "0.1.0"
