"""`farol-eval`: parses options and calls farol_eval's public functions."""

from pathlib import Path

import click
from farol_core.errors import exit_on_error

from farol_eval.evaluate import evaluate
from farol_eval.monitor import monitor
from farol_eval.plots import plot
from farol_eval.report import summary_lines
from farol_eval.summary import summarize, write_html
from farol_eval.summary import summary_lines as run_summary_lines


def run_path(run: str) -> Path:
    """A run folder given as a path, or as a bare name under runs/."""
    path = Path(run)
    return path if path.is_dir() or len(path.parts) > 1 else Path("runs") / run


@click.group()
def main():
    """Evaluate base and tuned models on held-out data, chart runs and watch training."""


@main.command("run")
@click.option("--run", "run_dir", default=None,
              help="Run folder or name under runs/; its config gives model, data and adapter.")
@click.option("--model", default=None, help="Base model folder.")
@click.option("--adapter-path", default=None, help="Adapter folder (default: the run).")
@click.option("--base-only", is_flag=True, help="Evaluate the base model alone.")
@click.option("--data", default=None, help="Folder with valid/test.jsonl.")
@click.option("--questions", type=click.IntRange(min=-1), default=None,
              help="Test questions to answer and score (-1: all).")
@click.option("--samples", type=click.IntRange(min=0), default=None,
              help="Answers printed in the summary.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None)
@click.option("--temperature", type=click.FloatRange(min=0), default=None,
              help="0 (the default) decodes greedily.")
@click.option("--accent-folding/--no-accent-folding", default=None,
              help="Compare answers with accents removed.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Bootstrap seed.")
@click.option("--out", type=click.Path(), default=None, help="Report folder.")
@exit_on_error
def run_cmd(run_dir, model, adapter_path, base_only, data, questions, samples, max_tokens,
            temperature, accent_folding, seed, out):
    """Loss, perplexity and answer metrics, base against tuned, with confidence intervals."""
    run_dir = run_path(run_dir) if run_dir else None
    report = evaluate(run_dir, model=model, adapter=adapter_path, data=data, samples=samples,
                      max_tokens=max_tokens, out=out, base_only=base_only,
                      log=lambda m: click.echo(m, err=True), questions=questions,
                      temperature=temperature, accent_folding=accent_folding, seed=seed)
    for line in summary_lines(report):
        click.echo(line)


@main.command("plot")
@click.argument("run")
@click.option("--out", type=click.Path(), default=None,
              help="Chart folder (default: runs/<name>/eval/plots).")
@exit_on_error
def plot_cmd(run, out):
    """PNG charts from a run's metrics.jsonl and eval report."""
    for path in plot(run_path(run), out, log=lambda m: click.echo(m, err=True)):
        click.echo(str(path))


@main.command("monitor")
@click.argument("run")
@click.option("--refresh", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds between redraws.")
@click.option("--once", is_flag=True, help="Draw once and exit.")
@click.option("--max-updates", type=click.IntRange(min=1), default=None,
              help="Exit after this many redraws.")
@exit_on_error
def monitor_cmd(run, refresh, once, max_updates):
    """Follow a training run live: latest values, loss sparkline, ETA, memory. Ctrl+C exits."""
    monitor(run_path(run), refresh=refresh, max_updates=1 if once else max_updates)


@main.command("summary")
@click.option("--run", "run", required=True, help="Run folder or name under runs/.")
@click.option("--no-html", is_flag=True, help="Print only; do not write summary.html.")
@exit_on_error
def summary_cmd(run, no_html):
    """The run's facts: duration, losses, improvement, overfitting check, checkpoints,
    base against tuned; also writes runs/<name>/summary.html with the charts embedded."""
    facts = summarize(run_path(run))
    for line in run_summary_lines(facts):
        click.echo(line)
    if not no_html:
        click.echo(f"summary: {write_html(run_path(run), facts, log=lambda m: None)}")
