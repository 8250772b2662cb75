"""Checks before a run (versions, device, memory, disk, data, model) and the three profiles.

Each check is pass, warn or fail with the fix; a fail means the run would not work. The profiles
SAFE / BALANCED / PERFORMANCE are the largest settings whose planned peak memory (the estimate of
`memory.estimate` plus the backend's safety margin, `memory.planned_peak`) fits in 50 / 70 / 90 %
of the memory budget.
"""

import platform
import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import mlx.core as mx
import psutil
from farol_core.blas import FIX as BLAS_FIX
from farol_core.blas import blas_in_use
from farol_core.blas import describe as describe_blas
from farol_core.dataset import load_split, read_messages
from farol_core.device import backend
from farol_core.errors import FarolError
from farol_core.model import load_tokenizer
from rich.console import Console
from rich.table import Table

from farol_train.calibrate import suggested_grid
from farol_train.data_order import trained_tokens
from farol_train.guards import memory_total
from farol_train.memory import (
    CALIBRATION_STATUS,
    Shape,
    estimate,
    load_calibration,
    margin,
    planned_peak,
    read_shape,
)
from farol_train.packing import real_token_share
from farol_train.wizard import advised_max_seq_length, data_advice, seq_length_warning

PROFILES = {"SAFE": 0.5, "BALANCED": 0.7, "PERFORMANCE": 0.9}
GB = 1e9
# Packing is suggested when it could save a fifth of the step: below that, the longer attention
# of packed rows eats much of the gain (docs/training.md, "When packing pays").
PACKING_WORTH = 1.25
DTYPE_NAMES = {4: "float32", 2: "16-bit float"}  # by bytes per element, as memory.Shape keeps it


@dataclass
class Check:
    """One line of the preflight table."""

    name: str
    status: str  # pass | warn | fail
    detail: str
    fix: str = ""


def memory_budget(cfg: dict) -> int:
    """Bytes a run may use: the GPU's memory on CUDA, else RAM (unified on a Mac), capped by
    training.memory_fraction, by what is available now and by Metal's working set."""
    vm = psutil.virtual_memory()
    if backend() == "cuda":
        return device_memory("cuda")
    return ram_budget(vm.total, vm.available, cfg["training"]["memory_fraction"],
                      mx.device_info())


def ram_budget(total: int, available: int, fraction: float, info: dict) -> int:
    """min(total * fraction, available), and on a Mac at most the working set Metal recommends
    (`info` is mx.device_info()): past it the GPU's buffers page, and a 16 GB M1 crawls."""
    budget = min(total * fraction, available)
    working_set = info.get("max_recommended_working_set_size")
    return int(min(budget, working_set) if working_set else budget)


def device_memory(kind: str) -> int:
    """Total bytes a `kind` backend trains in: the GPU's memory on CUDA, else RAM."""
    return memory_total(kind, mx.device_info(), psutil.virtual_memory().total)[0]


def run_checks(cfg: dict) -> list[Check]:
    """Every check for the run config `cfg` (already resolved)."""
    checks = [check_python(), *check_pins(), check_device(), check_blas(), check_ram(cfg),
              check_disk(Path(cfg["runs_dir"])), *check_data(cfg), check_seq_advice(cfg)]
    model = check_model(Path(cfg["model"]), cfg["lora"]["num_layers"])
    checks.append(model)
    if model.status != "fail":
        shape = read_shape(Path(cfg["model"]))
        checks += [check_memory_model(shape=shape), check_memory(cfg)]
        if all(c.status != "fail" for c in checks if c.name == "data train"):
            t = cfg["training"]
            examples = load_split(Path(cfg["data"]) / "train.jsonl",
                                  load_tokenizer(cfg["model"], cfg["template"]), t["mask_prompt"])
            checks += [check_lengths(examples, t["max_seq_length"]),
                       check_packing(cfg, examples)]
    return checks


def report(cfg: dict, console: Console | None = None) -> bool:
    """Print the checks as a table, then the profiles that fit; True when nothing failed."""
    console = console or Console(width=160)
    checks = run_checks(cfg)
    table = Table("check", "status")
    for name in ("detail", "fix"):  # paths wrap instead of ending in "…"
        table.add_column(name, overflow="fold")
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for c in checks:
        table.add_row(c.name, f"[{colours[c.status]}]{c.status}[/]", c.detail, c.fix)
    console.print(table)
    if any(c.name == "base model" and c.status != "fail" for c in checks):
        console.print(f"profiles plan for the estimated peak plus the {backend()} safety margin "
                      f"of {margin(backend()):.0%} (docs/training.md)")
        for name, p in profiles(cfg).items():
            console.print(f"{name:12} " + (describe(p) if p else "does not fit"))
    return not any(c.status == "fail" for c in checks)


def check_python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", "pass" if ok else "fail", platform.python_version(),
                 "" if ok else "use Python 3.11 or newer")


def check_pins() -> list[Check]:
    """Installed mlx and mlx-lm against the version ranges Farol declares."""
    pins = _declared_pins()
    out = []
    for name in ("mlx", "mlx-lm"):
        try:
            have = version(name)
        except PackageNotFoundError:
            out.append(Check(name, "fail", "not installed", "pip install -e '.[dev]'"))
            continue
        low, high = pins.get(name, (None, None))
        ok = (low is None or _v(have) >= _v(low)) and (high is None or _v(have) < _v(high))
        out.append(Check(name, "pass" if ok else "fail", f"{have} (pinned >={low},<{high})",
                         "" if ok else f"pip install '{name}>={low},<{high}'"))
    return out


def _declared_pins() -> dict[str, tuple[str | None, str | None]]:
    pins = {}
    for dist in ("farol-workspace", "farol-train"):
        try:
            lines = requires(dist) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            m = re.match(r"^(mlx-lm|mlx)(\[[^\]]*\])?\s*([^;]*)", line)
            if m:
                low = re.search(r">=\s*([\w.]+)", m.group(3))
                high = re.search(r"<\s*([\w.]+)", m.group(3))
                pins[m.group(1)] = (low and low.group(1), high and high.group(1))
        if pins:
            break
    return pins


def _v(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def check_device() -> Check:
    kind = backend()
    info = mx.device_info()
    memory = info.get("memory_size")
    detail = f"{kind}: {info.get('device_name', '?')}" + \
        (f", {memory / GB:.1f} GB" if memory else "")
    if kind == "cpu":
        return Check("device", "warn", detail, "no GPU: training works but is slow; use a Mac "
                     "with Apple Silicon or a CUDA machine for real models")
    return Check("device", "pass", detail)


def check_blas(state: dict | None = None) -> Check:
    """Which BLAS mlx's CPU matmuls use (`farol_core.blas`); on Linux the bundled reference
    BLAS is ~12x slower than OpenBLAS, so it warns with the fix."""
    state = state or blas_in_use()
    if state["blas"] == "reference" and sys.platform.startswith("linux"):
        return Check("blas", "warn", describe_blas(state),
                     f"CPU matmuls are ~12x slower than with OpenBLAS: {BLAS_FIX} "
                     f"(Debian/Ubuntu; Farol loads it by itself)")
    return Check("blas", "pass", describe_blas(state))


def check_ram(cfg: dict) -> Check:
    vm = psutil.virtual_memory()
    detail = f"{vm.total / GB:.1f} GB total, {vm.available / GB:.1f} GB available"
    if vm.available < 0.25 * vm.total:
        return Check("RAM", "warn", detail, "close other programs before training")
    return Check("RAM", "pass", detail)


def check_disk(runs_dir: Path) -> Check:
    existing = next((p for p in [runs_dir, *runs_dir.parents] if p.exists()), Path("."))
    free = psutil.disk_usage(str(existing)).free
    detail = f"{free / GB:.1f} GB free at {existing}"
    if free < 1 * GB:
        return Check("disk", "fail", detail, "free at least 1 GB for checkpoints")
    if free < 10 * GB:
        return Check("disk", "warn", detail, "checkpoints of a 7B run need a few GB")
    return Check("disk", "pass", detail)


def check_data(cfg: dict) -> list[Check]:
    """train/valid must validate (and hold a batch); test is optional (used by eval)."""
    out, data = [], Path(cfg["data"])
    for split, required in (("train", True), ("valid", True), ("test", False)):
        path = data / f"{split}.jsonl"
        if not path.is_file():
            status = "fail" if required else "warn"
            out.append(Check(f"data {split}", status, f"{path} missing",
                             "run `invoke prepare` (farol-data prepare)"))
            continue
        try:
            n = len(read_messages(path))
        except FarolError as e:
            out.append(Check(f"data {split}", "fail", e.message, "fix the line or re-run prepare"))
            continue
        out.append(_count_check(split, path, n, cfg["training"]["batch_size"]))
    return out


def _count_check(split: str, path: Path, n: int, batch_size: int) -> Check:
    # Training refuses an empty train or valid split, and a train split smaller than a batch.
    if n == 0:
        return Check(f"data {split}", "fail" if split != "test" else "warn",
                     f"{path} holds no examples", "run `invoke prepare` (farol-data prepare)")
    if split == "train" and n < batch_size:
        return Check(f"data {split}", "fail", f"{n} examples, fewer than batch_size {batch_size}",
                     "lower training.batch_size or add data")
    return Check(f"data {split}", "pass", f"{n} examples")


def check_model(model: Path, lora_layers: int) -> Check:
    if not (model / "config.json").is_file():
        return Check("base model", "fail", f"{model} not found",
                     "invoke quantize --model <hf id or folder> --out " + str(model))
    shape = read_shape(model)
    size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    amount = f"{size / GB:.2f} GB" if size >= GB / 10 else f"{size / 1e6:.1f} MB"
    kind = f"{shape.bits}-bit (group {shape.group_size})" if shape.bits else "not quantized"
    detail = f"{model}: {amount}, {kind}"
    if lora_layers > shape.layers:
        return Check("base model", "fail", f"{detail}; {shape.layers} layers",
                     f"set lora.num_layers to at most {shape.layers}")
    if not shape.bits:
        # Without --out, `invoke quantize` writes to the tiny model's folder, not beside this one.
        return Check("base model", "warn", detail, "QLoRA expects a quantized base: invoke "
                     f"quantize --model {model} --out {model}-4bit, then use that folder")
    return Check("base model", "pass", detail)


def check_lengths(examples: list, max_seq_length: int) -> Check:
    """Train examples cut at max_seq_length; a fail when none keeps an answer token, which
    the run refuses before its first step (data_order.answerable)."""
    longest = max(len(tokens) for tokens, _ in examples)
    cut = sum(len(tokens) > max_seq_length for tokens, _ in examples)
    empty = sum(trained_tokens(e, max_seq_length) == 0 for e in examples)
    detail = f"longest train example {longest} tokens, max_seq_length {max_seq_length}"
    fix = f"raise training.max_seq_length to {longest} to keep every example whole"
    if empty == len(examples):
        return Check("data lengths", "fail", f"{detail}: no example keeps an answer token", fix)
    if cut:
        return Check("data lengths", "warn", f"{detail}: {cut} of {len(examples)} are cut, "
                     f"{empty} keep no answer token", fix)
    return Check("data lengths", "pass", detail)


def check_seq_advice(cfg: dict) -> Check:
    """The config's max_seq_length against what the prepared data recommends (report.json)."""
    advice = data_advice(cfg["data"])
    if advice is None:
        return Check("max_seq_length", "pass", "no report.json with token counts to compare")
    warning = seq_length_warning(cfg)
    detail = (f"{cfg['training']['max_seq_length']}; the data recommends "
              f"{advice['recommended_max_seq_length']} (p95 {advice['p95']} tokens)")
    if warning:
        return Check("max_seq_length", "warn", warning, "set training.max_seq_length to "
                     f"{advice['recommended_max_seq_length']} (profiles below use it)")
    return Check("max_seq_length", "pass", detail)


def check_packing(cfg: dict, examples: list) -> Check:
    """How much of each step is padding, with and without sequence packing, on this data."""
    t = cfg["training"]
    share = real_token_share(examples, t["batch_size"], t["max_seq_length"])
    bound = share["packed"] / share["unpacked"]
    detail = (f"real tokens fill {share['unpacked']:.0%} of padded batches and "
              f"{share['packed']:.0%} of packed rows: packing gains at most {bound:.2f}x")
    fix = "set training.pack: true" if bound >= PACKING_WORTH and not t["pack"] else ""
    return Check("packing", "pass", detail, fix)


def check_memory_model(kind: str | None = None, shape: Shape | None = None) -> Check:
    """Whether the memory model's coefficients for this backend come from measurements on it,
    and on models of `shape`'s dtype (float16 keeps more per element than half of float32)."""
    kind = kind or backend()
    cal = load_calibration(kind)
    status = cal.get("status", "borrowed")
    detail = f"{kind} coefficients {CALIBRATION_STATUS[status]}"
    dtypes = {p["dtype_bytes"] for p in cal.get("points", [])}
    if status == "measured" and (shape is None or shape.dtype_bytes in dtypes):
        return Check("memory model", "pass", f"{detail} ({cal.get('measured_on', 'unknown')})")
    if status == "measured":
        names = " and ".join(sorted(DTYPE_NAMES[d] for d in dtypes))
        detail += f", on {names} models only; this one is {DTYPE_NAMES[shape.dtype_bytes]}"
        dtype = "float32" if shape.dtype_bytes == 4 else "float16"
        return Check("memory model", "warn", detail + ": treat the estimate below as rough",
                     f"`invoke calibrate --dtype {dtype}` shows the error on {dtype} models "
                     "(without --write it changes nothing); docs/training.md has measured ones")
    if status == "borrowed":
        detail = (f"{kind} profile memory is an estimate borrowed from "
                  f"{cal.get('borrowed_from', 'another backend')}: nothing was measured on "
                  f"{kind} yet ({CALIBRATION_STATUS[status]})")
    return Check("memory model", "warn", detail + ": treat the estimate below as rough",
                 "measure them once: "
                 f"`invoke calibrate --grid {suggested_grid(device_memory(kind))} --write`")


def check_memory(cfg: dict) -> Check:
    """The run's estimated peak against the memory budget, with a profile as the fix."""
    shape, kind = read_shape(Path(cfg["model"])), backend()
    raw = estimate(shape, cfg["lora"], cfg["training"], kind)["total"]
    need, budget = planned_peak(shape, cfg["lora"], cfg["training"], kind), memory_budget(cfg)
    detail = (f"estimated peak {raw / GB:.2f} GB + {margin(kind):.0%} safety margin = "
              f"{need / GB:.2f} GB of a {budget / GB:.1f} GB budget ({kind})")
    if need <= 0.8 * budget:
        return Check("training memory", "pass", detail)
    safe = profiles(cfg)["SAFE"]
    fix = "no setting fits: use a smaller model or a machine with more memory" if safe is None \
        else "use the SAFE profile (`farol-train configure`): " + describe(safe)
    return Check("training memory", "warn" if need <= budget else "fail", detail, fix)


def profiles(cfg: dict) -> dict[str, dict | None]:
    """SAFE / BALANCED / PERFORMANCE settings for this model and machine (None: nothing fits)."""
    shape, budget, kind = read_shape(Path(cfg["model"])), memory_budget(cfg), backend()
    found, candidates = {}, _candidates(cfg, shape.layers)
    for name, fraction in PROFILES.items():
        fits = [dict(c) for c in candidates
                if (name != "SAFE" or c["grad_checkpoint"])
                and _peak(shape, cfg, c, kind) <= fraction * budget]
        best = max(fits, key=_preference, default=None)
        if best is not None:
            best["estimated_gb"] = round(_peak(shape, cfg, best, kind) / GB, 2)
        found[name] = best
    return found


def _candidates(cfg: dict, model_layers: int) -> list[dict]:
    # Batches divide the configured effective batch, so accumulation keeps it exactly (the
    # learning rate was tuned for it), and hold no more than the train split has.
    effective = cfg["training"]["batch_size"] * cfg["training"]["grad_accumulation_steps"]
    most = _train_count(Path(cfg["data"])) or effective
    batches = [b for b in (1, 2, 4, 8) if effective % b == 0 and b <= max(most, 1)]
    seq_max = advised_max_seq_length(cfg)  # what the prepared data needs, when it says
    seqs = sorted({s for s in (256, 512, 1024, 2048) if s < seq_max} | {seq_max})
    layers = sorted({n for n in (4, 8, 16, 32) if n < model_layers} | {model_layers})
    return [{"batch_size": b, "grad_accumulation_steps": effective // b, "max_seq_length": s,
             "num_layers": n, "grad_checkpoint": g}
            for b in batches for s in seqs for n in layers for g in (True, False)]


def _train_count(data: Path) -> int | None:
    """Examples in the train split, or None when it cannot be read (the wizard may run first)."""
    try:
        return len(read_messages(data / "train.jsonl"))
    except (FarolError, OSError):
        return None


def _preference(c: dict) -> tuple:
    # Longer sequences first (they decide what data fits), then adapted depth up to 16 layers,
    # then batch, then speed (no recomputation).
    return (c["max_seq_length"], min(c["num_layers"], 16), c["batch_size"],
            not c["grad_checkpoint"], c["num_layers"])


def _peak(shape, cfg: dict, c: dict, kind: str) -> int:
    lora = {**cfg["lora"], "num_layers": c["num_layers"]}
    # The accumulation counts too: a pending gradient is one more copy of the LoRA state.
    training = {**cfg["training"], **{k: c[k] for k in ("batch_size", "grad_accumulation_steps",
                                                        "max_seq_length", "grad_checkpoint")}}
    return planned_peak(shape, lora, training, kind)


def describe(p: dict) -> str:
    return (f"batch {p['batch_size']} x accumulation {p['grad_accumulation_steps']}, "
            f"{p['max_seq_length']} tokens, {p['num_layers']} LoRA layers, grad checkpoint "
            f"{'on' if p['grad_checkpoint'] else 'off'} (~{p['estimated_gb']} GB)")


def apply_profile(cfg: dict, profile: dict) -> dict:
    """`cfg` with a profile's settings written into its lora and training sections."""
    out = {**cfg, "lora": {**cfg["lora"], "num_layers": profile["num_layers"]},
           "training": dict(cfg["training"])}
    for key in ("batch_size", "grad_accumulation_steps", "max_seq_length", "grad_checkpoint"):
        out["training"][key] = profile[key]
    return out
