"""Calibrate the memory model: measure real training peaks on a grid, fit the coefficients.

Each point of a grid is a model shape and a training setting. `measure` trains two steps of
each in a fresh process (`memory.measure_peak`); `fit` finds the activation and logits
coefficients that make `memory.estimate` closest to those peaks in relative error; `save` writes
them, with the points they were fitted on, into a calibration file under the device's backend.

For a given `checkpointed_block` (how many blocks' activations gradient checkpointing holds at
once during recomputation) the estimate is linear in the other coefficients, so the fit is one
linear least-squares solve per value of it on a scan, keeping the best.
"""

import json
import math
import platform
from dataclasses import asdict, astuple, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
from farol_core import shapes
from farol_core.device import facts
from farol_core.errors import FarolError
from farol_core.io import atomic_write_text

from farol_train.memory import (
    DTYPE_BYTES,
    Shape,
    estimate,
    load_calibration,
    measure_peak,
    shape_from_config,
)

LINEAR = ("hidden", "intermediate", "attention", "attention_transient", "logits",
          "overhead_bytes", "large_step_bytes_per_token", "row_bytes")
FITTED = (*LINEAR, "checkpointed_block")
MEASURED_DTYPES = ("float32", "float16")  # what memory._measure_here builds
CHECKPOINTED_SCAN = [i / 20 for i in range(81)]  # 0 to 4 blocks' activations, in twentieths
WORST_UNDERESTIMATE = 0.05  # what the safety margin allows at any measured point, left out or not


@dataclass
class Point:
    """One grid point: a shape and a training setting, and its peak bytes once measured."""

    shape: Shape
    lora_layers: int
    batch: int
    seq: int
    checkpoint: bool
    measured: int | None = None
    source: str = ""  # where the peak was measured (see `machine`), or the figures it came from

    @property
    def lora(self) -> dict:
        return {"num_layers": self.lora_layers, "rank": 8}

    @property
    def training(self) -> dict:
        return {"batch_size": self.batch, "max_seq_length": self.seq,
                "grad_checkpoint": self.checkpoint}

    def label(self) -> str:
        s = self.shape
        return (f"{s.hidden}/{s.layers}/{s.intermediate}/{s.vocab} lora {self.lora_layers} "
                f"{self.batch}x{self.seq}{' ckpt' if self.checkpoint else ''}")


def _tiny(h, layers, mlp, heads, head_dim, vocab) -> Shape:
    return Shape(h, layers, mlp, heads, 2, head_dim, vocab, dtype_bytes=4, bits=4, group_size=64)


_T = [_tiny(128, 4, 256, 4, 32, 1024), _tiny(256, 4, 512, 4, 64, 2048),
      _tiny(256, 4, 896, 4, 64, 1536), _tiny(384, 3, 640, 6, 64, 1024),
      _tiny(512, 6, 1024, 8, 64, 4096), _tiny(512, 2, 1024, 16, 32, 1024),
      _tiny(256, 3, 512, 16, 16, 1024)]
MISTRAL_7B = shape_from_config({**shapes.MISTRAL_7B, "vocab_size": shapes.MISTRAL_7B_VOCAB,
                                "torch_dtype": "float16",
                                "quantization": {"bits": 4, "group_size": 64}})

GRIDS = {
    # Small random models in float32: seconds per point on a CPU.
    "tiny": [Point(_T[0], 2, 2, 64, False), Point(_T[0], 4, 8, 128, False),
             Point(_T[0], 4, 4, 256, True), Point(_T[1], 2, 2, 96, False),
             Point(_T[1], 4, 4, 192, False), Point(_T[1], 4, 2, 256, True),
             Point(_T[2], 3, 1, 192, True), Point(_T[2], 2, 8, 64, False),
             Point(_T[2], 4, 2, 128, False), Point(_T[3], 3, 2, 64, False),
             Point(_T[3], 3, 4, 128, True), Point(_T[3], 2, 1, 256, False),
             Point(_T[4], 4, 2, 128, False), Point(_T[4], 6, 1, 256, True),
             Point(_T[4], 2, 4, 64, False),
             # Many heads and long rows, where one block's attention scores weigh most.
             Point(_T[5], 2, 1, 512, False), Point(_T[5], 2, 2, 512, True),
             Point(_T[5], 1, 1, 1024, False), Point(_T[6], 3, 2, 384, False),
             Point(_T[6], 3, 1, 768, True)],
    # The Mistral-7B-v0.1 shape in 4 bits, at settings whose peaks stay under about 9 GB, so a
    # 16 GB Mac can measure them. These are the points that matter there: coefficients fitted on
    # the tiny models underestimate the 7B reference peaks by 18% to 70% (docs/training.md).
    "mistral-7b-16gb": [Point(MISTRAL_7B, 16, 2, 512, True), Point(MISTRAL_7B, 32, 2, 512, True),
                        Point(MISTRAL_7B, 8, 1, 512, False), Point(MISTRAL_7B, 16, 1, 1024, True),
                        Point(MISTRAL_7B, 4, 2, 256, False), Point(MISTRAL_7B, 32, 1, 256, False),
                        Point(MISTRAL_7B, 4, 1, 1024, False), Point(MISTRAL_7B, 8, 4, 256, True)],
    # The settings of the H100 reference figures (shared/gpu/README.md): up to 22 GB.
    "mistral-7b": [Point(MISTRAL_7B, 16, 2, 512, False), Point(MISTRAL_7B, 16, 2, 512, True),
                   Point(MISTRAL_7B, 8, 2, 512, False), Point(MISTRAL_7B, 32, 1, 512, False),
                   Point(MISTRAL_7B, 32, 2, 512, True), Point(MISTRAL_7B, 16, 4, 512, True),
                   Point(MISTRAL_7B, 16, 1, 2048, True)],
}


def calibrate(grid_name: str, backend: str, out: str | Path | None = None, log=print,
              recorded: str | Path | list[str | Path] | None = None, dtype: str | None = None,
              progress: str | Path | None = None, fresh: bool = False) -> dict:
    """Measure a grid on this machine (its models in `dtype` when given), or take the points
    `recorded` for `backend` in one or more calibration files; show the estimate's error with
    `backend`'s current coefficients, refitted in-sample and left out (`leave_one_out`), and
    save the refit with its safety margin to `out` when given.
    With a `progress` file, measured points are kept there as they come (see `measure`);
    `fresh` drops the ones it holds first."""
    current = load_calibration(backend)
    if isinstance(recorded, str | Path):
        recorded = [recorded]
    if fresh and progress is not None:
        Path(progress).unlink(missing_ok=True)
    if recorded:
        points = [p for path in recorded for p in recorded_points(path, backend)]
        log(f"refitting {len(points)} points recorded for {backend} in "
            + ", ".join(str(r) for r in recorded))
    else:
        points = _measure_grid(grid_name, backend, dtype, progress, log)
    refit = fit(points, current)
    refit["margin"] = _report(points, current, refit, backend, log)
    if out is not None:
        # A refit of recorded points keeps where they came from; a measurement is this machine's.
        was = _entry(recorded[0], backend) if recorded else \
            {"measured_on": machine(), "status": "measured"}
        save(out, backend, refit, points, _measured_on(points, was),
             was.get("status", "measured"))
        log(f"saved the {backend} calibration, margin {refit['margin']:.0%}, to {out}")
    return refit


def _measure_grid(grid_name, backend, dtype, progress, log) -> list[Point]:
    points = grid(grid_name, dtype)
    log(f"measuring {len(points)} points of the {grid_name} grid"
        f"{f' in {dtype}' if dtype else ''} on {backend}, one process "
        "each (hidden/layers/MLP/vocab, LoRA layers, batch x tokens)")
    if progress is not None:
        log(f"measured points are kept in {progress}: a stopped run resumes from them "
            "(--fresh measures all again)")
    return measure(points, lambda p, kept: log(f"  {p.label():42} {p.measured / 1e6:10.1f} MB"
                                               f"{'  (kept from an earlier run)' if kept else ''}"),
                   progress, backend)


def _measured_on(points: list[Point], was: dict) -> str:
    sources = sorted({p.source for p in points if p.source})
    if len(sources) > 1:
        return f"{len(sources)} sources, named on each point: " + "; ".join(sources)
    return was.get("measured_on", "not recorded")


def _report(points: list[Point], current: dict, refit: dict, backend: str, log) -> float:
    """The table of errors (now, refit, left out) and the summary; returns the safety margin."""
    now, new, loo = errors(points, current), errors(points, refit), leave_one_out(points, current)
    log(f"{'point':44} {'measured':>10} {'now':>7} {'refit':>7} {'left out':>9}")
    for p, a, b, c in zip(points, now, new, loo, strict=True):
        log(f"  {p.label():42} {p.measured / 1e6:7.1f} MB {a:+7.1%} {b:+7.1%} {c:+9.1%}")
    worst = {name: max(abs(e) for e in errs) for name, errs in
             (("now", now), ("refit", new), ("loo", loo))}
    margin = safety_margin(new, loo)
    log(f"largest error: {worst['now']:.1%} with the current {backend} coefficients, "
        f"{worst['refit']:.1%} refitted, {worst['loo']:.1%} left out: "
        + ", ".join(f"{k} {refit[k]}" for k in FITTED if k in refit))
    log(f"safety margin {margin:.0%}: after it no point is underestimated by more than "
        f"{WORST_UNDERESTIMATE:.0%}, in-sample or left out (worst left-out underestimate "
        f"{min(loo):+.1%})")
    return margin


def suggested_grid(memory_bytes: int) -> str:
    """The largest grid a machine with `memory_bytes` of (GPU or unified) memory can measure:
    the 7B points peak at 22 GB, or 9 GB for the 16 GB grid."""
    if memory_bytes >= 32e9:
        return "mistral-7b"
    return "mistral-7b-16gb" if memory_bytes >= 15e9 else "tiny"


def grid(name: str, dtype: str | None = None) -> list[Point]:
    """Fresh, unmeasured copies of a named grid, with its models in `dtype` (float32 or float16)
    when given instead of the grid's own."""
    if name not in GRIDS:
        raise FarolError(f"no calibration grid {name!r}", hint=f"known: {', '.join(GRIDS)}")
    if dtype not in (None, *MEASURED_DTYPES):
        raise FarolError(f"cannot measure in {dtype!r}", hint=f"use {' or '.join(MEASURED_DTYPES)}")
    size = {} if dtype is None else {"dtype_bytes": DTYPE_BYTES[dtype]}
    return [Point(replace(p.shape, **size), p.lora_layers, p.batch, p.seq, p.checkpoint)
            for p in GRIDS[name]]


def measure(points: list[Point], on_point=None, progress: str | Path | None = None,
            backend: str = "") -> list[Point]:
    """Measure each point's peak in its own process; `on_point(point, kept)` after each.

    With a `progress` file (a calibration file's layout under `backend`), the points it holds
    from this same machine and mlx are kept rather than measured again, and each new point is
    added to it as soon as it is measured: an interrupted grid resumes where it stopped, and
    `--from` can refit what it holds."""
    done = _kept_points(progress, backend) if progress is not None else {}
    for point in points:
        point.measured = done.get(_key(point))
        if point.measured is None:
            point.measured = measure_peak(point.shape, point.lora, point.training)
            point.source = machine()
            if progress is not None:
                _keep_points(progress, backend, [p for p in points if p.measured is not None])
        if on_point is not None:
            on_point(point, _key(point) in done)
    return points


def progress_file(runs_dir: str | Path, backend: str, grid_name: str,
                  dtype: str | None = None) -> Path:
    """Where a grid's measured points are kept while it runs: `<runs_dir>/calibrate/`."""
    return Path(runs_dir) / "calibrate" / f"{backend}-{grid_name}-{dtype or 'own'}.json"


def _key(point: Point) -> tuple:
    return astuple(point.shape), point.lora_layers, point.batch, point.seq, point.checkpoint


def _kept_points(path: str | Path, backend: str) -> dict:
    # Peaks measured under another mlx or on another device are not this machine's.
    if not Path(path).is_file() or _entry(path, backend).get("measured_on") != machine():
        return {}
    return {_key(p): p.measured for p in recorded_points(path, backend)}


def _keep_points(path: str | Path, backend: str, points: list[Point]) -> None:
    entry = {"status": "measured", "measured_on": machine(), "points": _rows(points)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(path), json.dumps({backend: entry}, indent=2) + "\n")


def _rows(points: list[Point]) -> list[dict]:
    return [{**asdict(p.shape), "lora_layers": p.lora_layers, "batch": p.batch, "seq": p.seq,
             "checkpoint": p.checkpoint, "measured": p.measured, "source": p.source}
            for p in points]


def fit(points: list[Point], base: dict) -> dict:
    """`base` calibration with its FITTED coefficients and `overhead_bytes` refitted to the
    measured `points`, by least squares on relative error."""
    directions = _directions(points, base)
    if len(points) < len(directions) + 2:
        raise FarolError(f"the fit needs at least {len(directions) + 2} measured points, got "
                         f"{len(points)}")
    # Coarse to fine: quarters of a block first, then twentieths around the best quarter.
    best = _best_of(points, base, directions, CHECKPOINTED_SCAN[::5])
    near = [g for g in CHECKPOINTED_SCAN if abs(g - best["checkpointed_block"]) < 0.25]
    return _best_of(points, base, directions, near)


def _best_of(points: list[Point], base: dict, directions: list[dict], scan: list[float]) -> dict:
    fits = [_fit_non_negative(points, base, directions, g) for g in scan]
    return min(fits, key=lambda cal: sum(e * e for e in errors(points, cal)))


def _fit_non_negative(points: list[Point], base: dict, directions: list[dict],
                      checkpointed_block: float) -> dict:
    # A negative coefficient fits noise, not memory: set it to zero and refit the rest.
    while True:
        fitted = _fit_linear(points, base, directions, checkpointed_block)
        negative = [d for d in directions if any(fitted[k] < 0 for k in d)]
        if not negative:
            return fitted
        directions = [d for d in directions if d not in negative]
        base = {**base, **{k: 0.0 for d in negative for k in d}}


def _directions(points: list[Point], base: dict) -> list[dict]:
    # A term no point exercises (the jump past large_step_tokens, say) keeps base's value.
    used = [k for k in LINEAR if _exercised(points, base, k)]
    if len({astuple(p.shape) for p in points}) > 1:
        return [{k: 1.0} for k in used]
    # Points of one shape cannot tell the hidden-width term from the MLP-width term (both grow
    # with tokens x layers alike): fit them as one, in base's proportion.
    width = {"hidden": base["hidden"], "intermediate": base["intermediate"]} \
        if base["hidden"] + base["intermediate"] > 0 else {"hidden": 1.0, "intermediate": 0.8}
    return [width,
            *({k: 1.0} for k in used if k not in ("hidden", "intermediate"))]


def _exercised(points: list[Point], base: dict, key: str) -> bool:
    return any(_total(p, {**base, key: 1.0}) != _total(p, {**base, key: 0.0}) for p in points)


def _fit_linear(points: list[Point], base: dict, directions: list[dict],
                checkpointed_block: float) -> dict:
    # With checkpointed_block fixed, the estimate is linear in the other coefficients: probe
    # each direction alone and solve for all of them at once.
    zero = {**base, **{k: 0.0 for d in directions for k in d},
            "checkpointed_block": checkpointed_block}
    if not directions:
        return zero
    rows, rhs = [], []
    for p in points:
        fixed = _total(p, zero)
        rows.append([(_total(p, {**zero, **d}) - fixed) / p.measured for d in directions])
        rhs.append((p.measured - fixed) / p.measured)
    weights = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    fitted = dict(zero)
    for w, d in zip(weights, directions, strict=True):
        for k, v in d.items():
            fitted[k] = round(fitted[k] + float(w) * v, 4)
    fitted["overhead_bytes"] = round(fitted["overhead_bytes"])
    return fitted


def errors(points: list[Point], calibration: dict) -> list[float]:
    """Relative error of the estimate at each measured point: (estimate - measured) / measured."""
    return [(_total(p, calibration) - p.measured) / p.measured for p in points]


def leave_one_out(points: list[Point], base: dict) -> list[float]:
    """Out-of-sample error at each point: refit without it (from `base`), then predict it."""
    return [errors([p], fit(points[:i] + points[i + 1:], base))[0]
            for i, p in enumerate(points)]


def safety_margin(*error_lists: list[float]) -> float:
    """The smallest margin, in whole percent, after which no error in `error_lists` is an
    underestimate by more than WORST_UNDERESTIMATE: (1 + e) * (1 + margin) >= 0.95."""
    worst = min(min(e) for e in error_lists)
    need = (1 - WORST_UNDERESTIMATE) / (1 + worst) - 1
    return max(0.0, math.ceil(round(need * 100, 6)) / 100)


_TOTALS: dict = {}


def _total(point: Point, calibration: dict) -> int:
    # Leave-one-out refits probe the same points with the same coefficients again and again.
    key = (_key(point), tuple(sorted((k, v) for k, v in calibration.items()
                                     if isinstance(v, int | float))))
    if key not in _TOTALS:
        if len(_TOTALS) > 500_000:
            _TOTALS.clear()
        _TOTALS[key] = estimate(point.shape, point.lora, point.training,
                                calibration=calibration)["total"]
    return _TOTALS[key]


def recorded_points(path: str | Path, backend: str) -> list[Point]:
    """The measured points a calibration file records for `backend` (see `save`)."""
    rows = _entry(path, backend).get("points")
    if not rows:
        raise FarolError(f"{path} records no measured points for {backend}",
                         hint="measure them with `farol-train calibrate`")
    fields = ("lora_layers", "batch", "seq", "checkpoint", "measured")
    # Points written before sources were kept take the file's `measured_on` line.
    where = _entry(path, backend).get("measured_on", "not recorded")
    return [Point(Shape(**{k: v for k, v in r.items() if k not in (*fields, "source")}),
                  **{k: r[k] for k in fields}, source=r.get("source") or where) for r in rows]


def _entry(path: str | Path, backend: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8")).get(backend, {})


def machine() -> str:
    """This machine in a line: the mlx version, the device and the OS."""
    f = facts()
    return f"mlx {f['mlx']} on {f['device_name'] or f['device']} ({platform.system()})"


def default_file() -> Path:
    """The calibration file the memory model reads (inside the farol_train package)."""
    return Path(str(resources.files("farol_train").joinpath("memory_calibration.json")))


def save(path: str | Path, backend: str, calibration: dict, points: list[Point],
         measured_on: str, status: str = "measured") -> None:
    """Write `calibration` for `backend` into the calibration file at `path`, atomically,
    keeping the other backends, with its `status` (see `memory.CALIBRATION_STATUS`), a source
    line, where the points were measured (`measured_on`, see `machine`) and the points."""
    path = Path(path)
    table = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    worst = max(abs(e) for e in errors(points, calibration))
    entry = {k: v for k, v in calibration.items()
             if k not in ("status", "source", "measured_on", "points")}
    entry["status"] = status
    entry["source"] = (f"fitted by farol_train.calibrate to mx.get_peak_memory() of 2 training "
                       f"steps, one point per process, {len(points)} points; largest error "
                       f"{worst:.1%} in-sample; safety margin {entry.get('margin', 0):.0%}")
    entry["measured_on"] = measured_on
    entry["points"] = _rows(points)
    table[backend] = entry
    atomic_write_text(path, json.dumps(table, indent=2) + "\n")
