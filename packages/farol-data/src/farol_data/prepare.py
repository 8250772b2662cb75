"""The preparation pipeline: read → map fields → validate → repair and clean → dedup → cap →
split → analyse → write.

Nothing is dropped silently: every input line ends up kept, rejected (with its reason, in
rejects.jsonl) or counted as a duplicate (with the record it duplicates, in report.json), and
`read == kept + rejected + duplicates` holds. Records over a category's cap are rejects too.
"""

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from farol_core.config import load_config
from farol_core.errors import FarolError
from farol_core.model import load_tokenizer

from farol_data.balance import cap_per_category
from farol_data.biographies import biography_files, biography_records
from farol_data.clean import clean_text, count_urls, repair_kinds, word_count
from farol_data.dedup import NearDuplicates, answer_key, fingerprint
from farol_data.formats import RecordError, map_fields, to_messages
from farol_data.report import build_report, write_outputs
from farol_data.sources import Bad, Progress, check_readable, read_source
from farol_data.split import split_by_group
from farol_data.spool import Spool

OUTPUT_FILES = ("train.jsonl", "valid.jsonl", "test.jsonl", "rejects.jsonl", "report.json",
                "report.md")


@dataclass
class PrepareResult:
    """What `prepare` wrote and counted; `splits` reads the written files back."""

    out_dir: Path
    report: dict

    @property
    def splits(self) -> dict[str, list[dict]]:
        return {name: [json.loads(line) for line in (self.out_dir / f"{name}.jsonl").open()]
                for name in ("train", "valid", "test")}


@dataclass
class Tally:
    """The stream's outcome so far. Records and rejects wait in spool files; memory holds only
    an entry per kept record (offset, group, answer digest, category) and the duplicate list."""

    kept: list[dict] = field(default_factory=list)
    records: Spool = field(default_factory=Spool)
    rejects: Spool = field(default_factory=Spool)
    reasons: Counter = field(default_factory=Counter)
    repairs: Counter = field(default_factory=Counter)  # records with each kind of repair
    duplicates: list[dict] = field(default_factory=list)
    seen: dict[bytes, str] = field(default_factory=dict)
    first_reject: dict | None = None

    def keep(self, fmt: str, record: dict) -> None:
        self.kept.append({"offset": self.records.add(record), "group": record["group"],
                          "answer": answer_key(record["messages"]),
                          "category": record["category"], "format": fmt})

    def reject(self, reject: dict) -> None:
        self.reasons[reject["reason"]] += 1
        self.rejects.add(reject)
        self.first_reject = self.first_reject or reject

    def close(self) -> None:
        self.records.close()
        self.rejects.close()


def prepare(inputs: list[str | Path], out_dir: str | Path, biographies: str | Path | None = None,
            config: str | Path | dict | None = None, seed: int | None = None,
            tokenizer: str | Path | None = None, progress: Progress | None = None
            ) -> PrepareResult:
    """Prepare the inputs into `out_dir`; see the module docstring for the guarantees.

    `tokenizer` is a model folder whose tokenizer measures token lengths; `progress` is called
    with the number of input bytes read as reading advances.
    """
    cfg = load_config("data", config, {"seed": seed}, check=split_problems)
    _check_inputs(inputs, biographies, Path(out_dir))
    tok = load_tokenizer(tokenizer) if tokenizer is not None else None  # fail before the work
    tally = collect(raw_records(inputs, biographies, cfg, progress), cfg,
                    input_root(inputs, biographies))
    try:
        report = _finish(tally, cfg, Path(out_dir), tok,
                         str(tokenizer) if tokenizer is not None else None)
    finally:
        tally.close()
    return PrepareResult(Path(out_dir), report)


def split_problems(cfg: dict) -> list[str]:
    """What the schema can't express: split ratios that are all 0 leave nowhere to put a
    record. Ratios of the wrong type are the schema's to report."""
    ratios = cfg.get("split")
    if (isinstance(ratios, dict) and all(isinstance(v, int | float) for v in ratios.values())
            and sum(ratios.values()) <= 0):
        return ["split: at least one of train/valid/test must be above 0"]
    return []


def _check_inputs(inputs: list, biographies, out_dir: Path) -> None:
    if not inputs and biographies is None:
        raise FarolError("No input given", hint="pass --input FILE and/or --biographies DIR")
    seen, outputs = set(), {(out_dir / name).resolve() for name in OUTPUT_FILES}
    for path in map(Path, inputs):
        key = check_readable(path).resolve()
        if key in seen:
            raise FarolError(f"Input given twice: {path}", hint="pass each file once")
        if key in outputs:
            raise FarolError(f"Input {path} would be overwritten by the output in {out_dir}",
                             hint="pass another --out folder, or move the input")
        seen.add(key)
    if biographies is not None:
        biography_files(biographies)  # fail before the work
    if out_dir.exists() and not out_dir.is_dir():
        raise FarolError(f"Output folder {out_dir} is a file", hint="pass a folder to --out")


def _finish(tally: Tally, cfg: dict, out_dir: Path, tok, tokenizer_path: str | None) -> dict:
    """Cap, split, analyse and write what `collect` kept; returns the report."""
    kept, capped = cap_per_category(tally.kept, cfg["max_per_category"], cfg["seed"])
    for entry in capped:
        tally.reject(_capped_reject(tally.records.get(entry["offset"]), cfg["max_per_category"]))
    if not kept:
        raise FarolError(f"Nothing usable in the inputs ({tally.rejects.count} rejected, "
                         f"{len(tally.duplicates)} duplicates)", hint=_reject_summary(tally))
    splits = split_by_group(kept, cfg["split"], cfg["seed"])
    report = build_report(cfg, tally, kept, len(capped), splits, tok, tokenizer_path)
    write_outputs(out_dir, splits, tally, report)
    return report


def collect(records: Iterator[tuple[str, int, object]], cfg: dict,
            root: Path | None = None) -> Tally:
    """Validate, clean and deduplicate a stream of raw records into a Tally; kept records
    name their source relative to `root` (see input_root), rejects as the user gave it."""
    tally = Tally()
    threshold = cfg["near_duplicate_threshold"]
    near = NearDuplicates(threshold) if threshold is not None else None
    for source, line, raw in records:
        outcome = accept(source, line, raw, cfg, root, tally.repairs)
        if isinstance(outcome, str):
            tally.reject(_reject(source, line, outcome, raw))
        elif not _is_duplicate(tally, near, outcome[1]):
            tally.keep(*outcome)
    return tally


def texts(inputs: list[str | Path], biographies: str | Path | None = None,
          config: str | Path | dict | None = None) -> Iterator[str]:
    """The cleaned text of every usable record: a corpus for training a tokenizer."""
    cfg = load_config("data", config)
    for source, line, raw in raw_records(inputs, biographies, cfg):
        outcome = accept(source, line, raw, cfg)
        if not isinstance(outcome, str):
            yield from (m["content"] for m in outcome[1]["messages"])


def raw_records(inputs, biographies, cfg,
                progress: Progress | None = None) -> Iterator[tuple[str, int, object]]:
    """(file, line, dict or Bad) from every input file, then every biography."""
    for path in inputs:
        yield from read_source(Path(path), progress)
    if biographies is not None:
        yield from biography_records(biographies, cfg["biography_questions"],
                                     cfg["biography_paragraphs"])


def input_root(inputs: list, biographies) -> Path:
    """The folder that holds every input. Training files name each record's source from it
    ("farense_qa.jsonl:12"), never by the user's absolute paths."""
    folders = [Path(p).resolve().parent for p in inputs]
    folders += [Path(biographies).resolve().parent] if biographies is not None else []
    return Path(os.path.commonpath(folders)) if folders else Path.cwd()


@cache
def _relative(source: str, root: Path | None) -> str:
    if root is None:
        return source
    try:
        return Path(source).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(source).name


def accept(source: str, line: int, raw: object, cfg: dict, root: Path | None = None,
           repairs: Counter | None = None) -> tuple[str, dict] | str:
    """(format, clean record) or the reason for rejecting it; the record's source is
    relative to `root` when one is given, and `repairs` counts the kinds of repair made."""
    if isinstance(raw, Bad):
        return raw.reason
    record = map_fields(raw, cfg["field_map"])
    try:
        fmt, messages = to_messages(record)
    except RecordError as e:
        return str(e)
    if repairs is not None:  # each record counted once per kind of repair its text needed
        repairs.update(set().union(*(repair_kinds(m["content"]) for m in messages)))
    messages = [{"role": m["role"], "content": clean_text(m["content"])} for m in messages]
    # The schema saw a character; cleaning may remove it (a zero-width space, "&nbsp;").
    empty = next((m["role"] for m in messages if not m["content"]), None)
    if empty:
        return f"the {empty} message is empty after cleaning"
    problem = answer_problem(messages[-1]["content"], cfg)
    if problem:
        return problem
    if cfg["system_prompt"] and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": cfg["system_prompt"]})
    return fmt, _prepared(messages, record, _relative(source, root), line)


def answer_problem(answer: str, cfg: dict) -> str | None:
    """Why a cleaned answer is unusable, or None."""
    if len(answer) < cfg["min_answer_chars"]:
        return f"answer shorter than {cfg['min_answer_chars']} characters"
    if len(answer) > cfg["max_answer_chars"]:
        return f"answer longer than {cfg['max_answer_chars']} characters"
    if word_count(answer, at_most=cfg["min_answer_words"]) < cfg["min_answer_words"]:
        return f"answer has fewer than {cfg['min_answer_words']} words"
    if count_urls(answer) > cfg["max_urls"]:
        return f"answer has more than {cfg['max_urls']} URLs"
    return None


def _prepared(messages: list[dict], record: dict, source: str, line: int) -> dict:
    # Names are cleaned like the text: a lone surrogate (JavaScript cutting an emoji in two)
    # would break report.json, and "Hassan  Nader" must group with "Hassan Nader".
    player = clean_text(record["player"]) if record.get("player") else None
    if "conversation_id" in record:
        group = f"conversation:{record['conversation_id']}"
    else:
        group = f"player:{player}" if player else f"record:{source}:{line}"
    category = clean_text(record.get("category") or "") or _stem(source)
    return {"messages": messages, "category": category, "source": f"{source}:{line}",
            "group": group, "player": player or None}


@cache
def _stem(source: str) -> str:
    return Path(source).stem


def _is_duplicate(tally: Tally, near: NearDuplicates | None, record: dict) -> bool:
    key = fingerprint(record["messages"])
    if key in tally.seen:
        tally.duplicates.append({"source": record["source"], "duplicate_of": tally.seen[key],
                                 "kind": "exact", "similarity": 1.0})
        return True
    tally.seen[key] = record["source"]
    match = near.check(record["source"], record["messages"], record["group"]) if near else None
    if match:
        tally.duplicates.append({"source": record["source"], "duplicate_of": match[0],
                                 "kind": "near", "similarity": match[1]})
    return match is not None


def _reject(source: str, line: int, reason: str, raw: object) -> dict:
    text = raw.raw if isinstance(raw, Bad) else json.dumps(raw, ensure_ascii=False)
    return {"source": source, "line": line, "reason": reason, "raw": text}


def _capped_reject(record: dict, cap: int) -> dict:
    source, line = record["source"].rsplit(":", 1)
    return {"source": source, "line": int(line),
            "reason": f"over max_per_category ({cap}) for category '{record['category']}'",
            "raw": json.dumps(record, ensure_ascii=False)}


def _reject_summary(tally: Tally) -> str:
    reasons = tally.reasons.most_common(3)
    if not reasons and not tally.duplicates:
        return "the inputs hold no records: are the files empty?"
    if not reasons:
        return "every record duplicates an earlier one"
    first = tally.first_reject
    return ("most common reasons: " + "; ".join(f"{n}x {r}" for r, n in reasons)
            + f"; first: {first['source']}:{first['line']}: {first['reason']}")
