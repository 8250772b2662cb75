"""Adapters and resumable checkpoints, written so that a crash mid-save never breaks either.

A checkpoint is a folder `runs/<name>/checkpoints/step-NNNNNNN/` holding the adapter in mlx-lm's
layout, the optimizer state, any gradient still being accumulated, `trainer_state.json` (step,
data position, RNG, counters) and `manifest.json` with the size and SHA-256 of every file. It is
built in a hidden temporary folder and renamed into place only when complete, so the newest
checkpoint either exists whole or not at all; the manifest catches what a rename cannot (a disk
that lied, a file edited by hand).
"""

import os
import shutil
from pathlib import Path

import mlx.core as mx
from farol_core.errors import FarolError, disk_full
from farol_core.io import fsync_dir, staged_dir, sweep_staged, write_json
from farol_core.rundir import (
    ADAPTER_CONFIG,
    ADAPTER_FILE,
    MANIFEST,
    OPTIMIZER_FILE,
    PENDING_FILE,
    STATE_FILE,
    Checkpoint,
    RunDir,
    fingerprint,
)
from mlx.utils import tree_flatten, tree_map_with_path, tree_unflatten


def save_adapter(model, folder: Path, adapter_config: dict) -> Path:
    """Write the trainable weights and mlx-lm's adapter_config.json into `folder`, atomically;
    a failed write (a full disk) removes its temporary file and raises FarolError."""
    tmp = folder / f".{ADAPTER_FILE}.tmp.safetensors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _save_arrays(tmp, dict(tree_flatten(model.trainable_parameters())))
        os.replace(tmp, folder / ADAPTER_FILE)
        write_json(folder / ADAPTER_CONFIG, adapter_config)
    except (OSError, RuntimeError) as e:  # mlx reports a failed write as RuntimeError
        tmp.unlink(missing_ok=True)
        raise FarolError(f"could not save the adapter in {folder}: {_why_not_saved(e)}",
                         hint="free disk space; the run's checkpoints are intact and the "
                              "same command resumes from the newest") from None
    return folder / ADAPTER_FILE


def _why_not_saved(error: Exception) -> str:
    # mlx's writer reports a full disk as a RuntimeError without errno ("Unable to write").
    if isinstance(error, OSError) and disk_full(error):
        return str(disk_full(error).message)
    if isinstance(error, RuntimeError) and "Unable to write" in str(error):
        return f"no space left on the disk, or it failed ({error})"
    return str(error)


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return RunDir(run_dir).checkpoint(step)


def save_checkpoint(run_dir: Path, model, optimizer, adapter_config: dict, state: dict,
                    pending_grad=None) -> Path:
    """Write a complete checkpoint for `state["step"]`; on any failure (a full disk) remove the
    partial folder, leave earlier checkpoints untouched, and raise FarolError."""
    final = checkpoint_dir(run_dir, state["step"])
    try:
        with staged_dir(final, force=True) as tmp:
            tmp.mkdir()
            _write_contents(tmp, model, optimizer, adapter_config, state, pending_grad)
    except (OSError, RuntimeError) as e:  # mlx reports a failed write as RuntimeError
        previous = latest_step_name(run_dir)
        raise FarolError(
            f"could not save the checkpoint for step {state['step']}: {_why_not_saved(e)}",
            hint=f"free disk space; the previous checkpoint ({previous or 'none'}) is intact "
                 "and the run resumes from it",
        ) from None
    return final


def _write_contents(folder: Path, model, optimizer, adapter_config, state, pending_grad):
    _save_arrays(folder / ADAPTER_FILE, dict(tree_flatten(model.trainable_parameters())))
    write_json(folder / ADAPTER_CONFIG, adapter_config)
    _save_arrays(folder / OPTIMIZER_FILE, dict(tree_flatten(optimizer.state)))
    if pending_grad is not None:
        _save_arrays(folder / PENDING_FILE, dict(tree_flatten(pending_grad)))
    write_json(folder / STATE_FILE, state)
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    write_json(folder / MANIFEST, {name: fingerprint(folder / name) for name in files})
    fsync_dir(folder)


def _save_arrays(path: Path, arrays: dict) -> None:
    mx.save_safetensors(str(path), arrays)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first (temporary folders excluded)."""
    return RunDir(run_dir).checkpoints()


def sweep_staging(run_dir: Path, log=print) -> int:
    """Remove `checkpoints/.step-*` folders left by a save that was killed mid-way (they can
    hold gigabytes of a 7B run) unless a live process is still writing them; says how much
    it freed and returns the bytes."""
    swept = sweep_staged(RunDir(run_dir).checkpoints_dir, ".step-*")
    freed = sum(size for _, size in swept)
    if swept:
        names = ", ".join(folder.name for folder, _ in swept)
        log(f"removed {len(swept)} unfinished checkpoint save(s) left by a killed run "
            f"({names}): freed {freed / 1e6:.1f} MB")
    return freed


def latest_step_name(run_dir: Path) -> str | None:
    return RunDir(run_dir).newest_name()


def load_latest(run_dir: Path, warn=print) -> Checkpoint | None:
    """The newest checkpoint that passes verification (see RunDir.latest)."""
    return RunDir(run_dir).latest(warn)



def restore(checkpoint: Checkpoint, model, optimizer):
    """Load adapter weights and optimizer state; returns the pending gradient (or None)."""
    model.load_weights(str(checkpoint.path / ADAPTER_FILE), strict=False)
    optimizer.state = tree_unflatten(list(mx.load(str(checkpoint.path / OPTIMIZER_FILE)).items()))
    pending = checkpoint.path / PENDING_FILE
    if not pending.is_file():
        return None
    return like_trainable(model, mx.load(str(pending)))


def like_trainable(model, flat: dict):
    """The flat (name, array) gradient `flat` in the shape of the model's trainable tree. The
    step adds it to a fresh gradient leaf by leaf, and tree_unflatten would drop the empty
    branches (a model's `layer_types` list) that the fresh one keeps."""
    return tree_map_with_path(lambda path, _: flat[path], model.trainable_parameters())


def prune(run_dir: Path, keep: int, best_step: int | None) -> None:
    """Keep the newest `keep` checkpoints and the one of the best validation loss."""
    found = list_checkpoints(run_dir)
    for folder in found[:-keep] if keep < len(found) else []:
        if best_step is None or folder != checkpoint_dir(run_dir, best_step):
            shutil.rmtree(folder, ignore_errors=True)


def save_best(model, run_dir: Path, adapter_config: dict, step: int, val_loss: float) -> None:
    """Copy the current adapter to runs/<name>/adapters/ with the step and loss it scored."""
    run = RunDir(run_dir)
    save_adapter(model, run.best_dir, adapter_config)
    try:
        write_json(run.best_file, {"step": step, "val_loss": val_loss})
    except OSError as e:
        raise FarolError(f"could not save {run.best_file}: {e}",
                         hint="free disk space; the same command resumes from the newest "
                              "checkpoint") from None
