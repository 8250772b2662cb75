"""A pytest plugin for the harness tests: test_decode breaks right after its timed rounds.

FAROL_BREAK_DECODE=fail makes its check fail; =interrupt stands for Ctrl+C at that moment.
"""

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    outcome = yield
    how = os.environ.get("FAROL_BREAK_DECODE")
    if pyfuncitem.name == "test_decode" and how:
        error = KeyboardInterrupt() if how == "interrupt" else AssertionError("decode is wrong")
        outcome.force_exception(error)
