"""The human-readable report next to report.json."""

from pathlib import Path

from farol_core.io import atomic_write_text


def write_report_md(path: Path, report: dict) -> None:
    """Counts, splits, categories and reject reasons as a short Markdown page."""
    lines = [
        "# Data preparation report",
        "",
        f"Read {report['read']} records: kept {report['kept']}, rejected {report['rejected']}, "
        f"duplicates {report['duplicates']}.",
        "",
        "| split | records |",
        "|---|---|",
        *(f"| {name} | {n} |" for name, n in report["splits"].items()),
        "",
        "| category | records |",
        "|---|---|",
        *(f"| {name} | {n} |" for name, n in report["categories"].items()),
    ]
    if report["reject_reasons"]:
        lines += ["", "| reject reason | records |", "|---|---|",
                  *(f"| {r} | {n} |" for r, n in report["reject_reasons"].items())]
    atomic_write_text(path, "\n".join(lines) + "\n")
