"""Farol's benchmark harness: generation workloads, results files, compare, plot, upgrade guard.

The benchmarks themselves are pytest-benchmark tests in `benchmarks/`; this package holds the
logic they and the Invoke tasks share.
"""

# Before any of this package's modules import mlx: farol_core loads a system BLAS (blas.py).
import farol_core  # noqa: F401
