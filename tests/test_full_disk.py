"""A full disk, for real: each command runs in its own mount namespace on a tiny tmpfs filled
to a few kB, so every write site (status file, metrics, checkpoints, eval reports, charts,
prepared data, bench results) meets ENOSPC. Each must end in one clear line, never a
traceback, and leave what was there before intact."""

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SAMPLE = ROOT / "data" / "sample"
FULL_LINE = "error: no space left on the disk writing "
UNSHARE = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


def _can_mount() -> bool:
    try:
        return subprocess.run([*UNSHARE, "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                              capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _can_mount(),
    reason="needs a mount namespace (root, or unprivileged user namespaces) for a tiny tmpfs")]


def on_full_disk(disk: Path, free: int, command: list[str], setup: str = "") -> (
        subprocess.CompletedProcess):
    """Run `command` with a tmpfs mounted at `disk` (seen by it alone), after `setup` copied
    what it needs there and a filler left `free` bytes."""
    script = (f"mount -t tmpfs -o size=32m tmpfs {disk} && {setup or 'true'} && "
              f"(dd if=/dev/zero of={disk}/.filler bs=64k 2>/dev/null; true) && "
              f"truncate -s -{free} {disk}/.filler && exec {shlex.join(command)}")
    return subprocess.run([*UNSHARE, "sh", "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def assert_one_clear_line(result) -> str:
    """The written file the error names."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out, out
    line = next(x for x in result.stderr.splitlines() if x.startswith("error: "))
    # farol-data words it "Could not write the outputs to ...: No space left on device".
    assert "no space left on the disk" in line.lower().replace("on device", "on the disk"), out
    return line


@pytest.fixture
def disk(tmp_path) -> Path:
    (tmp_path / "disk").mkdir()
    return tmp_path / "disk"


@pytest.mark.parametrize("free", [0, 65_536])
def test_prepare_on_a_full_disk(disk, free):
    result = on_full_disk(disk, free, [str(BIN / "farol-data"), "prepare", "--input",
                                       str(SAMPLE / "farense_qa.jsonl"), "--out", f"{disk}/out"])
    assert_one_clear_line(result)


def _run_config(tmp_path, trained_run, disk) -> Path:
    _, config = trained_run
    path = tmp_path / "run.json"
    training = {**config["training"], "iters": 4, "save_every": 2, "steps_per_report": 1,
                "steps_per_eval": 2}
    path.write_text(json.dumps({**config, "runs_dir": str(disk), "name": "r",
                                "training": training}))
    return path


def test_training_on_a_full_disk_names_each_write_site(tmp_path, disk, trained_run):
    config = _run_config(tmp_path, trained_run, disk)
    named = set()
    for free in (0, 8_192, 24_576, 65_536, 131_072):
        result = on_full_disk(disk, free, [str(BIN / "farol-train"), "run", "--config",
                                           str(config)])
        named.add(assert_one_clear_line(result))
    assert len(named) >= 3, named


def test_a_resume_on_a_full_disk_stops_at_the_status_file_and_keeps_the_run(
        tmp_path, disk, trained_run):
    result, _ = trained_run
    config = _run_config(tmp_path, trained_run, disk)
    before = {p.relative_to(result.run_dir): p.read_bytes() for p in result.run_dir.rglob("*")
              if p.is_file()}
    check = (f"; cd {disk}/r && sha256sum $(find . -type f | sort) > {tmp_path}/after.txt")
    run = shlex.join([str(BIN / "farol-train"), "run", "--config", str(config), "--iters", "99"])
    on = on_full_disk(disk, 0, ["sh", "-c", run + check],
                      setup=f"cp -a {result.run_dir} {disk}/r")
    assert on.returncode == 0, on.stderr  # the sh -c that checks the files afterwards
    line = next(x for x in on.stderr.splitlines() if x.startswith("error: "))
    assert line == f"{FULL_LINE}{disk}/r/status.json", on.stderr
    assert "Traceback" not in on.stderr
    after = dict(reversed(x.split("  ./")) for x in (tmp_path / "after.txt").read_text()
                 .splitlines())
    assert {str(k): hashlib.sha256(v).hexdigest() for k, v in before.items()} == after


def test_eval_reports_and_charts_on_a_full_disk(disk, trained_run):
    result, _ = trained_run
    evaluate = on_full_disk(disk, 0, [str(BIN / "farol-eval"), "run", "--run",
                                      str(result.run_dir), "--questions", "2", "--max-tokens",
                                      "4", "--out", f"{disk}/eval"])
    assert_one_clear_line(evaluate)
    plots = on_full_disk(disk, 0, [str(BIN / "farol-eval"), "plot", str(result.run_dir),
                                   "--out", f"{disk}/plots"])
    assert_one_clear_line(plots)


def test_bench_results_on_a_full_disk(disk):
    result = on_full_disk(disk, 0, [sys.executable, "-m", "pytest", "benchmarks/"
                                    "test_prepare_speed.py", "-k", "near_dedup",
                                    "--benchmark-enable", "--bench-rounds", "1", "-q",
                                    "-p", "no:cacheprovider", "--bench-results",
                                    f"{disk}/results"])
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "INTERNALERROR" not in out, out
    assert f"{FULL_LINE}{disk}/results/" in out, out
