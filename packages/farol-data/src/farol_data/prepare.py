"""The preparation pipeline: read → convert → clean → validate → dedup → split → write.

Nothing is dropped silently: every input line ends up kept, rejected (with its reason, in
rejects.jsonl) or counted as a duplicate, and `read == kept + rejected + duplicates` holds.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from farol_core.config import load_config
from farol_core.errors import FarolError
from farol_core.io import write_json, write_jsonl

from farol_data.biographies import biography_records
from farol_data.clean import clean_text, count_urls, word_count
from farol_data.formats import RecordError, to_messages
from farol_data.report import write_report_md
from farol_data.split import split_by_group

OUTPUT_FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "rejects.jsonl", "report.json",
                "report.md")


@dataclass
class PrepareResult:
    """What `prepare` wrote and counted."""

    out_dir: Path
    report: dict
    splits: dict[str, list[dict]] = field(repr=False)


def prepare(inputs: list[str | Path], out_dir: str | Path, biographies: str | Path | None = None,
            config: str | Path | dict | None = None, seed: int | None = None) -> PrepareResult:
    """Prepare the inputs into `out_dir`; see the module docstring for the guarantees."""
    cfg = load_config("data", config, {"seed": seed})
    if not inputs and biographies is None:
        raise FarolError("No input given", hint="pass --input FILE and/or --biographies DIR")
    kept, rejects, dupes, formats = [], [], [], Counter()
    seen: dict[str, str] = {}
    for source, line, raw in _raw_records(inputs, biographies, cfg):
        outcome = _accept(source, line, raw, cfg)
        if isinstance(outcome, str):
            text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
            rejects.append({"source": source, "line": line, "reason": outcome, "raw": text})
            continue
        fmt, record = outcome
        key = _fingerprint(record["messages"])
        if key in seen:
            dupes.append({"source": record["source"], "duplicate_of": seen[key]})
            continue
        seen[key] = record["source"]
        formats[fmt] += 1
        kept.append(record)
    if not kept:
        raise FarolError(f"Nothing usable in the inputs ({len(rejects)} rejected)",
                         hint=_reject_summary(rejects))
    splits = split_by_group(kept, cfg["split"], cfg["seed"])
    report = _report(cfg, kept, rejects, dupes, formats, splits)
    _write(Path(out_dir), splits, rejects, report)
    return PrepareResult(Path(out_dir), report, splits)


def texts(inputs: list[str | Path], biographies: str | Path | None = None,
          config: str | Path | dict | None = None) -> Iterator[str]:
    """The cleaned text of every usable record: a corpus for training a tokenizer."""
    cfg = load_config("data", config)
    for source, line, raw in _raw_records(inputs, biographies, cfg):
        outcome = _accept(source, line, raw, cfg)
        if not isinstance(outcome, str):
            yield from (m["content"] for m in outcome[1]["messages"])


def _raw_records(inputs, biographies, cfg) -> Iterator[tuple[str, int, dict | str]]:
    for path in inputs:
        yield from _read_source(Path(path))
    if biographies is not None:
        yield from biography_records(biographies, cfg["biography_questions"],
                                     cfg["biography_paragraphs"])


def _read_source(path: Path) -> Iterator[tuple[str, int, dict | str]]:
    """(file, line, parsed object or raw text) per JSON Lines line or JSON array item."""
    if not path.is_file():
        raise FarolError(f"Input file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        yield str(path), 1, f"<file is not UTF-8 text: {e.reason} at byte {e.start}>"
        return
    if text.lstrip().startswith("["):
        yield from _json_array(path, text)
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield str(path), lineno, _parse(line)


def _json_array(path: Path, text: str) -> Iterator[tuple[str, int, dict | str]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        yield str(path), e.lineno, f"<not valid JSON: {e.msg}>"
        return
    for i, item in enumerate(items, start=1):
        yield str(path), i, item if isinstance(item, dict) else json.dumps(item)


def _parse(line: str) -> dict | str:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return line
    return obj if isinstance(obj, dict) else line


def _accept(source: str, line: int, raw: dict | str, cfg: dict) -> tuple[str, dict] | str:
    """(format, clean record) or the reason for rejecting it."""
    if isinstance(raw, str):
        return "not valid JSON" if not raw.startswith("<") else raw.strip("<>")
    try:
        fmt, messages = to_messages(raw)
    except RecordError as e:
        return str(e)
    messages = [{"role": m["role"], "content": clean_text(m["content"])} for m in messages]
    problem = _answer_problem(messages[-1]["content"], cfg)
    if problem:
        return problem
    if cfg["system_prompt"] and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": cfg["system_prompt"]})
    category = raw.get("category") if isinstance(raw.get("category"), str) else Path(source).stem
    group = raw.get("conversation_id") or raw.get("conversa_id") or raw.get("player")
    record = {"messages": messages, "category": category, "source": f"{source}:{line}",
              "group": str(group) if group else f"{source}:{line}"}
    return fmt, record


def _answer_problem(answer: str, cfg: dict) -> str | None:
    if len(answer) < cfg["min_answer_chars"]:
        return f"answer shorter than {cfg['min_answer_chars']} characters"
    if len(answer) > cfg["max_answer_chars"]:
        return f"answer longer than {cfg['max_answer_chars']} characters"
    if word_count(answer) < cfg["min_answer_words"]:
        return f"answer has fewer than {cfg['min_answer_words']} words"
    if count_urls(answer) > cfg["max_urls"]:
        return f"answer has more than {cfg['max_urls']} URLs"
    return None


def _fingerprint(messages: list[dict]) -> str:
    text = "\x00".join(f"{m['role']}:{m['content']}" for m in messages)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _reject_summary(rejects: list[dict]) -> str:
    reasons = Counter(r["reason"] for r in rejects).most_common(3)
    return "most common reasons: " + "; ".join(f"{n}x {r}" for r, n in reasons) if reasons else ""


def _report(cfg, kept, rejects, dupes, formats, splits) -> dict:
    return {
        "read": len(kept) + len(rejects) + len(dupes),
        "kept": len(kept),
        "rejected": len(rejects),
        "duplicates": len(dupes),
        "splits": {name: len(records) for name, records in splits.items()},
        "formats": dict(formats),
        "categories": dict(Counter(r["category"] for r in kept).most_common()),
        "reject_reasons": dict(Counter(r["reason"] for r in rejects).most_common()),
        "duplicate_of": dupes,
        "config": cfg,
    }


def _write(out_dir: Path, splits: dict, rejects: list[dict], report: dict) -> None:
    for name, records in splits.items():
        write_jsonl(out_dir / f"{name}.jsonl", records)
    write_jsonl(out_dir / "rejects.jsonl", rejects)
    write_json(out_dir / "report.json", report)
    write_report_md(out_dir / "report.md", report)
