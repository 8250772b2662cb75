"""Player biographies (`.md` / `.txt`) turned into question/answer records."""

import re
from collections.abc import Iterator
from pathlib import Path

from farol_core.errors import FarolError

_HEADING = re.compile(r"^#+\s*")


def read_biography(path: Path) -> tuple[str, list[str]]:
    """(player name, paragraphs): the name is the first heading, else the file name."""
    text = path.read_text(encoding="utf-8")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if paragraphs and paragraphs[0].startswith("#"):
        first, *rest = paragraphs[0].split("\n", 1)
        name = _HEADING.sub("", first).strip()
        paragraphs = ([rest[0].strip()] if rest else []) + paragraphs[1:]
    else:
        name = path.stem.replace("-", " ").replace("_", " ").title()
    return name, paragraphs


def biography_records(folder: str | Path, questions: list[str],
                      paragraphs: int) -> Iterator[tuple[str, int, dict | str]]:
    """(file, line, record) per question per biography; a file that can't be read yields its
    error message in place of the record, so the caller can count it as rejected."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FarolError(f"Biographies folder not found: {folder}")
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".md", ".txt") or not path.is_file():
            continue
        try:
            name, paras = read_biography(path)
        except UnicodeDecodeError:
            yield str(path), 1, "file is not UTF-8 text"
            continue
        answer = "\n\n".join(p for p in paras if not p.startswith("#"))
        answer = "\n\n".join(answer.split("\n\n")[:paragraphs])
        for question in questions:
            yield str(path), 1, {"prompt": question.format(name=name), "completion": answer,
                                 "category": "jogadores", "player": name}
