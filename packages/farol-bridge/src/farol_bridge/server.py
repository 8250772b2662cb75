"""The long-lived bridge: the model loads once, then every stdin line gets one stdout line.

stdout carries protocol lines only; logs, and anything a library prints, go to stderr.
"""

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import IO

from farol_core import device
from farol_core.config import load_config
from farol_core.generate import complete, prompt_tokens
from farol_core.model import load_model

from farol_bridge import protocol
from farol_bridge.protocol import RequestError

MAX_LINE_BYTES = 1 << 20


class Bridge:
    """A loaded model and the limits that guard it; `handle` answers one request line."""

    def __init__(self, model: str, adapter: str | None = None, **limits):
        self.limits = load_config("bridge", None, limits)
        self.model_path, self.adapter_path = model, adapter
        self.model, self.tokenizer = load_model(model, adapter)

    def ready(self) -> dict:
        return {"v": protocol.VERSION, "event": "ready", "model": self.model_path,
                "adapter": self.adapter_path}

    def handle(self, line: str | bytes) -> tuple[dict, bool]:
        """(reply, keep serving) for one raw input line; never raises."""
        try:
            request = _parse(line)
            return self._dispatch(request), request.get("op") != "shutdown"
        except RequestError as e:
            return protocol.error(e.request_id, e.code, e.message), True
        except Exception as e:  # the bridge must outlive any single request
            return protocol.error(None, "internal", f"{type(e).__name__}: {e}"), True

    def _dispatch(self, request: dict) -> dict:
        rid, op = request.get("id"), request.get("op")
        if op == "ping":
            return protocol.ok(rid, response="pong")
        if op == "info":
            return protocol.ok(rid, model=self.model_path, adapter=self.adapter_path,
                               limits=self.limits, device=device.facts())
        if op == "shutdown":
            return protocol.ok(rid, response="bye")
        if op == "generate":
            return self._generate(request)
        raise RequestError("unknown_op", f"unknown op {op!r}; expected one of {protocol.OPS}", rid)

    def _generate(self, request: dict) -> dict:
        protocol.check_generate(request)
        rid, lim = request.get("id"), self.limits
        source = request.get("prompt", request.get("messages"))
        n_prompt = len(prompt_tokens(self.tokenizer, source, lim["system_prompt"]))
        if n_prompt > lim["max_prompt_tokens"]:
            raise RequestError("too_long", f"prompt has {n_prompt} tokens; the limit is "
                               f"{lim['max_prompt_tokens']}", rid)
        max_tokens = min(request.get("max_tokens", lim["max_tokens"]), lim["max_tokens_cap"])
        done = complete(self.model, self.tokenizer, source, max_tokens=max(max_tokens, 1),
                        temperature=request.get("temperature", lim["temperature"]),
                        top_p=request.get("top_p", lim["top_p"]), stop=request.get("stop", []),
                        system=lim["system_prompt"])
        return protocol.ok(
            rid, response=done.text, finish_reason=done.finish_reason,
            usage={"prompt_tokens": done.prompt_tokens,
                   "completion_tokens": done.completion_tokens},
            timing={"prompt_tps": done.prompt_tps, "generation_tps": done.generation_tps,
                    "seconds": done.seconds},
        )


def _parse(line: str | bytes) -> dict:
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise RequestError("too_long", f"line longer than {MAX_LINE_BYTES} bytes")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("bad_json", "line is not UTF-8") from None
    try:
        request = json.loads(line)
    except json.JSONDecodeError as e:
        raise RequestError("bad_json", f"not valid JSON: {e.msg}") from None
    if not isinstance(request, dict):
        raise RequestError("bad_request", "a request must be a JSON object")
    rid = request.get("id")
    if rid is not None and (isinstance(rid, bool) or not isinstance(rid, str | int | float)):
        raise RequestError("bad_request", "'id' must be a string or a number")
    return request


def serve(bridge: Bridge, stdin: IO[bytes], stdout: IO[str]) -> int:
    """Answer stdin line by line until EOF or `shutdown`; returns the exit status."""
    _emit(stdout, bridge.ready())
    for raw in stdin:
        if not raw.strip():
            continue
        reply, keep_going = bridge.handle(raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw)
        _emit(stdout, reply)
        if not keep_going:
            break
    return 0


def _emit(stdout: IO[str], obj: dict) -> None:
    stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    stdout.flush()


@contextlib.contextmanager
def protocol_stdout() -> Iterator[IO[str]]:
    """Yield the real stdout for protocol lines while `sys.stdout` points at stderr, so that
    nothing a library prints can corrupt the protocol."""
    real = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield real
    finally:
        sys.stdout = real
