"""`farol-train`: parses options and calls farol_train's public functions."""

import click
from farol_core.errors import exit_on_error

from farol_train.loop import train
from farol_train.quantize import quantize


@click.group()
def main():
    """Quantize base models and train QLoRA adapters."""


@main.command("quantize")
@click.option("--model", required=True, help="Hugging Face layout folder or Hub id.")
@click.option("--out", required=True, type=click.Path(), help="Output folder (MLX layout).")
@click.option("--bits", type=click.IntRange(2, 8), default=4, show_default=True)
@click.option("--group-size", type=click.Choice(["32", "64", "128"]), default="64",
              show_default=True)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@exit_on_error
def quantize_cmd(model, out, bits, group_size, force):
    """Write a quantized MLX copy of MODEL to OUT."""
    path = quantize(model, out, bits=bits, group_size=int(group_size), force=force)
    click.echo(f"quantized model: {path}")


@main.command("run")
@click.option("--config", type=click.Path(), default=None, help="Run config (YAML or JSON).")
@click.option("--model", default=None, help="Base model folder (overrides the config).")
@click.option("--data", default=None, help="Folder with train/valid.jsonl.")
@click.option("--run", "name", default=None, help="Run name: output goes to runs/<name>/.")
@click.option("--runs-dir", default=None, help="Folder that holds the runs.")
@click.option("--iters", type=click.IntRange(min=1), default=None)
@click.option("--seed", type=click.IntRange(min=0), default=None)
@click.option("--fresh", is_flag=True, help="Start over instead of resuming the run's checkpoint.")
@exit_on_error
def run_cmd(config, model, data, name, runs_dir, iters, seed, fresh):
    """Train a QLoRA adapter; an existing run resumes from its newest good checkpoint."""
    result = train(config, log=click.echo, fresh=fresh, model=model, data=data, name=name,
                   runs_dir=runs_dir, iters=iters, seed=seed)
    if result.stopped != "done":
        click.echo(f"stopped ({result.stopped}) at step {result.steps}")
    click.echo(f"train loss {result.first_loss:.3f} -> {result.last_loss:.3f}"
               + (f", val loss {result.val_loss:.3f}" if result.val_loss is not None else ""))
    click.echo(f"adapter: {result.run_dir}/adapters.safetensors")
