"""Checkpoints and exact resume: SIGKILL mid-run, corrupt checkpoints, a disk that fills up,
SIGTERM, NaN and the memory guard. Every run here is real and a few steps long."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import types

import mlx.core as mx
import numpy as np
import psutil
import pytest
from farol_core import rundir
from farol_core.errors import FarolError
from farol_core.io import read_log
from farol_eval.monitor import ended
from farol_train import checkpoint as ckpt
from farol_train import train

# Small and fast (about 0.1 s a step): one adapted layer, short sequences, accumulation 2 so a
# checkpoint can fall between two updates and must carry the pending gradient.
QUICK = {"seed": 3, "lora": {"num_layers": 1, "rank": 4},
         "training": {"iters": 14, "batch_size": 2, "learning_rate": 3e-3, "max_seq_length": 64,
                      "steps_per_report": 2, "steps_per_eval": 4, "val_batches": 1,
                      "save_every": 3, "grad_accumulation_steps": 2, "keep_checkpoints": 2}}
CLI = "from farol_train.cli import main; main()"


def quick(tiny_4bit, processed, runs, name="quick", **training) -> dict:
    return {**QUICK, "name": name, "model": str(tiny_4bit), "data": str(processed),
            "runs_dir": str(runs), "training": {**QUICK["training"], **training}}


def step_losses(run_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_log(run_dir / "steps.jsonl")}


def adapter(path) -> dict:
    return mx.load(str(path / ckpt.ADAPTER_FILE))


@pytest.fixture(scope="module")
def reference(tiny_4bit, processed, tmp_path_factory):
    """An uninterrupted run: its result and config."""
    runs = tmp_path_factory.mktemp("ref")
    config = quick(tiny_4bit, processed, runs)
    return train(config, log=lambda _: None), config


def _start(config_path, cwd):
    return subprocess.Popen([sys.executable, "-c", CLI, "run", "--config", str(config_path)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_step(proc, steps_file, step: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        rows = read_log(steps_file)
        if rows and rows[-1]["step"] >= step:
            return
        time.sleep(0.01)
    raise AssertionError(f"run ended before step {step}: {proc.communicate()[0]}")


def test_sigkill_then_resume_matches_an_uninterrupted_run(reference, tmp_path):
    ref, config = reference
    config = {**config, "runs_dir": str(tmp_path / "runs")}
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps(config))
    run_dir = tmp_path / "runs" / "quick"
    proc = _start(config_path, tmp_path)
    _wait_for_step(proc, run_dir / "steps.jsonl", 7)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = max(step_losses(run_dir))
    assert 7 <= killed_at < 14, "the kill must land mid-run"

    resumed = subprocess.run([sys.executable, "-c", CLI, "run", "--config", str(config_path)],
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resuming quick from step-" in resumed.stdout

    expected, got = step_losses(ref.run_dir), step_losses(run_dir)
    assert sorted(got) == list(range(1, 15))
    np.testing.assert_allclose([got[s] for s in sorted(got)],
                               [expected[s] for s in sorted(expected)], atol=1e-5)
    a, b = adapter(ref.run_dir), adapter(run_dir)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), atol=1e-5)
    rows = read_log(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12, 14]


@pytest.mark.parametrize("pack", [False, True], ids=["padded", "packed"])
def test_resume_between_two_accumulation_steps_matches_an_uninterrupted_run(pack, tiny_4bit,
                                                                           processed, tmp_path):
    # Step 9 falls between two updates (accumulation 2), so its checkpoint holds the pending
    # gradient; restoring it once failed on the model's empty `layer_types` branch. Packed rows
    # are built from the saved order too, so the packed run must resume as exactly.
    config = quick(tiny_4bit, processed, tmp_path / "runs", keep_checkpoints=5, pack=pack)
    whole = train(config, log=lambda _: None)
    run_dir = tmp_path / "copy" / "quick"
    shutil.copytree(whole.run_dir, run_dir)
    for late in (12, 14):
        shutil.rmtree(ckpt.checkpoint_dir(run_dir, late))
    assert (ckpt.checkpoint_dir(run_dir, 9) / ckpt.PENDING_FILE).is_file()
    logs = []
    train({**config, "runs_dir": str(tmp_path / "copy")}, log=logs.append)
    assert any("from step-0000009" in line for line in logs)
    assert json.loads((run_dir / "config.json").read_text())["training"]["pack"] is pack
    expected, got = step_losses(whole.run_dir), step_losses(run_dir)
    np.testing.assert_allclose([got[s] for s in range(1, 15)],
                               [expected[s] for s in range(1, 15)], atol=1e-5)
    a, b = adapter(whole.run_dir), adapter(run_dir)
    for k in a:
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), atol=1e-5)


def test_checkpoints_keep_the_last_k_and_the_best(reference):
    ref, _ = reference
    names = [p.name for p in ckpt.list_checkpoints(ref.run_dir)]
    best = json.loads((ref.run_dir / "adapters" / "best.json").read_text())
    kept = {f"step-{s:07d}" for s in (12, 14)} | {f"step-{best['step']:07d}"}
    assert set(names) == kept
    assert best["val_loss"] == min(r["val_loss"] for r in read_log(ref.run_dir / "metrics.jsonl")
                                   if r["val_loss"] is not None)
    folder = ckpt.checkpoint_dir(ref.run_dir, 14)
    assert rundir.verify(folder) is None
    state = json.loads((folder / ckpt.STATE_FILE).read_text())
    assert state["step"] == 14 and state["data"]["index"] == 14 and state["optimizer_step"] == 7
    assert (ref.run_dir / "metrics.csv").read_text().splitlines()[0].startswith("step,epoch,")


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning(reference, tmp_path):
    ref, _ = reference
    run_dir = tmp_path / "copy"
    shutil.copytree(ref.run_dir, run_dir)
    newest = ckpt.list_checkpoints(run_dir)[-1]
    with open(newest / ckpt.ADAPTER_FILE, "r+b") as f:  # flip bytes in the weights
        f.seek(-8, os.SEEK_END)
        f.write(b"\x00" * 8)
    (run_dir / "checkpoints" / ".step-0000099.tmp").mkdir()  # a save cut by a crash
    warnings = []
    found = ckpt.load_latest(run_dir, warn=warnings.append)
    assert found.step == 12
    assert warnings == [f"warning: skipping checkpoint {newest.name}: "
                        "adapters.safetensors does not match its checksum"]


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(reference, tmp_path):
    ref, config = reference
    run_dir = tmp_path / "copy"
    shutil.copytree(ref.run_dir, run_dir)
    previous = ckpt.list_checkpoints(run_dir)
    model_state = json.loads((previous[-1] / ckpt.STATE_FILE).read_text())
    from farol_train.loop import Trainer, resolve

    trainer = Trainer(resolve({**config, "runs_dir": str(tmp_path), "name": "copy"}),
                      log=lambda _: None, fresh=False)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))  # files stop growing at 20 kB
    try:
        trainer.step = 15
        with pytest.raises(FarolError, match="could not save the checkpoint for step 15") as e:
            trainer.save()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert "step-0000014) is intact" in str(e.value)
    assert ckpt.list_checkpoints(run_dir) == previous
    assert not list((run_dir / "checkpoints").glob(".*"))
    assert ckpt.load_latest(run_dir).state == model_state


def test_a_full_disk_while_saving_the_best_adapter_is_a_clear_error(reference, tmp_path):
    from farol_core.model import load_model
    from farol_train.lora import apply_lora

    model, _ = load_model(reference[1]["model"])
    adapter_config = apply_lora(model, {**reference[1]["lora"], "dropout": 0.0, "scale": 20.0,
                                        "keys": None})
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000, hard))  # the adapter file cannot fit
    try:  # a raw RuntimeError from mlx before, leaving its temporary file behind
        with pytest.raises(FarolError, match="could not save the adapter in .*adapters"):
            ckpt.save_best(model, tmp_path, adapter_config, 3, 1.0)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert list((tmp_path / rundir.BEST_DIR).iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_and_exits_0(sig, tiny_4bit, processed, tmp_path):
    config_path = tmp_path / "run.json"
    config = quick(tiny_4bit, processed, tmp_path / "runs", iters=400, save_every=1000)
    config_path.write_text(json.dumps(config))
    proc = _start(config_path, tmp_path)
    _wait_for_step(proc, tmp_path / "runs" / "quick" / "steps.jsonl", 3)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    step = max(step_losses(tmp_path / "runs" / "quick"))
    assert f"{signal.Signals(sig).name}: saved step-{step:07d}" in out
    assert "invoke train --run quick" in out
    assert ckpt.load_latest(tmp_path / "runs" / "quick").step == step


# The CLI with a model load that takes a minute, as a 7B one can on a Mac; it touches the file
# named by its first argument when loading starts, so the test knows when to press Ctrl+C.
SLOW_LOAD_CLI = """
import sys, time
from pathlib import Path
import farol_train.loop as loop
started, real = Path(sys.argv.pop(1)), loop.load_model
def slow_load(*args, **kwargs):
    started.touch()
    time.sleep(60)
    return real(*args, **kwargs)
loop.load_model = slow_load
from farol_train.cli import main
main()
"""


def _tree(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_while_loading_exits_130_and_leaves_the_run_as_it_was(reference, tmp_path):
    ref, config = reference
    shutil.copytree(ref.run_dir, tmp_path / "quick")
    before = _tree(tmp_path / "quick")
    config_path, started = tmp_path / "run.json", tmp_path / "loading"
    config_path.write_text(json.dumps({**config, "runs_dir": str(tmp_path)}))
    # Background jobs inherit SIGINT ignored; a terminal's Ctrl+C arrives with the default.
    proc = subprocess.Popen([sys.executable, "-c", SLOW_LOAD_CLI, str(started), "run",
                             "--config", str(config_path)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    # While it loads, a monitor must not take the last attempt's end for this one's.
    status = json.loads((tmp_path / "quick" / "status.json").read_text())
    assert (status["state"], status["pid"]) == ("loading", proc.pid)
    assert ended(tmp_path / "quick") is None
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    assert "interrupted: stopped while loading, before the first step" in out
    assert _tree(tmp_path / "quick") == before


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_4bit, processed, tmp_path):
    config = quick(tiny_4bit, processed, tmp_path, learning_rate=1e9, grad_accumulation_steps=1,
                   save_every=1, iters=50)
    with pytest.raises(FarolError, match=r"became (nan|inf) at step (\d+)") as e:
        train(config, log=lambda _: None)
    step = int(str(e.value).split(" at step ")[1].split(";")[0])
    kept = ckpt.load_latest(tmp_path / "quick")
    assert f"last good checkpoint ({kept.path.name}) is kept" in str(e.value)
    assert kept.step < step and "lower training.learning_rate" in str(e.value)
    weights = mx.load(str(kept.path / ckpt.ADAPTER_FILE))
    assert all(np.isfinite(np.array(v)).all() for v in weights.values())


def test_memory_guard_checkpoints_and_stops(tiny_4bit, processed, tmp_path):
    config = quick(tiny_4bit, processed, tmp_path, memory_fraction=1e-6)
    with pytest.raises(FarolError, match="memory use reached .* at step 1, above the limit"):
        train(config, log=lambda _: None)
    assert ckpt.load_latest(tmp_path / "quick").step == 1


def test_fresh_starts_over_and_a_changed_config_is_refused(reference, tmp_path):
    ref, config = reference
    shutil.copytree(ref.run_dir, tmp_path / "quick")
    config = {**config, "runs_dir": str(tmp_path)}
    logs = []
    done = train(config, log=logs.append)
    assert done.resumed_from == 14 and any("already complete" in x for x in logs)
    changed = {**config, "lora": {"num_layers": 1, "rank": 8}}
    with pytest.raises(FarolError, match=r"different lora\.rank \(now 8, checkpoints 4\)"):
        train(changed, log=lambda _: None)
    again = train(config, log=lambda _: None, fresh=True, iters=4)
    assert again.resumed_from == 0 and again.steps == 4
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "quick")] == ["step-0000003",
                                                                            "step-0000004"]


def test_no_usable_checkpoint_is_refused_and_fresh_says_what_it_deletes(reference, tmp_path):
    ref, config = reference
    run_dir = tmp_path / "quick"
    shutil.copytree(ref.run_dir, run_dir)
    for folder in ckpt.list_checkpoints(run_dir):  # every checkpoint fails its manifest
        (folder / ckpt.OPTIMIZER_FILE).write_bytes(b"cut")
    before = _tree(run_dir)
    config = {**config, "runs_dir": str(tmp_path)}
    with pytest.raises(FarolError, match="best adapter .* no checkpoint that can be resumed"):
        train(config, log=lambda _: None)
    assert _tree(run_dir) == before  # the best adapter and the logs are still there
    logs = []
    train(config, log=logs.append, fresh=True, iters=1)
    assert any(x.startswith("--fresh: removed 2 checkpoint(s)") and "the best adapter" in x
               for x in logs)


def test_data_changed_at_the_same_path_is_refused(tiny_4bit, processed, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(processed, data)
    config = {**quick(tiny_4bit, data, tmp_path, iters=3), "data": str(data)}
    train(config, log=lambda _: None)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    rows[0]["messages"][-1]["content"] = "Uma resposta corrigida."  # same count, new content
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(FarolError, match="the train data changed since checkpoint step-0000003"):
        train(config, log=lambda _: None, iters=6)


def test_epochs_early_stopping_and_alpha(tiny_4bit, processed, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    for split, n in (("train", 6), ("valid", 2)):
        lines = (processed / f"{split}.jsonl").read_text().splitlines()[:n]
        (small / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    config = {**quick(tiny_4bit, small, tmp_path, epochs=2, grad_accumulation_steps=1),
              "data": str(small)}
    config["lora"] = {"num_layers": 1, "rank": 4, "alpha": 16}
    logs = []
    result = train(config, log=logs.append)
    assert result.steps == 6 and result.stopped == "done"  # 3 batches of 2, twice
    assert ("note: lora.alpha 16 with rank 4 is lora.scale 4 in mlx-lm's terms; it replaces "
            "lora.scale 20") in logs
    saved = json.loads((result.run_dir / "adapter_config.json").read_text())
    assert saved["lora_parameters"]["scale"] == 4.0
    assert read_log(result.run_dir / "steps.jsonl")[-1]["step"] == 6

    # A learning rate too small to move float32 weights: the validation loss never improves.
    flat = quick(tiny_4bit, processed, tmp_path, name="flat", learning_rate=1e-30,
                 steps_per_eval=1, patience=2, grad_accumulation_steps=1)
    stopped = train(flat, log=logs.append)
    assert stopped.stopped == "early_stop" and stopped.steps == 3
    assert any(x.startswith("early stop at step 3") for x in logs)
    assert json.loads((stopped.run_dir / "adapters" / "best.json").read_text())["step"] == 1


def test_the_memory_watchdog_samples_in_the_background():
    # Counted where the watchdog reads the resident memory, and never sampled from here: the
    # guard must go on sampling by itself (a fixed sleep proved only that it sampled once).
    from farol_train.guards import MemoryGuard

    guard = MemoryGuard(1.0)
    reads, real = [], guard.process.memory_info
    guard.process = types.SimpleNamespace(memory_info=lambda: reads.append(1) or real())
    try:
        deadline = time.monotonic() + 30
        while len(reads) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(reads) >= 2, "the watchdog did not sample again in the background"
        assert guard.highest >= real().rss // 2 and guard._thread.is_alive()
        assert guard.exceeded() is None
    finally:
        guard.release()
    assert not guard._thread.is_alive()


def test_an_early_stopped_or_finished_epoch_run_run_again_trains_nothing(tiny_4bit, processed,
                                                                        tmp_path):
    # Running the same command again used to train one more step (and stop early again) each
    # time; a finished epochs run pointed at --iters, which epochs overrides.
    flat = quick(tiny_4bit, processed, tmp_path, learning_rate=1e-30, steps_per_eval=1,
                 patience=2, grad_accumulation_steps=1)
    assert train(flat, log=lambda _: None).steps == 3
    logs = []
    again = train(flat, log=logs.append)
    assert again.steps == 3 and again.stopped == "early_stop"
    assert max(step_losses(tmp_path / "quick")) == 3
    assert any("stopped early at step 3" in x and "training.patience" in x for x in logs)
    epochs = quick(tiny_4bit, processed, tmp_path, name="epochs", epochs=1, batch_size=16,
                   max_seq_length=32, grad_accumulation_steps=1)
    done = train(epochs, log=lambda _: None)
    logs = []
    assert train(epochs, log=logs.append, iters=done.steps + 5).steps == done.steps
    assert any("already complete" in x and "raise training.epochs" in x for x in logs)


def test_the_memory_guard_sees_a_spike_between_two_samples():
    # A step's peak can come and go between the watchdog's samples (and on a Mac the Metal
    # buffers may not count in the resident size at all); MLX's own peak keeps it.
    import psutil
    from farol_train.guards import MemoryGuard

    rss = psutil.Process().memory_info().rss
    # Above the resident size, which the spike leaves again; below MLX's memory during it,
    # however much of the resident size earlier tests left outside MLX.
    fraction = (rss + 300e6) / psutil.virtual_memory().total
    spike_bytes = max(600e6, rss - mx.get_active_memory() + 600e6)
    guard = MemoryGuard(fraction)
    guard.release()  # no background sample from here on
    spike = mx.zeros((int(spike_bytes) // 4,))  # float32, freed before the check
    mx.eval(spike)
    del spike
    mx.clear_cache()
    assert guard.exceeded() is not None
    later = MemoryGuard(fraction)  # that peak came before this guard: not its run's
    later.release()
    assert later.exceeded() is None


def test_the_guard_limits_gpu_memory_on_cuda_and_ram_elsewhere():
    # On CUDA, MLX's peak is GPU memory: a limit taken from RAM would never stop a run there.
    from farol_train.guards import memory_total

    h100 = {"device_name": "NVIDIA H100 80GB HBM3", "memory_size": 85_000_000_000}
    assert memory_total("cuda", h100, 128_000_000_000) == (85_000_000_000, "GPU memory")
    assert memory_total("metal", {"memory_size": 17_179_869_184}, 17_179_869_184)[1] == "RAM"
    assert memory_total("cpu", {}, 24_000_000_000) == (24_000_000_000, "RAM")


def test_a_wrong_trainer_state_is_skipped_and_killed_saves_are_swept(reference, tmp_path):
    """A state that matches its checksum but says "step": "banana" is skipped like a corrupt
    checkpoint (it raised TypeError); staging folders of a killed save are removed at start,
    except one a live process still writes."""
    ref, config = reference
    run_dir = tmp_path / "runs" / "quick"
    shutil.copytree(ref.run_dir, run_dir)
    newest = ckpt.list_checkpoints(run_dir)[-1]
    state = json.loads((newest / ckpt.STATE_FILE).read_text())
    (newest / ckpt.STATE_FILE).write_text(json.dumps({**state, "step": "banana"}))
    manifest = {p.name: rundir.fingerprint(p) for p in newest.iterdir() if p.name != ckpt.MANIFEST}
    (newest / ckpt.MANIFEST).write_text(json.dumps(manifest))  # checksums match the bad state
    killed = run_dir / "checkpoints" / ".step-0000015.k1ll3d00"
    (killed / "new").mkdir(parents=True)
    (killed / "new" / ckpt.OPTIMIZER_FILE).write_bytes(b"\0" * 2_000_000)
    (killed / "owner.json").write_text(json.dumps({"pid": os.getpid(), "started": 1.0}))
    live = run_dir / "checkpoints" / ".step-0000016.l1ve0000"
    live.mkdir()
    me = psutil.Process()
    (live / "owner.json").write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))
    config_path = tmp_path / "run.json"
    config_path.write_text(json.dumps({**config, "runs_dir": str(tmp_path / "runs")}))

    resumed = subprocess.run([sys.executable, "-c", CLI, "run", "--config", str(config_path)],
                             cwd=tmp_path, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert ("warning: skipping checkpoint step-0000014: trainer_state.json is invalid at step: "
            "'banana' is not of type 'integer'") in resumed.stdout
    assert "resuming quick from step-0000012" in resumed.stdout
    assert ("removed 1 unfinished checkpoint save(s) left by a killed run (.step-0000015."
            "k1ll3d00): freed 2.0 MB") in resumed.stdout
    assert not killed.exists() and live.is_dir()
    np.testing.assert_allclose(step_losses(run_dir)[14], step_losses(ref.run_dir)[14], atol=1e-5)
