"""A temporary JSON Lines file that holds records while the pipeline streams.

Only each record's offset stays in memory, so preparing 100,000 records takes about as much
memory as preparing 1,000; the records are read back when the splits and report are written.
"""

import json
import tempfile
from collections.abc import Iterable, Iterator


class Spool:
    """Append records, get an offset back; read any record again by its offset."""

    def __init__(self):
        self.file = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed by close())
        self.end = 0
        self.count = 0
        self.reading = False  # seek back to the end only after a read: seeking flushes

    def add(self, record: dict) -> int:
        """Write `record`; returns the offset to read it back with."""
        offset = self.end
        if self.reading:
            self.file.seek(offset)
            self.reading = False
        # A lone surrogate ("\\ud83d" in the input) can't be UTF-8; backslashreplace writes it
        # back as that same JSON escape, so a rejected record's raw text round-trips.
        data = json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"
        self.file.write(data)
        self.end += len(data)
        self.count += 1
        return offset

    def line(self, offset: int) -> str:
        """The JSON line at `offset`, newline included."""
        self.reading = True
        self.file.seek(offset)
        return self.file.readline().decode("utf-8")

    def get(self, offset: int) -> dict:
        """The record at `offset`."""
        return json.loads(self.line(offset))

    def lines(self, offsets: Iterable[int]) -> Iterator[str]:
        """The JSON lines at `offsets`, in that order."""
        return (self.line(o) for o in offsets)

    def __iter__(self) -> Iterator[str]:
        """Every line, in the order added."""
        self.reading = True
        self.file.seek(0)
        for data in iter(self.file.readline, b""):
            yield data.decode("utf-8")

    def close(self) -> None:
        self.file.close()
