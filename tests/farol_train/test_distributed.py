"""Data-parallel training on mlx.distributed: real ranks on this machine (ring backend over TCP)
started by mlx.launch, compared with one process; a rank killed mid-run; resume; preflight."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import psutil
import pytest
import yaml
from farol_core.errors import FarolError
from farol_core.io import read_log
from farol_train import checkpoint as ckpt
from farol_train import train
from farol_train.distributed import WATCHDOG_EXIT
from farol_train.launch import (
    STOP_GRACE_S,
    check_hosts,
    differences,
    fingerprint,
    launch,
    launch_command,
    plan,
)

CLI = "from farol_train.cli import main; main()"
# Global batch 4 (2 rows a rank), accumulation 2 so a checkpoint can hold a pending gradient.
RUN = {"seed": 5, "lora": {"num_layers": 1, "rank": 4},
       "training": {"iters": 12, "batch_size": 4, "learning_rate": 3e-3, "max_seq_length": 64,
                    "steps_per_report": 2, "steps_per_eval": 6, "val_batches": 1,
                    "save_every": 3, "grad_accumulation_steps": 2, "keep_checkpoints": 2},
       "distributed": {"timeout_s": 20}}
TOL = 1e-4


def config(tmp, tiny_4bit, processed, name="dist") -> dict:
    cfg = {**RUN, "name": name, "model": str(tiny_4bit), "data": str(processed),
           "runs_dir": str(tmp / "runs")}
    path = tmp / "run.json"
    path.write_text(json.dumps(cfg))
    return cfg


def command(tmp, *extra) -> list[str]:
    return [sys.executable, "-c", CLI, "run", "--config", str(tmp / "run.json"), *extra]


def steps(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(run_dir / "steps.jsonl")}


def assert_same_run(run_dir, other_dir) -> None:
    mine, theirs = steps(run_dir), steps(other_dir)
    assert sorted(mine) == sorted(theirs) == list(range(1, RUN["training"]["iters"] + 1))
    for step in mine:
        assert abs(mine[step] - theirs[step]) < TOL, (step, mine[step], theirs[step])
    a, b = (mx.load(str(d / ckpt.ADAPTER_FILE)) for d in (run_dir, other_dir))
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(np.array(a[key]), np.array(b[key]), atol=TOL, rtol=0)


@pytest.fixture(scope="module")
def one_process(tiny_4bit, processed, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one")
    result = train(config(tmp, tiny_4bit, processed), log=lambda _: None)
    return result.run_dir


@pytest.fixture(scope="module")
def two_ranks(tiny_4bit, processed, tmp_path_factory):
    """An uninterrupted 2-rank run on this machine: (run folder, launcher output)."""
    tmp = tmp_path_factory.mktemp("two")
    config(tmp, tiny_4bit, processed)
    done = subprocess.run(command(tmp, "--np", "2"), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "runs" / "dist", done


def test_two_ranks_match_one_process_with_the_same_global_batch(one_process, two_ranks):
    run_dir, done = two_ranks
    assert_same_run(run_dir, one_process)
    assert "launching 2 ranks (ring) on 127.0.0.1" in done.stdout
    assert "[rank 1]" in done.stderr and "[rank 1]" not in done.stdout  # rank 1 logs to stderr
    assert done.stdout.count("adapter:") == 1  # only rank 0 reports
    # only rank 0 wrote: one row per step, one metrics row per report
    assert len(read_log(run_dir / "metrics.jsonl")) == RUN["training"]["iters"] // 2


@pytest.fixture(scope="module")
def killed(tiny_4bit, processed, tmp_path_factory):
    """A 2-rank run whose rank 1 gets SIGKILL mid-run: (tmp, launcher's exit code, seconds to
    exit, launcher output, last step logged before the kill)."""
    tmp = tmp_path_factory.mktemp("killed")
    config(tmp, tiny_4bit, processed)
    proc = subprocess.Popen(command(tmp, "--np", "2"), stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run_dir = tmp / "runs" / "dist"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and max(steps(run_dir), default=0) < 4:
        time.sleep(0.01)
    rank1 = [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_rank(p, "1")]
    assert len(rank1) == 1 and proc.poll() is None, "rank 1 must be running"
    rank1[0].send_signal(signal.SIGKILL)
    tic = time.time()
    out = proc.communicate(timeout=60)[0]
    seconds = time.time() - tic
    # Read now: the resume test below trains this same folder on to the last step.
    return tmp, proc.returncode, seconds, out, max(steps(run_dir), default=0)


def _is_rank(process: psutil.Process, rank: str) -> bool:
    try:
        return (process.environ().get("MLX_RANK") == rank
                and "farol_train" in " ".join(process.cmdline()))
    except psutil.Error:  # a helper process that has just exited
        return False


def test_a_killed_rank_makes_the_launcher_fail_within_a_bounded_time(killed):
    _, code, seconds, out, last_step = killed
    assert code == 1, out
    assert seconds < RUN["distributed"]["timeout_s"] + 10, seconds
    assert "rank 1: exit code -9" in out and "the distributed run failed" in out
    assert 4 <= last_step < RUN["training"]["iters"], "killed mid-run"


def test_a_killed_distributed_run_resumes_to_match_an_uninterrupted_one(killed, two_ranks):
    tmp = killed[0]
    last = ckpt.latest_step_name(tmp / "runs" / "dist")
    done = subprocess.run(command(tmp, "--np", "2"), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming dist from {last}" in done.stdout  # rank 0
    assert f"[rank 1] resuming dist from {last}" in done.stderr  # rank 1, from rank 0's copy
    assert_same_run(tmp / "runs" / "dist", two_ranks[0])


def test_token_weighted_gradients_equal_the_whole_batch(tiny_4bit, processed, capfd):
    """Ranks with unequal token counts: loss, tokens and gradient are the whole batch's."""
    script = Path(__file__).with_name("dist_gradient.py")
    assert launch(plan(None, None, 2, "ring"), [sys.executable, str(script), str(tiny_4bit),
                                                str(processed)]) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()
            if line.startswith("{")]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    assert rows[0]["own_tokens"] != rows[1]["own_tokens"], "the shards must differ in tokens"
    for r in rows:
        assert r["tokens"][0] == r["tokens"][1] == rows[0]["own_tokens"] + rows[1]["own_tokens"]
        assert abs(r["loss"][0] - r["loss"][1]) < 1e-5
        assert r["grad_diff"] < 1e-5 and r["grad_max"] > 1e-2


def _started(tmp, *extra, **popen) -> subprocess.Popen:
    """A 2-rank run, returned once it has logged 4 steps."""
    proc = subprocess.Popen(command(tmp, "--np", "2", *extra), stdin=subprocess.DEVNULL,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and \
            max(steps(tmp / "runs" / "dist"), default=0) < 4:
        time.sleep(0.01)
    return proc


# Ctrl+C in a terminal signals the launcher's process group; a service manager or `kill`
# sends SIGTERM to the launcher alone, which must pass it on rather than orphan the ranks.
@pytest.mark.parametrize("to_group, sig", [(True, signal.SIGINT), (False, signal.SIGTERM)])
def test_a_stop_signal_stops_every_rank_with_a_checkpoint_and_resumes_exactly(
        tiny_4bit, processed, tmp_path, two_ranks, to_group, sig):
    config(tmp_path, tiny_4bit, processed)
    proc = _started(tmp_path, start_new_session=True)  # its own process group, as in a terminal
    (os.killpg if to_group else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    run_dir, name = tmp_path / "runs" / "dist", signal.Signals(sig).name
    last = max(steps(run_dir))
    assert last < RUN["training"]["iters"] and ckpt.latest_step_name(run_dir) == f"step-{last:07d}"
    assert f"stopped (interrupted) at step {last}" in out
    assert f"[rank 1] {name}: saved step-{last:07d} at step {last}" in err
    done = subprocess.run(command(tmp_path, "--np", "2"), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_same_run(run_dir, two_ranks[0])


def test_a_frozen_rank_is_killed_after_another_rank_fails(tiny_4bit, processed, tmp_path):
    """mlx.launch waits forever on a stopped rank (a frozen host); Farol kills it."""
    config(tmp_path, tiny_4bit, processed)
    proc = _started(tmp_path)
    ranks = {r: [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_rank(p, r)]
             for r in ("0", "1")}
    try:
        ranks["1"][0].suspend()
        ranks["0"][0].kill()
        tic = time.time()
        out, err = proc.communicate(timeout=STOP_GRACE_S + 30)
    finally:
        for p in ranks["1"]:
            with contextlib.suppress(psutil.Error):
                p.kill()
    assert proc.returncode == 1 and time.time() - tic < STOP_GRACE_S + 10, out + err
    assert "rank 0: exit code -9" in out and "still running" in err


def test_the_watchdog_ends_a_rank_that_makes_no_progress():
    code = ("import time; from farol_train.distributed import Watchdog; "
            "Watchdog(rank=1, timeout_s=1); time.sleep(30)")
    tic = time.time()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == WATCHDOG_EXIT and time.time() - tic < 15
    assert "[rank 1] no progress for 1 s" in done.stderr


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(tiny_4bit, processed, tmp_path):
    config(tmp_path, tiny_4bit, processed)
    cfg = json.loads((tmp_path / "run.json").read_text())
    cfg["training"]["batch_size"] = 3
    (tmp_path / "run.json").write_text(json.dumps(cfg))
    done = subprocess.run(command(tmp_path, "--np", "2"), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 1 and "launching" not in done.stdout  # refused before launch
    assert "batch_size 3 does not split over 2 ranks" in done.stdout + done.stderr


def test_plans_and_the_mlx_launch_command(tmp_path):
    p = plan(None, None, 2, "ring")
    assert p.hosts == ["127.0.0.1", "127.0.0.1"] and p.world_size == 2
    cmd = launch_command(p, ["python", "x.py"], 40000)
    assert cmd[1:] == ["--backend", "ring", "--hosts", "127.0.0.1", "-n", "2",
                       "--starting-port", "40000", "--env", "FAROL_WORLD_SIZE=2",
                       "--env", "FAROL_DIST_BACKEND=ring", "--", "python", "x.py"]
    assert plan("localhost", None, 2, "ring").hosts == ["127.0.0.1", "127.0.0.1"]
    with pytest.raises(FarolError, match="needs IP addresses"):
        plan("mac1.local,mac2.local", None, None, "ring")
    with pytest.raises(FarolError, match="names a host twice"):  # mlx.launch would start 2 of 3
        plan("10.0.0.1,10.0.0.1,10.0.0.2", None, None, "ring")
    with pytest.raises(FarolError, match="127.0.0.1 cannot be combined"):
        plan("127.0.0.1,10.0.0.2", None, None, "ring")
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([{"ssh": "mac1.local", "ips": ["10.0.0.1"]},
                                    {"ssh": "mac2.local", "ips": ["10.0.0.2"]}]))
    p = plan(None, str(hostfile), None, "ring")
    assert p.hosts == ["mac1.local", "mac2.local"]
    assert launch_command(p, ["x"], 1)[3:5] == ["--hostfile", str(hostfile)]
    for text, error in (("{not json", "cannot read the hostfile"), ("[]", "lists no hosts"),
                        ('[{"ssh": "mac1.local"}]', 'needs "ips" for every host')):
        hostfile.write_text(text)
        with pytest.raises(FarolError, match=error):
            plan(None, str(hostfile), None, "ring")


def test_preflight_reports_every_difference_between_hosts(tiny_4bit, processed, tmp_path):
    mine = fingerprint(str(tiny_4bit), str(processed))
    assert differences(mine, mine) == []
    theirs = json.loads(json.dumps(mine))
    theirs["versions"]["mlx"] = "0.31.0"
    weights = next(k for k in theirs["files"] if k.endswith(".safetensors"))
    theirs["files"][weights] = "0" * 64
    del theirs["files"][str(processed / "train.jsonl")]
    found = differences(mine, theirs)
    assert f"mlx 0.31.0 (this machine: {mine['versions']['mlx']})" in found
    assert f"{weights} differs" in found
    assert f"{processed / 'train.jsonl'} is missing" in found
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([{"ssh": "127.0.0.1", "ips": ["127.0.0.1"]},
                                    {"ssh": "farol-no-such-host.invalid", "ips": ["10.9.9.9"]}]))
    checks = check_hosts(plan(None, str(hostfile), None, "ring"), str(tiny_4bit), str(processed))
    assert [c.status for c in checks] == ["pass", "fail"]
    assert "unreachable" in checks[1].detail and "Could not resolve" in checks[1].detail
    config(tmp_path, tiny_4bit, processed)
    out = subprocess.run(command(tmp_path, "--hostfile", str(hostfile)), capture_output=True,
                         text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and "nothing was launched" in out.stdout + out.stderr


def test_the_mpi_backend_without_mpirun_is_one_clear_line(tmp_path, monkeypatch):
    # mlx.launch failed with a traceback from `which mpirun`, then said to run it again.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FarolError, match="needs mpirun, which is not on PATH"):
        plan(None, None, 2, "mpi")
    mpirun = tmp_path / "mpirun"
    mpirun.write_text("#!/bin/sh\n")
    mpirun.chmod(0o755)
    assert plan(None, None, 2, "mpi").world_size == 2


DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@pytest.mark.slow
@pytest.mark.parametrize(("pack", "accumulation", "iters"), [(False, 1, 8), (True, 2, 10)],
                         ids=["padded", "packed-accumulation-2-past-an-epoch-end"])
def test_two_ranks_match_one_process_on_the_demo_settings(pack, accumulation, iters, tiny_4bit,
                                                          processed, tmp_path):
    """configs/demo.yaml as shipped (batch 4, max_seq_length 512, 4 adapted layers): sample rows
    of 40 to 200 tokens, so the two halves of a batch hold unequal token counts. Packed, 7
    steps make an epoch and its odd leftover rows are dropped on every rank alike."""
    demo = yaml.safe_load(DEMO.read_text())
    training = {**demo["training"], "iters": iters, "pack": pack,
                "grad_accumulation_steps": accumulation, "steps_per_eval": iters}
    cfg = {**demo, "seed": 5, "model": str(tiny_4bit), "data": str(processed),
           "runs_dir": str(tmp_path / "runs"), "training": training}
    (tmp_path / "run.json").write_text(json.dumps({**cfg, "name": "two"}))
    one = train({**cfg, "name": "one"}, log=lambda _: None).run_dir
    done = subprocess.run(command(tmp_path, "--np", "2"), capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    mine, theirs = steps(one), steps(tmp_path / "runs" / "two")
    assert sorted(mine) == sorted(theirs) == list(range(1, iters + 1))
    gaps = {s: abs(mine[s] - theirs[s]) for s in mine}
    assert max(gaps.values()) < TOL, gaps
    a, b = (mx.load(str(d / ckpt.ADAPTER_FILE)) for d in (one, tmp_path / "runs" / "two"))
    for key in a:
        np.testing.assert_allclose(np.array(a[key]), np.array(b[key]), atol=TOL, rtol=0)
