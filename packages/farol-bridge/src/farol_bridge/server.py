"""The long-lived bridge: the model loads once, then it answers JSON Lines on stdin/stdout.

A reader thread parses and checks each line and answers ping, info, cancel and bad input at
once; generate requests go to the generation worker (worker.py), so several can be in flight.
stdout carries protocol lines only; logs, and anything a library prints, go to stderr.
"""

import contextlib
import io
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import IO

from farol_core import device
from farol_core.config import load_config
from farol_core.generate import prompt_tokens
from farol_core.model import load_model

from farol_bridge import protocol
from farol_bridge.jobs import Job
from farol_bridge.protocol import MAX_LINE_BYTES, RequestError
from farol_bridge.worker import Worker

SAMPLING = ("temperature", "top_p", "repetition_penalty", "stop", "seed", "stream")


class Bridge:
    """A loaded model and the limits that guard it."""

    def __init__(self, model: str, adapter: str | None = None, **limits):
        self.limits = load_config("bridge", None, limits)
        self.model_path, self.adapter_path = str(model), adapter and str(adapter)
        self.model, self.tokenizer = load_model(model, adapter)

    def ready(self) -> dict:
        """The line that tells the client the model is loaded."""
        return {"v": protocol.VERSION, "event": "ready", "model": self.model_path,
                "adapter": self.adapter_path, "pid": os.getpid()}

    def info(self, rid) -> dict:
        """The `info` reply: model, adapter, versions, device and limits."""
        versions = {**device.versions(), "farol_bridge": _version(), "protocol": protocol.VERSION}
        return protocol.ok(rid, response="info", model=self.model_path,
                           adapter=self.adapter_path, versions=versions, device=device.facts(),
                           limits={**self.limits, "max_line_bytes": MAX_LINE_BYTES})

    def job(self, request: dict, emit) -> Job:
        """A checked generate request as a Job: prompt tokenized, length and max_tokens capped."""
        rid, lim = request["id"], self.limits
        tokens = prompt_tokens(self.tokenizer, _source(request), lim["system_prompt"])
        if len(tokens) > lim["max_prompt_tokens"]:
            raise RequestError("too_long", f"prompt has {len(tokens)} tokens; the limit is "
                               f"{lim['max_prompt_tokens']}", rid)
        max_tokens = min(request.get("max_tokens", lim["max_tokens"]), lim["max_tokens_cap"])
        options = {k: request[k] for k in SAMPLING if k in request}
        if "seed" in options:  # JSON Schema counts 3.0 as an integer; mlx's seed() takes no float
            options["seed"] = int(options["seed"])
        options.setdefault("temperature", lim["temperature"])
        options.setdefault("top_p", lim["top_p"])
        return Job(id=rid, tokens=tokens, max_tokens=max_tokens, emit=emit, **options)

    def answer(self, request: dict) -> dict:
        """The reply to ping, info or shutdown."""
        rid, op = request["id"], request["op"]
        if op == "info":
            return self.info(rid)
        return protocol.ok(rid, response="pong" if op == "ping" else "bye")


def _version() -> str:
    for dist in ("farol-bridge", "farol-workspace"):  # alone, or inside the workspace install
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return "unknown"


def _source(request: dict) -> str | list[dict]:
    """The request's prompt or messages, with lone surrogates as U+FFFD so they can be tokenized."""
    if "prompt" in request:
        return protocol.clean_text(request["prompt"])
    return [{**m, "content": protocol.clean_text(m["content"])} for m in request["messages"]]


class Emitter:
    """Writes whole protocol lines to stdout, one thread at a time; calls `on_broken` when a
    write fails because the client went away."""

    def __init__(self, stdout: IO[str], on_broken=lambda: None):
        self.stdout, self.lock, self.on_broken = stdout, threading.Lock(), on_broken

    def __call__(self, obj: dict) -> None:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"
        if not _utf8_ok(line):  # a lone surrogate (say, in an echoed id): escape it, don't drop
            line = json.dumps(obj, allow_nan=False) + "\n"
        try:
            with self.lock:
                self.stdout.write(line)
                self.stdout.flush()
        except (OSError, ValueError):  # EPIPE or a closed stdout: no answer can arrive now
            _to_devnull(self.stdout)
            self.on_broken()


def _to_devnull(stream: IO[str]) -> None:
    """Point a stdout whose reader went away at /dev/null. The line left in its buffer would
    fail again when Python flushes it at exit, which then exits 120 instead of 0 (unless
    PYTHONUNBUFFERED is set, as it may be where the tests pass and not where the bot runs)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def serve(bridge: Bridge, stdin: IO[bytes], stdout: IO[str]) -> int:
    """Answer stdin until EOF or `shutdown` (after finishing current work), or SIGTERM, SIGINT
    or a closed stdout (after cancelling it); returns the exit status, 0. Every input line goes
    through `_route`: there is no other way in."""
    worker = Worker(bridge.model, bridge.tokenizer)
    # A client that went away reads no answer: stop generating for it, and exit.
    out = Emitter(stdout, on_broken=lambda: worker.abort("stdout is closed"))
    restore = _on_signals(lambda name: worker.abort(f"the bridge received {name}"))
    out(bridge.ready())
    final: list[dict] = []
    threading.Thread(target=_read, args=(bridge, worker, out, stdin, final), daemon=True,
                     name="farol-read").start()
    worker.run()  # MLX work stays on this thread; only the reader is a second thread
    for reply in final:
        out(reply)
    restore()
    return 0


def _on_signals(action):
    """Run `action(name)` on SIGTERM and SIGINT (Ctrl+C, process managers) alike (main thread
    only); returns a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, lambda n, _: action(signal.Signals(n).name))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    return lambda: [signal.signal(sig, old) for sig, old in previous.items()]


def _read(bridge: Bridge, worker: Worker, out: Emitter, stdin, final: list) -> None:
    try:
        for lines in read_lines(stdin):
            with worker.burst():
                if not all(_route(bridge, worker, out, raw, final) for raw in lines
                           if raw is None or raw.strip()):
                    break
    except Exception as e:  # stdin itself failed: end as if at EOF
        print(f"farol-bridge: reading stdin failed: {e}", file=sys.stderr, flush=True)
    finally:
        worker.close()


def _route(bridge: Bridge, worker: Worker, out: Emitter, raw: bytes | None, final: list) -> bool:
    """Answer or queue one line; False after `shutdown`."""
    rid = None
    try:
        if raw is None:
            raise RequestError("too_long", f"line longer than {MAX_LINE_BYTES} bytes")
        request = protocol.parse_request(raw.rstrip(b"\r"))
        rid, op = request["id"], request["op"]
        if op == "generate":
            worker.submit(bridge.job(request, out))
        elif op == "cancel":
            found = worker.cancel(request["target"])
            out(protocol.ok(rid, response="cancelling" if found else "not_running"))
        elif op == "shutdown":
            final.append(bridge.answer(request))
            return False
        else:
            out(bridge.answer(request))
    except RequestError as e:
        out(protocol.error(e.request_id, e.code, e.message))
    except Exception as e:  # the bridge must outlive any single request
        # With the id, if it was read, the client stops waiting for this request.
        out(protocol.error(rid, "internal", f"{type(e).__name__}: {e}"))
    return True


def read_lines(stream, limit: int = MAX_LINE_BYTES) -> Iterator[list[bytes | None]]:
    """The lines of a binary stream, without newlines, as one list per read; None stands for a
    line over `limit` bytes, which is skipped without being held in memory."""
    read, buf, skipping = _raw_reader(stream), b"", False
    while chunk := read(1 << 16):
        *lines, buf = (buf + chunk).split(b"\n")
        if lines:
            yield [None if skipping and i == 0 else line for i, line in enumerate(lines)]
            skipping = False
        if len(buf) > limit:
            buf, skipping = b"", True
    if buf or skipping:
        yield [None if skipping else buf]


def _raw_reader(stream):
    # os.read on the descriptor: no buffered-reader lock for a daemon thread to hold at exit.
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return getattr(stream, "read1", stream.read)
    return lambda n: os.read(fd, n)


@contextlib.contextmanager
def protocol_stdout() -> Iterator[IO[str]]:
    """Yield the real stdout for protocol lines while `sys.stdout` points at stderr, so that
    nothing a library prints can corrupt the protocol."""
    real = sys.stdout
    if hasattr(real, "reconfigure"):  # the protocol is UTF-8 whatever the locale says
        real.reconfigure(encoding="utf-8", errors="strict")
    sys.stdout = sys.stderr
    try:
        yield real
    finally:
        sys.stdout = real
