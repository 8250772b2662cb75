"""The eval report in three forms: report.json (schema-checked), report.csv and report.md."""

import csv
import io
import json
from importlib import resources
from pathlib import Path

from farol_core.config import validate
from farol_core.io import atomic_write_text, write_json

from farol_eval.stats import SCORES

VARIANTS = ("base", "tuned")
LABELS = {"exact_match": "exact match", "token_f1": "token F1", "rouge_l": "ROUGE-L",
          "answer_length": "answer length (words)"}
TOP = 10
SHOWN, NEW = "learned what it was shown", "generalises to new questions"
# Said beside every side-by-side table: the two columns answer different questions.
SMALL_BASE = ("The train-split column says whether the adapter learned the answers it was "
              "trained on. The test column says whether it answers questions it never saw; a "
              "small base that knows nothing beyond its own pre-training text can at best copy "
              "the style and the words of the question there, not know a fact it was never "
              "shown, so expect test scores near the base's.")


def report_schema() -> dict:
    """The JSON Schema of report.json, shipped with the package."""
    path = resources.files("farol_eval").joinpath("schemas/report.schema.json")
    return json.loads(path.read_text())


def validate_report(report: dict) -> None:
    """Raise a FarolError listing every way `report` breaks the schema."""
    validate(report_schema(), report, "eval report")


def write_reports(report: dict, out: str | Path) -> dict[str, Path]:
    """Validate, then write report.json, report.csv and report.md into `out`."""
    validate_report(report)
    out = Path(out)
    paths = {ext: out / f"report.{ext}" for ext in ("json", "csv", "md")}
    write_json(paths["json"], report)
    atomic_write_text(paths["csv"], to_csv(report))
    atomic_write_text(paths["md"], to_markdown(report))
    return paths


def to_csv(report: dict) -> str:
    """One row per question: texts, both answers and every score."""
    names = [v for v in VARIANTS if v in report["questions"][0]["answers"]] \
        if report["questions"] else ["base"]
    header = ["id", "category", "question", "reference"]
    header += [f"{v}_answer" for v in names]
    header += [f"{v}_{m}" for v in names for m in SCORES]
    buf = io.StringIO()
    # CRLF rows (RFC 4180): csv quotes a field holding any character of the line terminator,
    # so a "\r" in an answer is quoted too; with "\n" it would end the row for every reader.
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for q in report["questions"]:
        row = [q["id"], q["category"], q["question"], q["reference"]]
        row += [q["answers"][v] for v in names]
        row += [q["scores"][v][m] for v in names for m in SCORES]
        writer.writerow(row)
    return buf.getvalue()


def f1_gain(question: dict) -> float:
    """Tuned minus base token F1 for one question: the ranking behind wins and losses."""
    return question["scores"]["tuned"]["token_f1"] - question["scores"]["base"]["token_f1"]


def wins_and_losses(report: dict, top: int = TOP) -> tuple[list[dict], list[dict]]:
    """The `top` questions the tuned model improved most, and the `top` it made worse."""
    paired = [q for q in report["questions"] if "tuned" in q["scores"]]
    ranked = sorted(paired, key=f1_gain, reverse=True)
    wins = [q for q in ranked if f1_gain(q) > 0][:top]
    losses = [q for q in reversed(ranked) if f1_gain(q) < 0][:top]
    return wins, losses


def _fmt(cell: dict | None, digits: int = 3) -> str:
    if cell is None:
        return ""
    if cell["low"] is None:  # one question or example: no interval can be estimated
        return f"{cell['mean']:.{digits}f} [no interval: n = 1]"
    return f"{cell['mean']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def _summary_table(summary: dict, confidence: float) -> list[str]:
    pct = round(confidence * 100)
    lines = [f"| metric | base | tuned | gain (tuned - base), {pct}% CI |", "|---|---|---|---|"]
    for m in SCORES:
        if m in summary:
            s = summary[m]
            lines.append(f"| {LABELS[m]} | {_fmt(s['base'])} | {_fmt(s.get('tuned'))} "
                         f"| {_fmt(s.get('gain'))} |")
    return lines


def _loss_table(splits: dict, confidence: float) -> list[str]:
    pct = round(confidence * 100)
    lines = [f"| split | base loss [{pct}% CI] | tuned loss [{pct}% CI] | gain (tuned - base) | "
             "base perplexity | tuned perplexity | tokens |", "|---|---|---|---|---|---|---|"]
    for split, v in splits.items():
        cells = [split] + [_fmt_loss(v.get(n)) for n in VARIANTS] + [_fmt(v.get("gain"), 4)]
        cells += [f"{v[n]['perplexity']:.2f}" if n in v else "" for n in VARIANTS]
        lines.append("| " + " | ".join([*cells, str(v["base"]["tokens"])]) + " |")
    return lines


def _fmt_loss(r: dict | None) -> str:
    return _fmt({"mean": r["loss"], "low": r["low"], "high": r["high"]}, 4) if r else ""


# Longest answer or reference shown in report.md; report.csv keeps every text whole.
CELL_CHARS = 200


def _cell(text: str, limit: int | None = None) -> str:
    """`text` as one markdown table cell, shown as written: one line, the backslash and the
    pipe escaped, and "<" and "&" as entities so an answer like "<s>" is not taken as HTML.
    With `limit`, a longer text is cut at a word to about that many characters, then " …"."""
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = (text[:limit].rsplit(" ", 1)[0] or text[:limit]) + " …"
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("&", "&amp;"), ("<", "&lt;")):
        text = text.replace(char, escaped)
    return text or "(empty)"


def _examples(title: str, questions: list[dict]) -> list[str]:
    lines = [f"## {title}", ""]
    if not questions:
        return lines + ["None.", ""]
    lines += ["| F1 gain | question | reference | base | tuned |", "|---|---|---|---|---|"]
    lines += [f"| {f1_gain(q):+.3f} | {_cell(q['question'])} | "
              f"{_cell(q['reference'], CELL_CHARS)} | {_cell(q['answers']['base'], CELL_CHARS)}"
              f" | {_cell(q['answers']['tuned'], CELL_CHARS)} |" for q in questions]
    return lines + ["", f"Texts over {CELL_CHARS} characters end in \"…\"; report.csv holds "
                        "them whole.", ""]


def to_markdown(report: dict) -> str:
    """The human report: settings, loss table, metric table with CIs, categories, checkpoints,
    and the largest wins and losses."""
    gen = report["generation"]
    lines = [*_header(report), "## Loss and perplexity", "",
             *_loss_table(report["splits"], report["settings"]["confidence"]), ""]
    lines += _side_by_side(report)
    if gen["summary"]:
        title = "Answers, base against tuned" if report["adapter"] else "Answers"
        lines += [f"## {title}", "",
                  *_summary_table(gen["summary"], report["settings"]["confidence"]), ""]
        lines += _categories(gen["by_category"])
    lines += _checkpoint_lines(report["checkpoints"])
    if report["adapter"]:
        wins, losses = wins_and_losses(report)
        lines += _examples(f"Largest wins (top {TOP} by token F1 gain)", wins)
        lines += _examples(f"Largest losses (top {TOP} by token F1 loss)", losses)
    return "\n".join(lines)


def _header(report: dict) -> list[str]:
    st = report["settings"]
    adapter = f"`{report['adapter']}`" if report["adapter"] else "none (the base model alone)"
    return ["# Evaluation report", "",
            f"- model: `{report['model']}`", f"- adapter: {adapter}",
            f"- loss counts {report['loss_tokens']}",
            f"- {report['generation']['questions']} test questions, at most "
            f"{st['max_tokens']} tokens per answer, temperature {st['temperature']}, "
            f"accent folding {'on' if st['accent_folding'] else 'off'}",
            f"- intervals: {round(st['confidence'] * 100)}% paired bootstrap, "
            f"{st['bootstrap_resamples']} resamples, seed {st['seed']}", ""]


def _side_by_side(report: dict) -> list[str]:
    """Train-split and test token F1 / ROUGE-L side by side, each column saying what it means."""
    shown, new = (report.get("train_split") or {}).get("summary"), report["generation"]["summary"]
    if not shown or not new:
        return []
    lines = ["## Train split against held-out", "",
             f"| metric | train split: {SHOWN} ({report['train_split']['questions']} questions)"
             f" | test: {NEW} ({report['generation']['questions']} questions) |", "|---|---|---|"]
    lines += [f"| {LABELS[m]} | {_pair(shown[m])} | {_pair(new[m])} |"
              for m in SCORES if m in shown and m in new]
    return lines + ["", SMALL_BASE, "", *_pretraining_lines(report.get("base_pretraining")), ""]


def _pair(cell: dict) -> str:
    text = f"base {cell['base']['mean']:.3f}"
    if "tuned" in cell:
        text += f", tuned {cell['tuned']['mean']:.3f}, gain {_fmt(cell['gain'])}"
    return text


def _pretraining_lines(pre: dict | None) -> list[str]:
    if pre is None:
        return ["The base model records no pre-training (no pretraining.json beside it)."]
    return [f"The base model was pre-trained on {pre['source']}: {pre['documents']} documents, "
            f"{pre['tokens']} tokens, final loss {pre['final_loss']:.3f}. "
            f"{pre['held_out_answers_seen']} of the test answers were among them."]


def _categories(by_category: dict) -> list[str]:
    lines = ["## Token F1 per category", "",
             "| category | questions | base | tuned | gain |", "|---|---|---|---|---|"]
    for cat, c in sorted(by_category.items()):
        f1 = c["summary"]["token_f1"]
        lines.append(f"| {_cell(cat)} | {c['questions']} | {_fmt(f1['base'])} | "
                     f"{_fmt(f1.get('tuned'))} | {_fmt(f1.get('gain'))} |")
    return lines + [""]


def _checkpoint_lines(ck: dict | None) -> list[str]:
    if not ck or not ck["points"]:
        return []
    lines = ["## Checkpoints", "",
             f"Train loss over a seeded sample of {ck['train_examples']} train examples; "
             f"validation loss over all {ck['valid_examples']}.", "",
             "| step | train loss | valid loss | gap (valid - train) |", "|---|---|---|---|"]
    lines += [f"| {p['step']} | {p['train_loss']:.4f} | {p['valid_loss']:.4f} | {p['gap']:+.4f} |"
              for p in ck["points"]]
    best = ck["best"]
    return lines + ["", f"Best checkpoint by validation loss: step {best['step']} "
                        f"(`{best['path']}`).", ""]


def _summary_side_by_side(report: dict) -> list[str]:
    shown, new = (report.get("train_split") or {}).get("summary"), report["generation"]["summary"]
    if not shown or not new:
        return []
    return [f"  token F1, train split ({SHOWN}): {_pair(shown['token_f1'])}",
            f"  token F1, test ({NEW}): {_pair(new['token_f1'])}"]


def example_lines(report: dict) -> list[str]:
    """One train-split question and one test question, each with its reference and the base
    and tuned answers: the demo's before-and-after, on both kinds of question."""
    lines = []
    for title, qs in ((f"a question it was trained on ({SHOWN}?)",
                       (report.get("train_split") or {}).get("answers", [])),
                      (f"a question it never saw ({NEW}?)", report["questions"])):
        if qs:
            q = qs[0]
            lines += [title + ":", f"  Q: {q['question']}", f"     reference: {q['reference']}"]
            lines += [f"     {name}: {a!r}" for name, a in q["answers"].items()]
    return lines


def summary_lines(report: dict) -> list[str]:
    """A few lines for the terminal: loss per split, metric means with CIs, sample answers."""
    lines = [f"loss over {report['loss_tokens']}"]
    pct = round(report["settings"]["confidence"] * 100)
    for split, v in report["splits"].items():
        cells = ", ".join(f"{name} loss {v[name]['loss']:.3f} / ppl {v[name]['perplexity']:.1f}"
                          for name in VARIANTS if name in v)
        gain = f"; gain {_fmt(v['gain'])} ({pct}% CI)" if "gain" in v else ""
        lines.append(f"  {split}: {cells}{gain}")
    summary = report["generation"]["summary"]
    for m in (m for m in SCORES if m in summary):
        s = summary[m]
        gain = f"; gain {_fmt(s['gain'])} ({pct}% CI)" if "gain" in s else ""
        lines.append(f"  {LABELS[m]}: base {s['base']['mean']:.3f}"
                     + (f", tuned {s['tuned']['mean']:.3f}" if "tuned" in s else "") + gain)
    lines += _summary_side_by_side(report)
    best = (report["checkpoints"] or {}).get("best")
    if best:
        lines.append(f"  best checkpoint: step {best['step']} (valid loss "
                     f"{best['valid_loss']:.3f}, gap {best['gap']:+.3f})")
    for q in report["questions"][: report["settings"]["samples"]]:
        lines += [f"  Q: {q['question']}", f"     reference: {q['reference']}"]
        lines += [f"     {name}: {a!r}" for name, a in q["answers"].items()]
    return lines
