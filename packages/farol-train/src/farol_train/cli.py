"""`farol-train`: parses options and calls farol_train's public functions."""

import os
import sys
from pathlib import Path

import click
from farol_core.device import backend
from farol_core.errors import FarolError, exit_on_error
from farol_core.template import CHOICES

from farol_train import calibrate, distributed, launch, wizard
from farol_train.distributed import WORLD_ENV
from farol_train.fuse import fuse
from farol_train.gguf_export import TYPES as GGUF_TYPES
from farol_train.loop import train
from farol_train.preflight import _train_count, apply_profile, describe, profiles, report
from farol_train.quantize import BITS, GROUP_SIZES, quantize
from farol_train.run_config import resolve

RANK_ENTRY = "from farol_train.cli import main; main()"


@click.group()
def main():
    """Quantize base models and train QLoRA adapters."""


@main.command("quantize")
@click.option("--model", required=True, help="Hugging Face layout folder or Hub id.")
@click.option("--out", required=True, type=click.Path(), help="Output folder (MLX layout).")
@click.option("--bits", type=click.Choice([str(b) for b in BITS]), default="4",
              show_default=True)
@click.option("--group-size", type=click.Choice([str(g) for g in GROUP_SIZES]), default="64",
              show_default=True)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--template", type=click.Choice(CHOICES), default=None,
              help="Chat template written beside the model, as a run's `template`: mistral "
                   "(Farol's, the default) or model (the model's own).")
@exit_on_error
def quantize_cmd(model, out, bits, group_size, force, template):
    """Write a quantized MLX copy of MODEL to OUT."""
    path = quantize(model, out, bits=int(bits), group_size=int(group_size), force=force,
                    template=template)
    click.echo(f"quantized model: {path}")


@main.command("run")
@click.option("--config", type=click.Path(), default=None, help="Run config (YAML or JSON).")
@click.option("--model", default=None, help="Base model folder (overrides the config).")
@click.option("--data", default=None, help="Folder with train/valid.jsonl.")
@click.option("--run", "name", default=None, help="Run name: output goes to runs/<name>/.")
@click.option("--runs-dir", default=None, help="Folder that holds the runs.")
@click.option("--iters", type=click.IntRange(min=1), default=None)
@click.option("--seed", type=click.IntRange(min=0), default=None)
@click.option("--fresh", is_flag=True,
              help="Start over instead of resuming: deletes the run's checkpoints, its best "
                   "adapter (adapters/) and its logs, and says so.")
@click.option("--hosts", default=None,
              help="Distributed: comma-separated host IPs (127.0.0.1 only alone, with --np).")
@click.option("--hostfile", type=click.Path(), default=None,
              help="Distributed: mlx.launch hostfile (JSON: ssh name and IPs per host).")
@click.option("--np", "np_", type=click.IntRange(min=1), default=None,
              help="Distributed: processes per host (default 1; on this machine alone for tests).")
@click.option("--backend", type=click.Choice(["ring", "mpi", "nccl"]), default=None,
              help="Distributed backend (default: the config's distributed.backend).")
@exit_on_error
def run_cmd(config, model, data, name, runs_dir, iters, seed, fresh, hosts, hostfile, np_,
            backend):
    """Train a QLoRA adapter; an existing run resumes from its newest good checkpoint.

    With --hosts, --hostfile or --np the run is data-parallel over every rank (mlx.launch)."""
    options = dict(model=model, data=data, name=name, runs_dir=runs_dir, iters=iters, seed=seed)
    if (hosts or hostfile or np_) and WORLD_ENV not in os.environ:
        sys.exit(_launch(config, options, fresh, hosts, hostfile, np_, backend))
    result = train(config, log=click.echo, fresh=fresh, **options)
    if distributed.world_rank() == 0:  # other ranks of a distributed run report nothing
        if result.stopped != "done":
            click.echo(f"stopped ({result.stopped}) at step {result.steps}")
        click.echo(f"train {result.loss_line()}")
        click.echo(f"adapter: {result.run_dir}/adapters.safetensors")


def _launch(config, options, fresh, hosts, hostfile, np_, backend) -> int:
    """Preflight every host, then start this same command on every rank through mlx.launch."""
    cfg = resolve(config, **options)
    p = launch.plan(hosts, hostfile, np_, backend or cfg["distributed"]["backend"])
    distributed.check_batch(cfg["training"]["batch_size"], p.world_size)  # before any rank loads
    checks = launch.check_hosts(p, cfg["model"], cfg["data"])
    for c in checks:
        click.echo(f"{c.status:4} {c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else ""))
    if any(c.status == "fail" for c in checks):
        raise FarolError("preflight failed on a host; nothing was launched")
    argv = [sys.executable, "-c", RANK_ENTRY, "run"]
    argv += ["--config", str(config)] if config else []
    for key, value in options.items():
        if value is not None:
            argv += [f"--{'run' if key == 'name' else key.replace('_', '-')}", str(value)]
    hosts = ", ".join(dict.fromkeys(p.hosts))
    click.echo(f"launching {p.world_size} ranks ({p.backend}) on {hosts}")
    return launch.launch(p, argv + (["--fresh"] if fresh else []), log=click.echo)


@main.command("preflight")
@click.option("--config", type=click.Path(), default=None, help="Run config (YAML or JSON).")
@click.option("--model", default=None, help="Base model folder (overrides the config).")
@click.option("--data", default=None, help="Folder with train/valid/test.jsonl.")
@exit_on_error
def preflight_cmd(config, model, data):
    """Check versions, device, memory, disk, data and model; exit 1 on any fail."""
    if not report(resolve(config, model=model, data=data)):
        sys.exit(1)


@main.command("calibrate")
@click.option("--grid", "grid_name", type=click.Choice(list(calibrate.GRIDS)), default="tiny",
              show_default=True, help="Points to measure: tiny models (minutes on a CPU), "
                                      "the Mistral-7B shape under 9 GB (a 16 GB Mac), or the "
                                      "Mistral-7B reference settings (up to 22 GB).")
@click.option("--write", is_flag=True, help="Save the refitted coefficients for this backend.")
@click.option("--out", type=click.Path(), default=None,
              help="Calibration file to write (default: the one the memory model reads).")
@click.option("--from", "recorded", type=click.Path(exists=True, dir_okay=False), multiple=True,
              help="Refit the points these calibration files record instead of measuring "
                   "(repeatable: the fit uses every file's points).")
@click.option("--backend", "backend_name", type=click.Choice(["cpu", "cuda", "metal"]),
              default=None, help="Backend to calibrate (default: this machine's).")
@click.option("--dtype", type=click.Choice(calibrate.MEASURED_DTYPES), default=None,
              help="Measure the grid's models in this dtype (default: the grid's own: float32 "
                   "for tiny, float16 for the Mistral-7B grids).")
@click.option("--progress", type=click.Path(dir_okay=False), default=None,
              help="Keep measured points here; a run stopped midway resumes from them "
                   "(default: runs/calibrate/BACKEND-GRID-DTYPE.json).")
@click.option("--fresh", is_flag=True, help="Measure every point again, ignoring kept ones.")
@exit_on_error
def calibrate_cmd(grid_name, write, out, recorded, backend_name, dtype, progress, fresh):
    """Measure training peaks on a grid and refit the memory model for this backend."""
    here = backend()
    if backend_name not in (None, here) and not recorded:
        raise FarolError(f"this machine runs MLX on {here}; it cannot measure {backend_name}",
                         hint="measure on that machine, or refit recorded points with --from")
    target = out or (calibrate.default_file() if write else None)
    kept = progress or calibrate.progress_file("runs", here, grid_name, dtype)
    calibrate.calibrate(grid_name, backend_name or here, target, log=click.echo,
                        recorded=list(recorded), dtype=dtype,
                        progress=None if recorded else kept,
                        fresh=fresh)


@main.command("configure")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Config file to write (YAML).")
@click.option("--force", is_flag=True, help="Replace OUT without asking if it exists.")
@exit_on_error
def configure_cmd(out, force):
    """Interactive wizard: pick a profile (or custom values) and write a run config.

    Nothing is written until the last answer; Ctrl+C or end of input leaves no file."""
    if out:  # asked first, so a refusal does not come after every other answer
        _may_write(Path(out), force)
    cfg = resolve(None)
    cfg["name"] = click.prompt("run name", default=cfg["name"])
    cfg["model"] = click.prompt("base model folder", default=cfg["model"])
    cfg["data"] = click.prompt("data folder", default=cfg["data"])
    found = profiles(cfg)
    for name, p in found.items():
        click.echo(f"  {name:12} " + (describe(p) if p else "does not fit in memory"))
    for line in wizard.why_profiles_coincide(found):
        click.echo(f"  note: {line}")
    choices = [n for n, p in found.items() if p] + ["custom"]
    default = "BALANCED" if found["BALANCED"] else choices[0]
    choice = click.prompt("profile", type=click.Choice(choices), default=default)
    profile = found.get(choice) or _custom(found[default] if default != "custom" else None, cfg)
    cfg = resolve(_ask_run(apply_profile(cfg, profile)))  # validated against the schema
    warning = wizard.plan_warning(cfg, _train_count(Path(cfg["data"])))
    if warning:
        click.echo(f"warning: {warning}")
    path = Path(out) if out else \
        _may_write(Path(click.prompt("write config to", default=f"configs/{cfg['name']}.yaml")))
    wizard.write_config(cfg, path)
    click.echo(f"wrote {path}; train with: {wizard.train_command(path)}")


def _ask_run(cfg: dict) -> dict:
    """Each of wizard.QUESTIONS with its default and reason; an empty epochs keeps iters."""
    out = {**cfg, "lora": dict(cfg["lora"]), "training": dict(cfg["training"])}
    for section, key, why in wizard.QUESTIONS:
        if key == "iters" and out["training"]["epochs"]:
            continue
        click.echo(f"  {key}: {why}")
        now = out[section][key]
        answer = click.prompt(key, default="" if now is None else str(now), show_default=True)
        out[section][key] = _number(answer, key)
    return out


def _number(text: str, key: str):
    # The schema checks ranges once all answers are in; here only the kind of number.
    if key == "epochs" and not text.strip():
        return None
    try:
        return int(text) if key in ("epochs", "iters", "warmup_steps", "rank") else float(text)
    except ValueError:
        raise FarolError(f"{key}: {text!r} is not a number; nothing was written") from None


def _may_write(path: Path, force: bool = False) -> Path:
    """`path` when it is new, --force is given or the user agrees to replace it."""
    if path.exists() and not force and not click.confirm(f"{path} exists; replace it?",
                                                         default=False):
        raise FarolError(f"{path} already exists; nothing was written",
                         hint="pick another --out, or pass --force to replace it")
    return path


# The smallest value the train schema accepts for each custom setting: a lower answer is asked
# again at once instead of failing validation after the last question.
CUSTOM_MIN = {"batch_size": 1, "grad_accumulation_steps": 1, "max_seq_length": 16,
              "num_layers": 1}


def _custom(start: dict | None, cfg: dict) -> dict:
    start = start or {"batch_size": cfg["training"]["batch_size"],
                      "grad_accumulation_steps": cfg["training"]["grad_accumulation_steps"],
                      "max_seq_length": wizard.advised_max_seq_length(cfg),
                      "num_layers": cfg["lora"]["num_layers"],
                      "grad_checkpoint": cfg["training"]["grad_checkpoint"]}
    answers = {key: click.prompt(key, default=start[key], type=click.IntRange(min=low))
               for key, low in CUSTOM_MIN.items()}
    answers["grad_checkpoint"] = click.confirm("grad_checkpoint", default=start["grad_checkpoint"])
    return answers


@main.command("fuse")
@click.option("--model", required=True, help="Base model folder.")
@click.option("--adapter", required=True, help="Run folder or adapter folder.")
@click.option("--out", required=True, type=click.Path(), help="Folder for the fused model.")
@click.option("--dequantize", is_flag=True, help="Write float weights instead of quantized.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@exit_on_error
def fuse_cmd(model, adapter, out, dequantize, force):
    """Merge the adapter into the base model (mlx-lm's fuse)."""
    click.echo(f"fused model: {fuse(model, adapter, out, dequantize=dequantize, force=force)}")


@main.command("export")
@click.option("--model", required=True, help="Base model folder.")
@click.option("--adapter", required=True, help="Run folder or adapter folder.")
@click.option("--out", required=True, type=click.Path(), help="Folder for the fused model.")
@click.option("--gguf", "gguf_name", default="model.gguf", show_default=True,
              help="GGUF file name inside OUT (llama/mistral models).")
@click.option("--gguf-type", type=click.Choice(list(GGUF_TYPES)), default="f16",
              show_default=True, help="Weight type: f16, or quantized q8_0 or q4_0.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@exit_on_error
def export_cmd(model, adapter, out, gguf_name, gguf_type, force):
    """Fuse and write a GGUF file and an Ollama Modelfile (for llama.cpp, Ollama, LM Studio)."""
    folder = fuse(model, adapter, out, gguf=gguf_name, force=force, gguf_type=gguf_type)
    click.echo(f"GGUF: {(folder / gguf_name).resolve()}")
    click.echo(f"Ollama: ollama create NAME -f {(folder / 'Modelfile').resolve()}")
