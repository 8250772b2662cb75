"""Farol's benchmark harness: generation workloads, results files, compare, plot, upgrade guard.

The benchmarks themselves are pytest-benchmark tests in `benchmarks/`; this package holds the
logic they and the Invoke tasks share.
"""
