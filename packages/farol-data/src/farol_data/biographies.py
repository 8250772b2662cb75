"""Player biographies (`.md` / `.txt`) turned into question/answer records."""

import re
from collections.abc import Iterator
from pathlib import Path

from farol_core.errors import FarolError

from farol_data.sources import Bad

_HEADING = re.compile(r"^#+\s*")


def read_biography(path: Path) -> tuple[str, list[str]]:
    """(player name, paragraphs without their heading lines): the name is the first heading,
    else the file name."""
    # utf-8-sig: editors on Windows start files with a BOM, which would hide the "# Name" line.
    text = path.read_text(encoding="utf-8-sig")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if paragraphs and paragraphs[0].startswith("#"):
        first, *rest = paragraphs[0].split("\n", 1)
        name = _HEADING.sub("", first).strip()
        paragraphs = ([rest[0].strip()] if rest else []) + paragraphs[1:]
    else:
        name = path.stem.replace("-", " ").replace("_", " ").title()
    return name, [p for p in map(_without_headings, paragraphs) if p]


def _without_headings(paragraph: str) -> str:
    # A section's text often sits right under its "## Heading", with no blank line between.
    return "\n".join(line for line in paragraph.split("\n") if not line.startswith("#")).strip()


def biography_files(folder: str | Path) -> list[Path]:
    """The `.md` / `.txt` files under `folder`, sorted; a FarolError if there are none, since
    a folder without biographies is almost always the wrong folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FarolError(f"Biographies folder not found: {folder}")
    # "._name.md" files are macOS's resource forks (copied to a USB stick or zip), not text.
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".md", ".txt")
                   and not p.name.startswith("._") and p.is_file())
    if not files:
        raise FarolError(f"No biographies (.md or .txt files) under {folder}",
                         hint="pass the folder that holds one file per player")
    return files


def biography_records(folder: str | Path, questions: list[str],
                      paragraphs: int) -> Iterator[tuple[str, int, dict | Bad]]:
    """(file, question number, record) per question per biography. The category is the folder
    the file sits in and `player` its name, so the split keeps a player on one side. A file that
    is not UTF-8 yields a Bad, which the caller counts as rejected."""
    for path in biography_files(folder):
        try:
            name, paras = read_biography(path)
        except UnicodeDecodeError as e:
            yield str(path), 1, Bad(f"file is not UTF-8 text (byte 0x{e.object[e.start]:02x})",
                                    path.read_bytes().decode("utf-8", "backslashreplace"))
            continue
        answer = "\n\n".join(paras[:paragraphs])
        for number, question in enumerate(questions, start=1):
            yield str(path), number, {"prompt": question.replace("{name}", name),
                                      "completion": answer, "category": path.parent.name,
                                      "player": name}
