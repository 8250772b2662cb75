"""Crash-safe file writing and line-numbered JSON Lines reading."""

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import psutil

from farol_core.errors import DISK_FULL, FarolError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    with atomic_file(path, "wb") as f:
        f.write(data)


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator:
    """An open temp file beside `path`; on success it is synced and renamed over `path`, on
    failure removed, so `path` is always the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp_file(path)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno in DISK_FULL and not e.filename:  # a failed write() names no file
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_temp_file(path: Path) -> tuple[int, str]:
    """(fd, name) of a new file beside `path`. Unlike mkstemp's 0600, mode 0666 goes through
    the umask, so the renamed file gets the permissions any other new file would."""
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # a leftover of a crash, or a writer beside us: pick again
            continue


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text flavour of `atomic_write_bytes`, always UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically; returns the number of lines."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


@contextlib.contextmanager
def staged_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a not-yet-existing path beside `out` to build a folder in; on success the folder
    replaces `out` whole, on failure it is removed and `out` is untouched."""
    out = Path(out)
    if out.exists() and not force:
        raise FarolError(f"{out} already exists", hint="pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        _claim(staging)
        yield staging / "new"
        if out.exists():
            out.rename(staging / "old")  # the old folder stays until the new one is in place
        try:
            (staging / "new").rename(out)
        except BaseException:
            if (staging / "old").exists():
                (staging / "old").rename(out)  # put the old folder back before cleaning up
            raise
        fsync_dir(out.parent)  # the rename itself survives a power cut
    finally:
        shutil.rmtree(staging, ignore_errors=True)


OWNER_FILE = "owner.json"


def _claim(staging: Path) -> None:
    """Mark a staging folder as this process's, so `sweep_staged` leaves it alone while we
    live. The start time tells our pid from a later process that reuses it (containers)."""
    me = psutil.Process()
    (staging / OWNER_FILE).write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))


def _owned_by_a_live_process(staging: Path) -> bool:
    try:
        owner = json.loads((staging / OWNER_FILE).read_text())
        return psutil.Process(owner["pid"]).create_time() == owner["started"]
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return False  # no owner file (a save cut before it, or an older version) or owner dead


def sweep_staged(parent: str | Path, pattern: str) -> list[tuple[Path, int]]:
    """Remove the staging folders matching `pattern` in `parent` that no live process owns,
    the leftovers of a save killed mid-way; returns each one with the bytes it held."""
    parent, swept = Path(parent), []
    for folder in sorted(parent.glob(pattern)) if parent.is_dir() else []:
        if folder.is_dir() and not folder.is_symlink() and not _owned_by_a_live_process(folder):
            _put_back_old(folder)
            size = sum(p.lstat().st_size for p in folder.rglob("*"))
            shutil.rmtree(folder, ignore_errors=True)
            swept.append((folder, size))
    return swept


def _put_back_old(staging: Path) -> None:
    # Killed between moving the old folder aside and renaming the new one in: the old one is
    # the only copy, so it goes back to its name instead of being swept.
    out = staging.parent / staging.name[1:].rsplit(".", 1)[0]
    if (staging / "old").is_dir() and not out.exists():
        (staging / "old").rename(out)


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FarolError(f"File not found: {path}")
    with open(path, "rb") as f:  # decoded line by line, so a bad byte is named at its line
        for lineno, data in enumerate(f, start=1):
            line = _decode(data, path, lineno)
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise FarolError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise FarolError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


def _decode(data: bytes, path: Path, lineno: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FarolError(f"{path}:{lineno}: not UTF-8 text") from None


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_log(path: str | Path) -> list[dict]:
    """The complete rows of an append-only JSON Lines log ([] if it does not exist yet).

    A last line without its newline is still being written, or was cut by a crash, so it is
    left out; a complete line that is not JSON is damage and raises, naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(True), 1):
        if not line.endswith("\n") or not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise FarolError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows
