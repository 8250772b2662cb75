"""Player biographies (`.md` / `.txt`) turned into question/answer records."""

import os
import re
import stat
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
    """The `.md` / `.txt` entries under `folder`, sorted, links and special files included so
    that `biography_problem` can reject them with a reason; a FarolError if there are none,
    since a folder without biographies is almost always the wrong folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FarolError(f"Biographies folder not found: {folder}")
    # os.walk does not enter linked folders, so nothing outside `folder` is listed unseen.
    files = sorted(Path(top, name) for top, dirs, names in os.walk(folder)
                   for name in names + [d for d in dirs if Path(top, d).is_symlink()]
                   if _is_biography_name(name))
    if not files:
        raise FarolError(f"No biographies (.md or .txt files) under {folder}",
                         hint="pass the folder that holds one file per player")
    return files


def _is_biography_name(name: str) -> bool:
    # "._name.md" files are macOS's resource forks (copied to a USB stick or zip), not text.
    return Path(name).suffix.lower() in (".md", ".txt") and not name.startswith("._")


def biography_problem(path: Path, folder: Path) -> str | None:
    """Why `path` must not be read as a biography: a link leading out of `folder` (a shared
    or unpacked folder must not leak local files into a model), a broken link, or something
    that is not a regular file (a FIFO would block the run, a device never ends)."""
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(folder.resolve()):
            return f"link to {target}, outside the biographies folder; not followed"
    try:
        mode = path.stat().st_mode
    except OSError as e:
        return f"can't be read ({e.strerror or e})"
    if not stat.S_ISREG(mode):
        return f"not a regular file ({_kind(mode)}); not read"
    return None


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "folder", stat.S_ISFIFO: "FIFO", stat.S_ISCHR: "character device",
             stat.S_ISBLK: "block device", stat.S_ISSOCK: "socket"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def biography_records(folder: str | Path, questions: list[str],
                      paragraphs: int) -> Iterator[tuple[str, int, dict | Bad]]:
    """(file, question number, record) per question per biography. The category is the folder
    the file sits in and `player` its name, so the split keeps a player on one side. A file
    that is not UTF-8, a link out of the folder or a special file yields one Bad, which the
    caller counts as rejected."""
    for path in biography_files(folder):
        problem = biography_problem(path, Path(folder))
        if problem:
            yield str(path), 1, Bad(problem, "")
            continue
        try:
            name, paras = read_biography(path)
        except UnicodeDecodeError as e:
            yield str(path), 1, Bad(f"file is not UTF-8 text (byte 0x{e.object[e.start]:02x})",
                                    path.read_bytes().decode("utf-8", "backslashreplace"))
            continue
        except OSError as e:
            yield str(path), 1, Bad(f"can't be read ({e.strerror or e})", "")
            continue
        answer = "\n\n".join(paras[:paragraphs])
        for number, question in enumerate(questions, start=1):
            yield str(path), number, {"prompt": question.replace("{name}", name),
                                      "completion": answer, "category": path.parent.name,
                                      "player": name}
