"""`farol-data`: parses options and calls farol_data's public functions."""

import click
from farol_core.errors import exit_on_error

from farol_data.prepare import prepare


@click.group()
def main():
    """Prepare Farol training data."""


@main.command("prepare")
@click.option("--input", "inputs", multiple=True, type=click.Path(),
              help="JSON Lines or JSON array file; repeat for several sources.")
@click.option("--biographies", type=click.Path(), default=None,
              help="Folder of player biographies (.md/.txt).")
@click.option("--out", required=True, type=click.Path(), help="Output folder.")
@click.option("--config", type=click.Path(), default=None, help="Data config (YAML or JSON).")
@click.option("--seed", type=int, default=None, help="Split seed (overrides the config).")
@exit_on_error
def prepare_cmd(inputs, biographies, out, config, seed):
    """Clean, validate, deduplicate and split the inputs into OUT."""
    result = prepare(list(inputs), out, biographies=biographies, config=config, seed=seed)
    r = result.report
    click.echo(f"read {r['read']} = kept {r['kept']} + rejected {r['rejected']} "
               f"+ duplicates {r['duplicates']}")
    click.echo("splits: " + ", ".join(f"{k} {v}" for k, v in r["splits"].items()))
    click.echo(f"wrote {result.out_dir}/{{train,valid,test,rejects}}.jsonl and report.json")
