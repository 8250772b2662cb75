"""Starting a distributed run: a preflight across the hosts, then mlx.launch, then its verdict.

mlx.launch (mlx 0.32) starts one process per rank (over ssh for remote hosts), stops the rest
when one fails, and prints `Node with rank N exited with code C`, but it exits 0 either way; so
Farol reads those lines and returns 1 when any rank failed.
"""

import contextlib
import ipaddress
import json
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import psutil
from farol_core.errors import FarolError
from farol_core.io import sha256_file

from farol_train.distributed import BACKEND_ENV, WORLD_ENV
from farol_train.preflight import Check

LOCAL = "127.0.0.1"  # the one name mlx.launch starts without ssh
FAILED = re.compile(r"Node with rank (\d+) (was killed|exited with code (-?\d+))")
PACKAGES = ("farol-core", "farol-train", "mlx", "mlx-lm")
SSH = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
# After a rank fails, how long the others get to stop (their watchdog allows 10 s after the
# SIGTERM mlx.launch sends) before Farol kills them: mlx.launch waits forever on a rank that is
# frozen, and on ssh to a host that no longer answers.
STOP_GRACE_S = 15
HOSTFILE_HINT = 'expected [{"ssh": "mac1.local", "ips": ["10.0.0.1"]}, ...]'


@dataclass
class Plan:
    """Where the ranks run: ssh host names in rank order, and the hostfile if one was given."""

    hosts: list[str]
    backend: str
    hostfile: Path | None = None

    @property
    def world_size(self) -> int:
        return len(self.hosts)


def plan(hosts: str | None, hostfile: str | None, np: int | None, backend: str) -> Plan:
    """The ranks `--hosts h1,h2` / `--hostfile FILE` / `--np N` ask for (N per host)."""
    if hosts and hostfile:
        raise FarolError("give --hosts or --hostfile, not both")
    if backend == "mpi" and shutil.which("mpirun") is None:  # mlx.launch would end in a traceback
        raise FarolError("the mpi backend needs mpirun, which is not on PATH",
                         hint="install Open MPI (`brew install open-mpi` on a Mac), or use "
                              "--backend ring")
    if hostfile:
        return Plan(read_hostfile(Path(hostfile), backend), backend, Path(hostfile))
    names = _host_names(hosts or LOCAL, backend)
    return Plan([h for h in names for _ in range(np or 1)], backend)


def _host_names(hosts: str, backend: str) -> list[str]:
    """The --hosts list, checked for what mlx.launch would only fail on later, or never."""
    names = [LOCAL if h in ("localhost", "::1") else h for h in hosts.split(",")]
    if backend == "ring" and not all(_is_ip(h) for h in names):
        raise FarolError("the ring backend needs IP addresses in --hosts",
                         hint="use --hostfile to name each host's ssh name and IPs "
                              "(see docs/distributed.md)")
    if len(set(names)) < len(names):  # mlx.launch repeats every host by the same -n
        raise FarolError("--hosts names a host twice",
                         hint="list each host once; --np N starts N ranks on every host")
    if LOCAL in names and len(names) > 1:  # the other hosts would dial their own loopback
        raise FarolError("127.0.0.1 cannot be combined with other hosts in --hosts",
                         hint="give this machine's IP on the network the hosts share, e.g. "
                              "--hosts 10.0.0.1,10.0.0.2")
    return names


def read_hostfile(path: Path, backend: str) -> list[str]:
    """The ssh names, in rank order, of an mlx.launch hostfile (a list, or {"hosts": [...]})."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        hosts = data["hosts"] if isinstance(data, dict) else data
        names, ips = [h["ssh"] for h in hosts], [h.get("ips") for h in hosts]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise FarolError(f"cannot read the hostfile {path}: {e}", hint=HOSTFILE_HINT) from None
    if not names:
        raise FarolError(f"the hostfile {path} lists no hosts", hint=HOSTFILE_HINT)
    if backend == "ring" and not all(ips):  # mlx.launch would refuse it only after preflight
        raise FarolError(f"the ring backend needs \"ips\" for every host in {path}",
                         hint=HOSTFILE_HINT)
    return names


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def launch_command(p: Plan, rank_argv: list[str], port: int) -> list[str]:
    """The mlx.launch command line that starts `rank_argv` on every rank."""
    cmd = [str(Path(sys.executable).parent / "mlx.launch"), "--backend", p.backend]
    if p.hostfile is not None:
        cmd += ["--hostfile", str(p.hostfile)]
    else:
        hosts = list(dict.fromkeys(p.hosts))
        cmd += ["--hosts", ",".join(hosts), "-n", str(p.world_size // len(hosts))]
    if p.backend == "ring":
        cmd += ["--starting-port", str(port)]
    env = [f"{WORLD_ENV}={p.world_size}", f"{BACKEND_ENV}={p.backend}"]
    return cmd + [a for e in env for a in ("--env", e)] + ["--", *rank_argv]


def free_port(count: int) -> int:
    """A local port such that it and the next `count - 1` are free (one per local rank)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((LOCAL, 0))
            base = s.getsockname()[1]
        if base + count < 65536 and all(_free(base + i) for i in range(1, count)):
            return base
    raise FarolError(f"found no {count} free consecutive ports for the ring backend")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOCAL, port))
            return True
        except OSError:
            return False


# What the launcher passes on to the ranks when it gets a signal (they save and stop on both).
STOP_SIGNALS = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM,
                signal.SIGHUP: signal.SIGTERM}


def launch(p: Plan, rank_argv: list[str], log=print) -> int:
    """Run every rank through mlx.launch; 0 when all finished, else 1 (which ranks failed is
    logged). Rank output passes through; stdin stays an open pipe (mlx.launch polls it)."""
    cmd = launch_command(p, rank_argv, free_port(p.world_size) if p.backend == "ring" else 0)
    # mlx.launch and the ranks get their own session, so a signal reaches them once, from here:
    # Ctrl+C or a SIGTERM sent to the whole group would otherwise arrive twice, and a second
    # signal stops a rank without a checkpoint. mlx.launch dies on SIGTERM and is not signalled.
    started: list = []
    handlers = {sig: signal.signal(sig, lambda _, __, s=passed: started and
                                   _signal_ranks(started[0].pid, s))
                for sig, passed in STOP_SIGNALS.items()}
    try:
        started.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, errors="replace", start_new_session=True))
        failed = _relay(started[0].stderr, started[0].pid)
        code = started[0].wait()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return _verdict(failed, code, log)


def _verdict(failed: dict[int, str], code: int, log) -> int:
    if not failed and not code:
        return 0
    why = ", ".join(f"rank {r}: {'killed' if c == 'killed' else f'exit code {c}'}"
                    for r, c in sorted(failed.items())) or f"mlx.launch exit code {code}"
    log(f"error: the distributed run failed ({why}); the other ranks were stopped. Run "
        "the same command again to resume from the last checkpoint.")
    return 1


def _signal_ranks(launcher: int, sig: int) -> None:
    """Send `sig` to mlx.launch's children: the local ranks, and the ssh of remote ones."""
    try:
        children = psutil.Process(launcher).children()
    except psutil.NoSuchProcess:
        return
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):  # it has just exited
            child.send_signal(sig)


def _kill_stragglers(launcher: int) -> None:
    """SIGKILL mlx.launch and what it started, once they outlived STOP_GRACE_S after a failure."""
    try:
        tree = psutil.Process(launcher)
        tree = [*tree.children(recursive=True), tree]
    except psutil.NoSuchProcess:
        return
    print(f"error: ranks were still running {STOP_GRACE_S} s after a rank failed (a frozen "
          "host or a stalled network); killed them", file=sys.stderr, flush=True)
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def _relay(stderr, launcher: int) -> dict[int, str]:
    """Pass mlx.launch's stderr through; returns {rank: exit code or "killed"} of failures.
    The first failure starts the clock on the other ranks (see STOP_GRACE_S)."""
    failed, timer = {}, threading.Timer(STOP_GRACE_S, _kill_stragglers, (launcher,))
    timer.daemon = True
    for line in stderr:
        sys.stderr.write(line)
        sys.stderr.flush()
        found = FAILED.search(line)
        if found:
            failed[int(found.group(1))] = found.group(3) or "killed"
            if timer.ident is None:  # not started yet
                timer.start()
    timer.cancel()
    return failed


def fingerprint(model: str, data: str) -> dict:
    """Versions and file checksums that must match on every host."""
    files = {}
    for root, names in ((Path(model), None), (Path(data), ("train.jsonl", "valid.jsonl"))):
        paths = [root / n for n in names] if names else sorted(root.rglob("*"))
        for path in paths:
            if path.is_file():
                files[str(path)] = sha256_file(path)
            elif names:
                files[str(path)] = "missing"
    return {"python": platform.python_version(), "versions": _versions(), "files": files}


def _versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def differences(reference: dict, other: dict) -> list[str]:
    """What differs between two fingerprints, one phrase per difference."""
    out = [f"{k} {other['versions'].get(k)} (this machine: {v})"
           for k, v in reference["versions"].items() if other["versions"].get(k) != v]
    if other["python"] != reference["python"]:
        out.append(f"python {other['python']} (this machine: {reference['python']})")
    for path, digest in reference["files"].items():
        theirs = other["files"].get(path, "missing")
        if theirs != digest:
            out.append(f"{path} {'is missing' if theirs == 'missing' else 'differs'}")
    out += [f"{path} is extra" for path in other["files"] if path not in reference["files"]]
    return out


def remote_fingerprint(host: str, model: str, data: str, cwd: Path) -> dict:
    """The fingerprint of `host`, over ssh, with this Python's path and this folder there."""
    code = (f"import json; from farol_train.launch import fingerprint; "
            f"print(json.dumps(fingerprint({model!r}, {data!r})))")
    remote = f"cd {shlex.quote(str(cwd))} && {shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    done = subprocess.run([*SSH, host, remote], capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise FarolError((done.stderr.strip() or f"ssh exit code {done.returncode}")[-300:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_hosts(p: Plan, model: str, data: str) -> list[Check]:
    """One check per host: reachable, and the same versions, data and model as this one."""
    remote = [h for h in dict.fromkeys(p.hosts) if h != LOCAL]
    mine = fingerprint(model, data) if remote else None  # hashing a large model takes a while
    checks = []
    for host in dict.fromkeys(p.hosts):
        if host == LOCAL:
            checks.append(Check(f"host {host}", "pass", "this machine"))
            continue
        try:
            diff = differences(mine, remote_fingerprint(host, model, data, Path.cwd()))
        except (FarolError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
            checks.append(Check(f"host {host}", "fail", f"unreachable: {e}",
                                "set up ssh keys (ssh-copy-id) and install Farol at the same "
                                "path"))
            continue
        checks.append(Check(f"host {host}", "fail" if diff else "pass",
                            "; ".join(diff) or "same versions, data and model",
                            "install the same versions; rsync models/ and data/" if diff else ""))
    return checks
