"""Reading inputs as a stream of (file, line, parsed record or reject reason).

JSON Lines files are read line by line, so memory does not grow with the file; a JSON array is
parsed item by item and each item keeps the line it starts on. A line that is not UTF-8, not JSON
or not an object becomes a `Bad` value with its reason and raw text: it never stops the run.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from farol_core.errors import FarolError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Bad:
    """A line that could not be parsed: why, and its raw text."""

    reason: str
    raw: str


def input_size(paths: list[str | Path]) -> int:
    """Total bytes of the input files (for a progress bar); a missing file is a FarolError."""
    return sum(check_readable(Path(p)).stat().st_size for p in paths)


def check_readable(path: Path) -> Path:
    """`path`, or a FarolError saying why it can't be read."""
    if not path.exists():
        raise FarolError(f"Input file not found: {path}")
    if not path.is_file():
        raise FarolError(f"Input is not a file: {path}", hint="pass folders of biographies "
                         "with --biographies")
    return path


def read_source(path: Path, progress: Progress | None = None) -> Iterator[tuple[str, int, object]]:
    """(file, line, dict or Bad) for each non-blank JSON Lines line or JSON array item."""
    check_readable(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
            f.seek(0)
            if head.startswith(b"["):
                yield from _json_array(path, f.read(), progress)
            else:
                yield from _json_lines(path, f, progress)
    except OSError as e:
        raise FarolError(f"Could not read {path}: {e.strerror or e}") from None


def _json_lines(path: Path, f, progress: Progress | None) -> Iterator[tuple[str, int, object]]:
    for lineno, data in enumerate(f, start=1):
        if progress:
            progress(len(data))
        if lineno == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if data.strip():
            yield str(path), lineno, parse_line(data)


def parse_line(data: bytes) -> dict | Bad:
    """The JSON object on one line, or a Bad saying why not."""
    try:
        line = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return Bad(f"not UTF-8 text (byte 0x{data[e.start]:02x} at column {e.start + 1})",
                   data.decode("utf-8", errors="backslashreplace").rstrip("\r\n"))
    line = line.rstrip("\r\n")  # parsed with its newline, a break at the end said "column 1"
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:
        return Bad(f"not valid JSON ({_why(e)})", line)
    return obj if isinstance(obj, dict) else Bad(
        f"expected a JSON object, got {type(obj).__name__}", line)


def _why(error: Exception, in_array: bool = False) -> str:
    """A short reason for any error `json` raises: a syntax error, a number too long to
    convert (Python's 4300-digit limit) or nesting deeper than the interpreter's stack."""
    if isinstance(error, json.JSONDecodeError):
        where = f"line {error.lineno}" if in_array else f"column {error.colno}"
        return f"{error.msg} at {where}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).split(";")[0] or type(error).__name__


def _json_array(path: Path, data: bytes,
                progress: Progress | None) -> Iterator[tuple[str, int, object]]:
    if progress:
        progress(len(data))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        yield str(path), line, Bad(f"file is not UTF-8 text (byte 0x{data[e.start]:02x}); "
                                   "a JSON array can't be read past it",
                                   data.decode("utf-8", errors="backslashreplace"))
        return
    yield from _array_items(path, text)


def _array_items(path: Path, text: str) -> Iterator[tuple[str, int, object]]:
    decoder, pos = json.JSONDecoder(), text.index("[") + 1
    line, counted = 1, 0  # line numbers counted incrementally, so long arrays stay linear
    while True:
        pos = _skip(text, pos)
        if pos >= len(text):
            return
        if text[pos] == "]":
            yield from _after_array(path, text, pos + 1, line + text.count("\n", counted, pos))
            return
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            item, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as e:
            yield str(path), line, Bad(f"not valid JSON ({_why(e, in_array=True)}); "
                                       "the rest of the array can't be read", text[pos:])
            return
        yield str(path), line, item if isinstance(item, dict) else Bad(
            f"expected a JSON object, got {type(item).__name__}", json.dumps(item))


def _after_array(path: Path, text: str, pos: int,
                 line: int) -> Iterator[tuple[str, int, object]]:
    """Whatever follows the array's "]" (JSON Lines appended to an array file, or a JSON Lines
    file whose first line is an array), read as JSON Lines so that nothing is dropped."""
    for lineno, rest in enumerate(text[pos:].split("\n"), start=line):
        if rest.strip():
            yield str(path), lineno, parse_line(rest.encode("utf-8"))


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n,":
        pos += 1
    return pos
