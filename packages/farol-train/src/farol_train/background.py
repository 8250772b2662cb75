"""A training run as its own process: started detached, found again, stopped with Ctrl+C's signal.

A notebook kernel that restarts, or a browser tab that closes, must not take the run with it,
so the run gets its own session; status.json (pid and host) is how a later cell finds it again.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from farol_core.errors import FarolError
from farol_core.rundir import RunDir

ENTRY = "from farol_train.cli import main; main()"
# Children this process started: polled so an ended one is reaped, not left a zombie that
# still answers "alive" to signal 0.
_STARTED: dict[int, subprocess.Popen] = {}
# run folder -> pid of ours: a cell run twice before the run wrote status.json finds it here
_RUNS: dict[Path, int] = {}


def running_pid(run_dir: str | Path) -> int | None:
    """The pid of the run's live training process on this host, or None."""
    status = RunDir(run_dir).read_status()
    if status is None:
        return None
    if status.get("state") not in ("training", "loading") or \
            status.get("host") != socket.gethostname():
        return None
    return status["pid"] if alive(status.get("pid")) else None


def alive(pid) -> bool:
    """Whether process `pid` still runs (a child of ours that ended is reaped first)."""
    if pid in _STARTED:
        return _STARTED[pid].poll() is None
    try:
        os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def start(config: str | Path, run_dir: str | Path, **options) -> int:
    """Start `farol-train run` for `run_dir` in its own session, or return the pid of the one
    already training it. `options` are farol-train run's (model, data, iters, seed, fresh);
    an existing run resumes from its newest checkpoint, as `farol-train run` does."""
    run_dir = Path(run_dir)
    ours = _RUNS.get(run_dir.resolve())
    pid = ours if ours is not None and alive(ours) else running_pid(run_dir)
    if pid is not None:
        return pid
    cmd = [sys.executable, "-c", ENTRY, "run", "--config", str(config), "--run", run_dir.name,
           "--runs-dir", str(run_dir.parent)]
    for key, value in options.items():
        if value is True:
            cmd.append(f"--{key}")
        elif value not in (None, False):
            cmd += [f"--{key.replace('_', '-')}", str(value)]
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(RunDir(run_dir).train_log, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _STARTED[proc.pid] = proc
    _RUNS[run_dir.resolve()] = proc.pid
    return proc.pid


def stop(pid: int, timeout: float = 120.0) -> bool:
    """Send SIGINT (what Ctrl+C sends) so the run saves a checkpoint and exits; wait for it.
    Returns whether it ended within `timeout` seconds."""
    if alive(pid):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


def exit_code(pid: int) -> int | None:
    """The exit code of a run this process started and that has ended, else None."""
    proc = _STARTED.get(pid)
    return proc.poll() if proc else None


def follow(pid: int, show, refresh: float = 1.0, run_dir: str | Path | None = None) -> str:
    """Call `show()` every `refresh` seconds until the run ends; Ctrl+C (a notebook's
    Interrupt) stops the run with a checkpoint instead of leaving it unwatched. Returns how
    it ended: "ended" or "interrupted"; a run of ours that failed raises a FarolError with
    the end of its log (in `run_dir`)."""
    try:
        while alive(pid):
            show()
            time.sleep(refresh)
    except KeyboardInterrupt:
        show()
        stop(pid)
        show()
        return "interrupted"
    show()
    code = exit_code(pid)
    if code:
        tail = _log_tail(run_dir) if run_dir else ""
        raise FarolError(f"training exited with status {code}" + (f":\n{tail}" if tail else ""),
                         hint="fix what the log says and run the cell again")
    return "ended"


def _log_tail(run_dir: str | Path, lines: int = 12) -> str:
    try:
        text = RunDir(run_dir).train_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
