"""Driving the real `serve` loop in-process: stdin bytes in, stdout lines out."""

import io
import json

from farol_bridge.protocol import check_reply
from farol_bridge.server import serve


def served(bridge, *lines: bytes | str) -> list[dict]:
    """The replies `serve` writes for `lines` sent as one stdin, then EOF (ready line left out);
    every one is schema-checked."""
    data = b"".join((x.encode() if isinstance(x, str) else x) + b"\n" for x in lines)
    out = io.StringIO()
    assert serve(bridge, io.BytesIO(data), out) == 0
    replies = [json.loads(line) for line in out.getvalue().split("\n") if line]
    for reply in replies:
        check_reply(reply)
    assert replies[0]["event"] == "ready"
    return replies[1:]


AFTER = "ping after the line under test"


def handle(bridge, line):
    """(final reply, serving went on) for one line through `serve`: a ping follows the line,
    and its pong shows whether the bridge still reads."""
    finals = [r for r in served(bridge, line, json.dumps({"id": AFTER, "op": "ping"}))
              if "status" in r]
    mine = [r for r in finals if r.get("id") != AFTER]
    assert len(mine) == 1, finals
    return mine[0], any(r.get("id") == AFTER for r in finals)
