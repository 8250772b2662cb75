"""The MLX upgrade guard: try other mlx / mlx-lm versions in a throwaway venv, never the project's.

The throwaway venv gets the requested mlx and mlx-lm, every other dependency at the version
installed here (a pip constraints file from `pip freeze`), and the workspace packages with
`--no-deps` (their pins would refuse the new versions). It runs the API-compatibility tests
there, then the tiny benchmarks there and here, and compares them figure by figure.
"""

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from farol_core.errors import FarolError
from packaging.version import InvalidVersion, Version

from farol_bench import compare, results

# pip's words when no package index answers (refused, unresolvable, unreachable, timed out).
OFFLINE = ("NewConnectionError", "Failed to establish a new connection", "Name or service not",
           "Temporary failure in name resolution", "Network is unreachable", "ConnectTimeout",
           "Read timed out", "ProxyError")
MLX_DISTS = re.compile(r"^(mlx|mlx-lm|mlx-cpu|mlx-metal|mlx-cuda\S*)$", re.IGNORECASE)


@dataclass
class Outcome:
    """What the guard found, and its verdict: "safe to upgrade", "slower", "broken", or "could
    not install" (pip failed: no such version, or no package index reachable)."""

    verdict: str
    reasons: list[str] = field(default_factory=list)
    rows: list[compare.Row] = field(default_factory=list)
    labels: tuple[str, str] = ("here", "there")
    summary: str = ""  # regressions and noise in one sentence


def requirements(root: Path, mlx: str, mlx_lm: str) -> list[str]:
    """The workspace's dependencies and dev tools, with mlx and mlx-lm set to the versions asked."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + project["optional-dependencies"]["dev"]
    kept = [d for d in deps if not MLX_DISTS.match(_dist(d))]
    mlx_req = f"mlx[cpu]=={mlx}" if sys.platform == "linux" else f"mlx=={mlx}"
    return [mlx_req, f"mlx-lm=={mlx_lm}", *kept]


def constraints() -> str:
    """`pip freeze` of this environment without mlx, mlx-lm and the editable workspace."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    lines = [ln for ln in frozen.splitlines() if "==" in ln and not ln.startswith("-e")]
    return "\n".join(ln for ln in lines
                     if not MLX_DISTS.match(_dist(ln)) and not _dist(ln).startswith("farol"))


def make_venv(root: Path, venv: Path, mlx: str, mlx_lm: str, log: Callable) -> Path:
    """Create the throwaway venv and install into it; returns its python."""
    _run([sys.executable, "-m", "venv", str(venv)], "create the venv")
    python = venv / "bin" / "python"
    pins = venv / "constraints.txt"
    pins.write_text(constraints() + "\n")
    log(f"installing mlx {mlx}, mlx-lm {mlx_lm} and the pinned rest into {venv}")
    _pip(python, ["-c", str(pins), *requirements(root, mlx, mlx_lm)],
         f"mlx {mlx} / mlx-lm {mlx_lm}")
    _pip(python, ["--no-deps", "-e", str(root)], "the workspace packages")
    return python


def _pip(python: Path, args: list[str], what: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise CouldNotInstall(f"could not install {what}: {install_error(proc.stderr)}")


def install_error(stderr: str) -> str:
    """pip's failure in one line: no index reachable, or its own ERROR lines."""
    if any(marker in stderr for marker in OFFLINE):
        return "no package index reachable (offline?); pip's index settings: `pip config list`"
    errors = [ln.removeprefix("ERROR: ") for ln in stderr.splitlines() if ln.startswith("ERROR")]
    # pip lists every release it saw; the versions asked for and the newest few are enough.
    text = "; ".join(errors) or (stderr.strip().splitlines() or ["pip failed"])[-1]
    if "(from versions: none)" in text:
        # No release at all: the index did not answer, or holds no build for this platform.
        return f"no package index offered any release (offline?): {text.split('; ')[0]}"
    return re.sub(r"\(from versions: ([^)]{60,})\)",
                  lambda m: f"(newest: {', '.join(m[1].split(', ')[-5:])})", text)


def check_versions(mlx: str, mlx_lm: str) -> None:
    """Raise FarolError for a version that is not one, or for the versions installed here."""
    for name, v in (("mlx", mlx), ("mlx-lm", mlx_lm)):
        try:
            Version(str(v))
        except InvalidVersion:
            raise FarolError(f"--{name} {v!r} is not a version number",
                             hint="give an exact release, e.g. --mlx 0.33.0 "
                                  "(`pip index versions mlx` lists them)") from None
    here = [importlib.metadata.version(d) for d in ("mlx", "mlx-lm")]
    if [Version(str(mlx)), Version(str(mlx_lm))] == [Version(v) for v in here]:
        raise FarolError(f"mlx {here[0]} / mlx-lm {here[1]} are the versions installed here: "
                         "there is no upgrade to check", hint="name the versions to try")


def api_failures(root: Path, python: Path) -> list[str]:
    """The failing API-compatibility checks under `python` (empty when all pass)."""
    proc = subprocess.run([str(python), "-m", "pytest", "tests/test_mlx_api.py", "-q", "-rfE",
                           "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "1000"})  # untruncated messages
    if proc.returncode == 0:
        return []
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    return failed or [proc.stdout.strip()[-2000:] or proc.stderr.strip()[-2000:]]


def run_benchmarks(root: Path, python: Path, out: Path, tests: str, rounds: int) -> dict:
    """Run the tiny benchmarks under `python` for real, leaving out those marked slow (minutes
    each on a CPU, and run twice per side); returns their results document."""
    proc = subprocess.run(
        [str(python), "-m", "pytest", *tests.split(), "--benchmark-enable", "--shape", "tiny",
         "--bench-rounds", str(rounds), "--bench-results", str(out), "-q", "-m", "not slow",
         "-p", "no:cacheprovider"], cwd=root, capture_output=True, text=True)
    found = results.find(out)
    if proc.returncode != 0 or not found:
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise UpgradeBroken(f"the benchmarks failed under {python}:\n{tail}")
    return results.load(found[-1], results.load_schema(root / "benchmarks" /
                                                       "results.schema.json"))


class UpgradeBroken(Exception):
    """A step of the guard failed in the throwaway venv: the upgrade is broken."""


class CouldNotInstall(UpgradeBroken):
    """pip could not install the versions asked for: nothing is known about them yet."""


def check_upgrade(root: Path, mlx: str, mlx_lm: str, threshold: float = 0.10,
                  tests: str = "benchmarks", rounds: int = 3, keep: bool = False,
                  log: Callable = print, passes: int = 2) -> Outcome:
    """Install, test and benchmark mlx / mlx-lm versions in a throwaway venv; judge them.

    The benchmarks run `passes` times on each side, alternating here and there.
    """
    check_versions(mlx, mlx_lm)  # before minutes of installing
    if passes < 1 or rounds < 1:
        raise FarolError(f"passes and rounds must be at least 1, got {passes} and {rounds}")
    work = Path(tempfile.mkdtemp(prefix="farol-upgrade-"))
    try:
        with _sigterm_as_exit():
            return _check(root, work, mlx, mlx_lm, threshold, tests, rounds, log, passes)
    finally:
        if keep:
            log(f"kept the throwaway venv in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM (`timeout`, a cancelled CI job) raises SystemExit here, so the `finally` that
    removes the throwaway venv runs, as it does for Ctrl+C; without it a GB is left in /tmp."""
    if threading.current_thread() is not threading.main_thread():  # only it can set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check(root, work, mlx, mlx_lm, threshold, tests, rounds, log, passes) -> Outcome:
    try:
        python = make_venv(root, work / "venv", mlx, mlx_lm, log)
        log("API-compatibility tests there")
        failures = api_failures(root, python)
        if failures:
            return Outcome("broken", ["API-compatibility tests failed:", *failures])
        here, there = [], []
        for i in range(passes):
            log(f"tiny benchmarks, pass {i + 1} of {passes}: here, then there")
            here.append(_here(root, work / f"here{i}", tests, rounds))
            there.append(run_benchmarks(root, python, work / f"there{i}", tests, rounds))
    except CouldNotInstall as e:
        return Outcome("could not install", [str(e)])
    except UpgradeBroken as e:
        return Outcome("broken", [str(e)])
    return judge(results.merge(here), results.merge(there), threshold)


def _here(root: Path, out: Path, tests: str, rounds: int) -> dict:
    # Benchmarks failing in this environment say nothing about the new versions.
    try:
        return run_benchmarks(root, Path(sys.executable), out, tests, rounds)
    except UpgradeBroken as e:
        raise FarolError(f"{e}\n(this environment, not the upgrade)",
                         hint="fix the benchmarks here (`invoke bench`) before judging an "
                              "upgrade") from None


def judge(here: dict, there: dict, threshold: float) -> Outcome:
    """Slower when a figure there is worse than here past the threshold, else safe."""
    rows = compare.compare(here, there, threshold)
    labels = (_label(here), _label(there))
    summary = compare.verdict_line(rows, here, there, threshold)
    slow = compare.regressions(rows)
    if not slow:
        noisy = [r.key for r in rows if r.unsafe]
        note = [f"caution: too noisy to judge here: {', '.join(noisy)}"] if noisy else []
        return Outcome("safe to upgrade", note, rows, labels, summary)
    verdict = "slower"
    if all(r.unsafe for r in slow):
        verdict += " (unsafe: every slower figure is within its spread; rerun on a quiet machine)"
    reasons = [f"{r.key}: {r.worse:.0%} worse" + (" (noisy)" if r.unsafe else "") for r in slow]
    return Outcome(verdict, reasons, rows, labels, summary)


def _label(doc: dict) -> str:
    return f"mlx {doc['versions']['mlx']} / mlx-lm {doc['versions']['mlx_lm']}"


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise UpgradeBroken(f"could not {what}:\n{detail}")


def _dist(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement.strip(), maxsplit=1)[0]
