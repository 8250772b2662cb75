"""`farol-data`: parses options and calls farol_data's public functions."""

import click
from farol_core.errors import exit_on_error

from farol_data.console import prepare_with_console


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
@click.option("--tokenizer", type=click.Path(), default=None,
              help="Base model folder: its tokenizer measures token lengths.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Split and sampling seed (overrides the config).")
@exit_on_error
def prepare_cmd(inputs, biographies, out, config, tokenizer, seed):
    """Repair, validate, deduplicate, balance, analyse and split the inputs into OUT."""
    prepare_with_console(list(inputs), out, biographies=biographies, config=config,
                         tokenizer=tokenizer, seed=seed)
