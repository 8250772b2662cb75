"""The run folder `runs/<name>/`: the one place that knows its layout.

farol-train writes it and farol-eval, the monitor, the charts, the bridge and the tasks read it;
all of them go through RunDir, so a file name or a check on a checkpoint lives here only.

    runs/<name>/
      config.json                 the resolved run config
      status.json                 loading | training | how the run ended, with pid and host
      metrics.jsonl, metrics.csv  one row per report
      steps.jsonl                 loss and tokens of every step
      adapters.safetensors, adapter_config.json   the final adapter
      adapters/                   the best adapter by validation loss, with best.json
      checkpoints/step-NNNNNNN/   resumable checkpoints, each with a manifest.json
      eval/                       report.json, .csv, .md and plots/
      summary.html                the run summary with its charts (farol-eval summary)
      train.log                   the output of a run a notebook started
"""

import functools
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from farol_core.config import load_schema
from farol_core.io import atomic_write_text, read_log, sha256_file, write_json

ADAPTER_FILE = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
OPTIMIZER_FILE = "optimizer.safetensors"
PENDING_FILE = "pending_grad.safetensors"
STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
BEST_DIR = "adapters"
BEST_FILE = "best.json"
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
STEPS_FILE = "steps.jsonl"
EVAL_DIR = "eval"
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.html"
TRAIN_LOG = "train.log"
STEP_DIR = re.compile(r"^step-(\d{7,})$")  # %07d: seven digits, more past step 9,999,999


@dataclass
class Checkpoint:
    """A verified checkpoint on disk and its trainer state."""

    path: Path
    state: dict

    @property
    def step(self) -> int:
        return self.state["step"]


@dataclass(frozen=True)
class RunDir:
    """The paths of one run folder, and what can be read from it."""

    path: Path

    def __init__(self, path: "str | Path | RunDir"):
        object.__setattr__(self, "path", Path(path.path if isinstance(path, RunDir) else path))

    @classmethod
    def of(cls, runs_dir: str | Path, name: str) -> "RunDir":
        """runs/<name>/ under `runs_dir`."""
        return cls(Path(runs_dir) / name)

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / CONFIG_FILE)
    status = property(lambda self: self.path / STATUS_FILE)
    metrics = property(lambda self: self.path / METRICS_FILE)
    metrics_csv = property(lambda self: self.path / METRICS_CSV)
    steps = property(lambda self: self.path / STEPS_FILE)
    adapter = property(lambda self: self.path / ADAPTER_FILE)
    best_dir = property(lambda self: self.path / BEST_DIR)
    best_file = property(lambda self: self.path / BEST_DIR / BEST_FILE)
    checkpoints_dir = property(lambda self: self.path / CHECKPOINTS)
    eval_dir = property(lambda self: self.path / EVAL_DIR)
    report = property(lambda self: self.path / EVAL_DIR / REPORT_FILE)
    plots = property(lambda self: self.path / EVAL_DIR / "plots")
    summary_html = property(lambda self: self.path / SUMMARY_FILE)
    train_log = property(lambda self: self.path / TRAIN_LOG)  # a notebook-started run's output
    logs = property(lambda self: (self.metrics, self.metrics_csv, self.steps))

    def checkpoint(self, step: int) -> Path:
        """checkpoints/step-NNNNNNN/ of `step`."""
        return self.checkpoints_dir / f"step-{step:07d}"

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders of the run, oldest first (temporary folders excluded)."""
        folder = self.checkpoints_dir
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name))

    def newest_name(self) -> str | None:
        """The newest checkpoint folder's name, verified or not."""
        found = self.checkpoints()
        return found[-1].name if found else None

    def good_checkpoints(self, warn=print) -> list[Checkpoint]:
        """Every checkpoint that passes `verify`, oldest first; each one that fails is
        skipped with a warning naming the problem."""
        return [c for c in (self._verified(f, warn) for f in self.checkpoints()) if c is not None]

    def latest(self, warn=print) -> Checkpoint | None:
        """The newest checkpoint that passes verification; broken newer ones are skipped with
        a warning naming the problem."""
        for folder in reversed(self.checkpoints()):
            found = self._verified(folder, warn)
            if found is not None:
                return found
        return None

    def _verified(self, folder: Path, warn) -> Checkpoint | None:
        problem = verify(folder)
        state, problem = (None, problem) if problem else read_state(folder)
        if problem is None:
            return Checkpoint(folder, state)
        warn(f"warning: skipping checkpoint {folder.name}: {problem}")
        return None

    def best(self) -> dict | None:
        """best.json of the best adapter ({"step", "val_loss"}), or None before one exists."""
        return _read_json(self.best_file)

    def previous_outputs(self) -> list[str]:
        """What `clear` would delete, in words."""
        out, found = [], self.checkpoints()
        if found:
            out.append(f"{len(found)} checkpoint(s) (newest {found[-1].name})")
        best = self.best()
        if best is not None:
            out.append(f"the best adapter ({BEST_DIR}/, step {best['step']}, "
                       f"val loss {best['val_loss']:.4f})")
        elif self.best_dir.exists():
            out.append(f"the best adapter folder ({BEST_DIR}/)")
        if self.metrics.is_file() or self.steps.is_file():
            out.append(f"the logs ({METRICS_FILE}, {METRICS_CSV}, {STEPS_FILE})")
        return out

    def clear(self) -> None:
        """Delete the checkpoints, the best adapter and the logs of an earlier attempt."""
        shutil.rmtree(self.checkpoints_dir, ignore_errors=True)
        shutil.rmtree(self.best_dir, ignore_errors=True)
        for path in self.logs:
            path.unlink(missing_ok=True)

    def read_metrics(self) -> list[dict]:
        """The complete rows of metrics.jsonl ([] before the first report).

        A line still being written has no newline yet, so it is left for the next read.
        """
        return read_log(self.metrics)

    def write_status(self, state: str, step: int | None) -> None:
        """status.json: training, or how the run ended, for the monitor. The pid and host let
        it tell a live run from one whose process was killed."""
        write_json(self.status, {"state": state, "step": step, "pid": os.getpid(),
                                 "host": socket.gethostname()})

    def mark_loading(self):
        """Mark an existing run as loading, so a monitor started beside a resume does not read
        the last attempt's end and leave; returns what puts the previous status.json back,
        byte for byte, should loading fail."""
        if not self.status.is_file():
            return lambda: None
        before = self.status.read_bytes()
        self.write_status("loading", None)

        def restore() -> None:
            if self.path.is_dir():  # --fresh may have removed the run before failing
                atomic_write_text(self.status, before.decode("utf-8"))
        return restore

    def read_status(self) -> dict | None:
        """status.json as the trainer last wrote it, or None (none yet, or unreadable)."""
        return _read_json(self.status)

    def read_config(self) -> dict | None:
        """config.json as training saved it (not re-validated), or None."""
        return _read_json(self.config)


def _read_json(path: Path):
    """A JSON file's content, or None when it is missing or unreadable (cut short by a crash)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def fingerprint(path: Path) -> dict:
    """Size and SHA-256 of a file, as a checkpoint's manifest records them."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def verify(folder: Path) -> str | None:
    """None if every file matches the manifest, else what is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "manifest.json is missing or unreadable"
    required = {ADAPTER_FILE, ADAPTER_CONFIG, OPTIMIZER_FILE, STATE_FILE}
    if not required <= set(manifest):
        return f"manifest lacks {', '.join(sorted(required - set(manifest)))}"
    for name, expected in manifest.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if fingerprint(path) != expected:
            return f"{name} does not match its checksum"
    return None


def read_state(folder: Path) -> tuple[dict | None, str | None]:
    """(trainer state, None), or (None, what is wrong). A state can match its checksum and
    still be wrong (edited by hand, written by a buggy version): the schema catches it before
    resuming would fail half-way with a TypeError."""
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        return None, f"{STATE_FILE} is unreadable ({e})"
    error = jsonschema.exceptions.best_match(_state_validator().iter_errors(state))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the top level"
        return None, f"{STATE_FILE} is invalid at {where}: {error.message}"
    if folder.name != f"step-{state['step']:07d}":
        return None, f"{STATE_FILE} says step {state['step']}, the folder {folder.name}"
    return state, None


@functools.cache
def _state_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("trainer_state"))
