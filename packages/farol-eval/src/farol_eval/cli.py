"""`farol-eval`: parses options and calls farol_eval's public functions."""

import click
from farol_core.errors import exit_on_error

from farol_eval.evaluate import evaluate, summary_lines


@click.group()
def main():
    """Evaluate base and tuned models on held-out data."""


@main.command("run")
@click.option("--run", "run_dir", type=click.Path(), default=None,
              help="Run folder (runs/<name>); its config gives model, data and adapter.")
@click.option("--model", default=None, help="Base model folder.")
@click.option("--adapter-path", default=None, help="Adapter folder (default: the run).")
@click.option("--data", default=None, help="Folder with valid/test.jsonl.")
@click.option("--samples", type=click.IntRange(min=0), default=None,
              help="Test questions to answer and show.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--out", type=click.Path(), default=None, help="Report folder.")
@exit_on_error
def run_cmd(run_dir, model, adapter_path, data, samples, max_tokens, out):
    """Loss, perplexity and sample answers, base against tuned."""
    report = evaluate(run_dir, model=model, adapter=adapter_path, data=data, samples=samples,
                      max_tokens=max_tokens, out=out, log=lambda m: click.echo(m, err=True))
    for line in summary_lines(report):
        click.echo(line)
