"""What a person sees while preparing: a progress bar on large inputs, a summary table after."""

import json
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from farol_data.prepare import PrepareResult, prepare
from farol_data.sources import input_size

# Inputs below this size finish in about a second, where a bar would only flicker.
LARGE_INPUT_BYTES = 5_000_000


def prepare_with_console(inputs: list, out_dir, console: Console | None = None,
                         **options) -> PrepareResult:
    """`prepare(inputs, out_dir, **options)` with a progress bar when the inputs are large, then
    the summary table printed to `console`."""
    console = console or Console()
    held = previous_contents(Path(out_dir))
    total = input_size(inputs)
    if total < LARGE_INPUT_BYTES:
        result = prepare(inputs, out_dir, **options)
    else:
        columns = (TextColumn("reading"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("read", total=total)
            result = prepare(inputs, out_dir, progress=lambda n: bar.advance(task, n), **options)
    if held:
        console.print(f"replaced {out_dir}: it held {held}", soft_wrap=True)
    console.print(summary_table(result.report, result.out_dir))
    return result


def previous_contents(out_dir: Path) -> str | None:
    """What an earlier prepare left in `out_dir` ("train 120, valid 15, test 15, prepared
    2026-05-01 10:12"), or None when there is none."""
    path = out_dir / "report.json"
    try:
        splits = json.loads(path.read_text(encoding="utf-8"))["splits"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    when = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return ", ".join(f"{k} {v}" for k, v in splits.items()) + f", prepared {when}"


def summary_table(report: dict, out_dir: Path) -> Table:
    """read = kept + rejected + duplicates, splits, diversity and tokens, in one short table."""
    table = Table(title="farol-data prepare", show_header=False)
    table.add_column()
    table.add_column(overflow="fold")  # a long output path wraps instead of ending in "…"
    table.add_row("read", f"{report['read']} = kept {report['kept']} + rejected "
                          f"{report['rejected']} + duplicates {report['duplicates']}")
    table.add_row("duplicates", f"{report['exact_duplicates']} exact, "
                                f"{report['near_duplicates']} near")
    if report["capped"]:
        table.add_row("over category cap", f"{report['capped']} (in rejects.jsonl)")
    if report["repaired"]:
        table.add_row("text repaired", ", ".join(f"{k} {v}" for k, v in report["repaired"].items())
                      + " (records)")
    table.add_row("splits", ", ".join(f"{k} {v}" for k, v in report["splits"].items()))
    fw = report["diversity"]["first_word"]
    flag = " [bold red]above the limit[/]" if fw["flagged"] else ""
    table.add_row("top first word", f"'{fw['word']}' {fw['share']:.0%}{flag}")
    t = report["tokens"]
    if t is None:
        table.add_row("tokens", "not measured (pass --tokenizer)")
    else:
        table.add_row("tokens", f"p50 {t['p50']:.0f}, p95 {t['p95']:.0f}, max {t['max']}, "
                                f"{t['over_limit']} over {t['limit']}")
        table.add_row("counted with", f"the tokenizer of {report['tokenizer']}")
        table.add_row("max_seq_length", f"recommended {t['recommended_max_seq_length']}")
    table.add_row("wrote", f"{out_dir}/")
    return table
