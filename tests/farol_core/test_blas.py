"""farol_core loads a system OpenBLAS for mlx before mlx is imported; preflight shows which BLAS.

Each check runs in a fresh interpreter, as users' processes start: the load must happen when
`farol_core` (or any farol package) is imported first, and mlx's cblas symbols must then come
from OpenBLAS. No timings: the loaded library and the symbol's owner are what is checked.
"""

import json
import os
import subprocess
import sys

import pytest
from farol_core.blas import find_openblas
from farol_train.preflight import check_blas

# Which library the dynamic linker gives a library loaded now (as mlx's own) for cblas_sgemm.
PROBE = """
import ctypes, json, sys
import FIRST
import mlx.core as mx
from farol_core.blas import blas_in_use
class Info(ctypes.Structure):
    _fields_ = [("fname", ctypes.c_char_p), ("fbase", ctypes.c_void_p),
                ("sname", ctypes.c_char_p), ("saddr", ctypes.c_void_p)]
libc = ctypes.CDLL(None)
addr = ctypes.cast(libc.cblas_sgemm, ctypes.c_void_p).value if hasattr(libc, "cblas_sgemm") \\
    else None
info = Info()
owner = ctypes.CDLL("libc.so.6").dladdr(ctypes.c_void_p(addr), ctypes.byref(info)) and \\
    info.fname.decode() if addr else None
mx.eval(mx.ones((64, 64)) @ mx.ones((64, 64)))
maps = open("/proc/self/maps").read()
print(json.dumps({"state": blas_in_use(), "owner": owner,
                  "mapped": [line.split()[-1] for line in maps.splitlines() if "blas" in line]}))
"""

needs_openblas = pytest.mark.skipif(
    not sys.platform.startswith("linux") or find_openblas() is None,
    reason="no system OpenBLAS (apt-get install libopenblas0-pthread)")


def probe(first: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.replace("FIRST", first)], capture_output=True,
                         text=True, check=True, env={**os.environ, **env})
    return json.loads(out.stdout)


@needs_openblas
@pytest.mark.parametrize("first", ["farol_core", "farol_train.cli", "farol_bridge.cli"])
def test_mlx_multiplies_with_the_system_openblas_when_a_farol_package_comes_first(first):
    got = probe(first, FAROL_BLAS="")
    real = os.path.realpath(find_openblas())
    assert got["state"]["blas"] == "openblas", got
    assert real in {os.path.realpath(p) for p in got["mapped"]}, got
    assert os.path.realpath(got["owner"]) == real, got  # mlx's cblas_sgemm resolves to it


@needs_openblas
def test_farol_blas_reference_keeps_mlx_s_own_blas():
    got = probe("farol_core", FAROL_BLAS="reference")
    assert got["state"] == {"blas": "reference", "path": None, "why": "FAROL_BLAS=reference"}
    assert not any("openblas" in p for p in got["mapped"]), got
    assert got["owner"] is None  # nothing global: mlx binds its bundled libblas


def test_preflight_warns_on_the_reference_blas_with_the_fix(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    slow = check_blas({"blas": "reference", "path": None, "why": "no system OpenBLAS found"})
    assert slow.status == "warn" and "apt-get install libopenblas0-pthread" in slow.fix
    assert "no system OpenBLAS found" in slow.detail
    fast = check_blas({"blas": "openblas", "path": "/usr/lib/libopenblas.so.0", "why": ""})
    assert fast.status == "pass" and "OpenBLAS (/usr/lib/libopenblas.so.0)" in fast.detail
