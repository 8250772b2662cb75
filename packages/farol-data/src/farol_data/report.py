"""report.json (checked against the shipped schema), report.md, and the output files."""

import contextlib
import json
from collections import Counter
from importlib import resources
from pathlib import Path

from farol_core.config import validate
from farol_core.errors import FarolError
from farol_core.io import atomic_file

from farol_data import analysis


def load_report_schema() -> dict:
    """The shipped JSON Schema of report.json."""
    text = resources.files("farol_data.schemas").joinpath("report.schema.json").read_text()
    return json.loads(text)


def build_report(cfg: dict, tally, kept: list[dict], capped: int, splits: dict, tokenizer,
                 tokenizer_path: str | None) -> dict:
    """Counts, duplicates, diversity and token analysis of one preparation run."""
    kinds = Counter(d["kind"] for d in tally.duplicates)
    records = (tally.records.get(e["offset"]) for e in kept)
    return {
        "read": len(kept) + tally.rejects.count + len(tally.duplicates),
        "kept": len(kept),
        "rejected": tally.rejects.count,
        "duplicates": len(tally.duplicates),
        "exact_duplicates": kinds["exact"],
        "near_duplicates": kinds["near"],
        "capped": capped,
        "splits": {name: len(entries) for name, entries in splits.items()},
        "groups": {name: len({e["group"] for e in entries}) for name, entries in splits.items()},
        "formats": dict(Counter(e["format"] for e in kept)),  # after the category cap
        "categories": dict(Counter(e["category"] for e in kept).most_common()),
        "reject_reasons": _reason_counts(tally.reasons),
        "repaired": dict(tally.repairs.most_common()),
        "duplicate_of": tally.duplicates,
        **analysis.analyse(records, tokenizer, cfg),
        "tokenizer": tokenizer_path,
        "config": cfg,
    }


def write_outputs(out_dir: Path, splits: dict, tally, report: dict) -> None:
    """Validate the report, then write the splits and rejects.jsonl from the spools, and
    report.json and report.md. Every file is written to a temp file first and the six are
    renamed only once all are complete, so a failure (disk full, no permission) leaves the
    previous outputs as they were instead of a mix of old and new files."""
    validate(load_report_schema(), report, "report.json")
    contents = {f"{name}.jsonl": tally.records.lines(e["offset"] for e in entries)
                for name, entries in splits.items()}
    contents["rejects.jsonl"] = iter(tally.rejects)
    contents["report.json"] = [json.dumps(report, ensure_ascii=False, indent=2) + "\n"]
    contents["report.md"] = [report_markdown(report)]
    try:
        with contextlib.ExitStack() as stack:
            for name, lines in contents.items():
                stack.enter_context(atomic_file(out_dir / name)).writelines(lines)
    except OSError as e:
        raise FarolError(f"Could not write the outputs to {out_dir}: {e.strerror or e}"
                         + (f" ({e.filename})" if e.filename else "")) from None


def _reason_counts(reasons: Counter) -> dict:
    # Reasons carry details in parentheses (column, byte); the table counts them by kind.
    kinds = Counter()
    for reason, n in reasons.items():
        kinds[reason.split(" (")[0]] += n
    return dict(kinds.most_common())


def report_markdown(report: dict) -> str:
    """The report for a person: counts, splits, categories, diversity, tokens, rejects."""
    lines = ["# Data preparation report", "",
             f"Read {report['read']} records = kept {report['kept']} + rejected "
             f"{report['rejected']} + duplicates {report['duplicates']} "
             f"({report['exact_duplicates']} exact, {report['near_duplicates']} near). "
             f"Over the category cap: {report['capped']} (counted as rejected).", ""]
    lines += _table(("split", "records", "groups"),
                    [(n, c, report["groups"][n]) for n, c in report["splits"].items()])
    lines += _table(("category", "records"), report["categories"].items())
    lines += _diversity_md(report["diversity"]) + _tokens_md(report)
    if report["reject_reasons"]:
        lines += _table(("reject reason", "records"), report["reject_reasons"].items())
    if report["duplicate_of"]:
        lines += _table(("duplicate", "of", "kind", "similarity"),
                        [tuple(d.values()) for d in report["duplicate_of"][:50]])
        if len(report["duplicate_of"]) > 50:
            lines += [f"... and {len(report['duplicate_of']) - 50} more in report.json.", ""]
    return "\n".join(lines)


def _table(header: tuple, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _diversity_md(diversity: dict) -> list[str]:
    fw = diversity["first_word"]
    flag = (f"**Flagged**: above the {fw['limit']:.0%} limit; vary how questions start."
            if fw["flagged"] else f"Within the {fw['limit']:.0%} limit.")
    lines = ["## Diversity", "",
             f"Most common first word of the questions: '{fw['word']}', {fw['count']} of "
             f"{fw['questions']} ({fw['share']:.1%}). {flag}", ""]
    rows = [(part, *(s[k] for k in ("min", "max", "mean", "p50", "p95")))
            for part, s in diversity["chars"].items() if s]
    return lines + _table(("characters", "min", "max", "mean", "p50", "p95"), rows)


def _tokens_md(report: dict) -> list[str]:
    t = report["tokens"]
    if t is None:
        return ["## Tokens", "", "Not measured: pass --tokenizer MODEL_PATH.", ""]
    return ["## Tokens", "",
            f"Whole conversations through the chat template, tokenizer {report['tokenizer']}.", "",
            *_table(("min", "max", "mean", "p50", "p95", f"over {t['limit']}", "recommended"),
                    [(t["min"], t["max"], t["mean"], t["p50"], t["p95"], t["over_limit"],
                      t["recommended_max_seq_length"])]),
            "Recommended max_seq_length: p95 rounded up to a multiple of "
            f"{analysis.SEQ_STEP}, at most {analysis.SEQ_CAP}.", ""]
