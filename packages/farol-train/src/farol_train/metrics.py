"""metrics.jsonl: one JSON object per report, appended and flushed as training goes."""

import json
from pathlib import Path


class MetricsLog:
    """Append-only JSON Lines log; a crash can cut only the line being written."""

    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.rows.append(row)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
