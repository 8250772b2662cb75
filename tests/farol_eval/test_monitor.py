"""The live monitor on a finished run, a run that starts while it waits, and Ctrl+C."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from click.testing import CliRunner
from farol_eval.cli import main
from farol_eval.monitor import eta_seconds, monitor, sparkline
from farol_eval.runlog import read_metrics
from rich.console import Console


def _console() -> Console:
    return Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)


def test_sparkline_and_eta_by_hand():
    assert sparkline([0.0, 7.0, 3.5]) == "▁█▅"
    assert sparkline([2.0, 2.0]) == "▁▁"
    assert sparkline(list(range(100)), width=3) == "▁▅█"
    assert eta_seconds({"step": 10, "wall_time_s": 20.0}, 30) == 40.0
    assert eta_seconds({"step": 10, "wall_time_s": 20.0}, None) is None


def test_finished_run_shows_the_final_state_and_returns(trained_run):
    result, config = trained_run
    console = _console()
    snap = monitor(result.run_dir, refresh=0.01, max_updates=50, console=console)
    out = console.file.getvalue()
    last = read_metrics(result.run_dir)[-1]
    assert snap["state"] == "finished" and snap["rows"][-1] == last
    assert f"{last['step']} / {config['training']['iters']}" in out
    assert f"{last['train_loss']:.4f} nats/token" in out and "ETA" in out and "done" in out
    assert re.search(rf"peak memory\s+{last['peak_memory_gb']:.3f} GB", out), out


def test_waits_for_a_run_then_follows_it_to_the_end(trained_run, tmp_path, monkeypatch):
    # The writer moves on only when the monitor has drawn what the test claims, so each state
    # (waiting, running, a half-written last line) is seen on every run, not when sleeps line up.
    result, _ = trained_run
    # The state is the end of the panel's title, which rich cuts at the console's width: a
    # relative path keeps it there under any TMPDIR (a macOS /var/folders one cut it off).
    monkeypatch.chdir(tmp_path)
    run = Path("live")
    rows = (result.run_dir / "metrics.jsonl").read_text().splitlines(True)
    first = json.loads(rows[0])
    console = _console()
    failures = []

    def frames(title: str) -> int:  # every redraw writes the panel's title line again
        return console.file.getvalue().count(f"({title})")

    def wait_until(ready, what: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            assert time.monotonic() < deadline, f"the monitor never drew {what}"
            time.sleep(0.01)

    def write_run():  # the way training writes: config first, then rows appended over time
        try:
            wait_until(lambda: "waiting for the first report" in console.file.getvalue(),
                       "its waiting view")
            run.mkdir()
            (run / "config.json").write_text((result.run_dir / "config.json").read_text())
            with open(run / "metrics.jsonl", "a") as f:
                f.write(rows[0])
                f.flush()
                wait_until(lambda: frames("running") > 0, "a running view")
                f.write(rows[1][:20])  # a half-written line must be left for the next read
                f.flush()
                seen = frames("running")
                wait_until(lambda: frames("running") >= seen + 2, "a frame after the half line")
                assert read_metrics(run) == [first]
                last_frame = console.file.getvalue().rsplit("farol monitor:", 1)[1]
                assert f"{first['step']} / " in last_frame, last_frame
                f.write(rows[1][20:])
                for row in rows[2:]:
                    f.write(row)
                    f.flush()
        except Exception as e:  # an assertion here fails the test below, not the thread
            failures.append(e)

    writer = threading.Thread(target=write_run)
    writer.start()
    snap = monitor(run, refresh=0.02, max_updates=3000, console=console)
    writer.join()
    assert not failures, failures[0]
    out = console.file.getvalue()
    assert "waiting for the first report" in out and "(running)" in out
    assert snap["state"] == "finished" and len(snap["rows"]) == len(rows)
    assert snap["rows"][-1] == json.loads(rows[-1])


def test_cli_once(trained_run, monkeypatch):
    result, _ = trained_run
    # "finished" is in the panel's title, which rich cuts at the terminal's width (COLUMNS):
    # a wide console and a short relative path keep it whole, as a long TMPDIR did not.
    monkeypatch.chdir(result.run_dir.parent)
    res = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["monitor", result.run_dir.name,
                                                          "--once"])
    assert res.exit_code == 0, res.output
    assert "train loss" in res.output and "finished" in res.output


def test_ctrl_c_exits_cleanly(tmp_path):
    code = "from farol_eval.cli import main; main()"
    cli = [sys.executable, "-c", code, "monitor", str(tmp_path / "not-yet"), "--refresh", "0.1"]
    env = {**os.environ, "TTY_COMPATIBLE": "1"}  # rich draws frames at once, as on a terminal
    # A shell's background jobs start with SIGINT ignored (CI may run so); give the monitor the
    # default disposition a terminal would, so Python turns Ctrl+C into KeyboardInterrupt.
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = bytearray()

    def read():
        while chunk := proc.stdout.read1(4096):
            seen.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        deadline = time.time() + 60
        while b"waiting" not in seen and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert b"waiting" in seen, "the monitor never drew its waiting view"
        proc.send_signal(signal.SIGINT)
        status = proc.wait(timeout=30)  # bounded: a monitor that ignores Ctrl+C fails, not hangs
        err = proc.stderr.read().decode()
        assert status == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(timeout=5)


def test_a_nan_loss_is_flagged_not_a_crash(tmp_path):
    assert sparkline([1.0, float("nan"), 3.0]) == "▁!█"
    assert sparkline([float("nan")]) == "!"
    row = {"step": 10, "epoch": 0.5, "train_loss": float("nan"), "val_loss": None,
           "learning_rate": 1e-3, "tokens_per_second": 500.0, "iterations_per_second": 2.0,
           "trained_tokens": 2000, "peak_memory_gb": 0.05, "wall_time_s": 5.0}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    console = _console()
    monitor(tmp_path, max_updates=1, console=console)
    assert "nan nats/token" in console.file.getvalue()


def test_val_loss_says_which_step_it_is_from(trained_run):
    result, _ = trained_run
    rows = read_metrics(result.run_dir)
    step = [r["step"] for r in rows if r["val_loss"] is not None][-1]
    console = _console()
    monitor(result.run_dir, max_updates=1, console=console)
    assert f"nats/token (step {step})" in console.file.getvalue()


def _cut_run(trained_run, tmp_path, status: dict):
    """A copy of the trained run whose metrics stop halfway, with the given status.json."""
    result, _ = trained_run
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "config.json").write_bytes((result.run_dir / "config.json").read_bytes())
    rows = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(rows[: len(rows) // 2]) + "\n")
    (run / "status.json").write_text(json.dumps(status))
    return run


def test_a_run_whose_process_died_or_stopped_is_not_shown_as_running(trained_run, tmp_path):
    import socket

    result, _ = trained_run
    assert json.loads((result.run_dir / "status.json").read_text())["state"] == "done"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    here = {"host": socket.gethostname(), "step": 6}
    cases = [({**here, "state": "training", "pid": int(dead)}, "stopped (process gone at step 6)"),
             ({**here, "state": "interrupted", "pid": 1}, "stopped (interrupted at step 6)"),
             ({**here, "state": "training", "pid": os.getpid()}, "running"),
             # a resume still loading its model: not the last attempt's end
             ({**here, "state": "loading", "step": None, "pid": os.getpid()}, "running"),
             ({**here, "state": "loading", "step": None, "pid": int(dead)},
              "stopped (process gone while loading)")]
    for status, expected in cases:
        console = _console()
        snap = monitor(_cut_run(trained_run, tmp_path / status["state"] / str(status["pid"]),
                                status), refresh=0.01, max_updates=3, console=console)
        assert snap["state"] == expected
        if expected != "running":  # nothing to wait for, and no ETA to promise
            assert re.search(r"ETA\s+-\s", console.file.getvalue())


def test_a_run_stopped_before_its_first_report_is_not_waited_for():
    from farol_eval.monitor import render

    console = _console()
    console.print(render({"run": "runs/x", "rows": [], "total": 5, "age_s": None,
                          "state": "stopped (interrupted at step 2)"}))
    out = console.file.getvalue()
    assert "stopped before its first report" in out and "waiting" not in out


def test_val_loss_is_shown_with_the_step_it_was_measured_at(tmp_path):
    # Before, the row after a validation carried its loss under the row's own step: a loss
    # measured at step 200 showed as "(step 210)".
    rows = [{"step": s, "epoch": s / 100, "train_loss": 5.0, "val_loss": None, "val_step": None,
             "learning_rate": 1e-5, "tokens_per_second": 100.0, "iterations_per_second": 1.0,
             "trained_tokens": s * 10, "peak_memory_gb": 0.1, "wall_time_s": s / 10.0}
            for s in range(10, 280, 10)]
    rows[20].update(val_loss=5.6669, val_step=200)  # the report at step 210
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    console = _console()
    monitor(tmp_path, max_updates=1, console=console)
    assert "5.6669 nats/token (step 200)" in console.file.getvalue()
