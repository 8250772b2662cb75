"""Helpers for the bridge tests: a bridge subprocess speaking JSON Lines."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from farol_bridge import Bridge
from farol_bridge.protocol import check_reply

BIN = Path(sys.executable).parent


class BridgeProcess:
    """`farol-bridge serve` in a subprocess; every stdout line is schema-checked on arrival."""

    def __init__(self, model, *args):
        self.proc = subprocess.Popen([str(BIN / "farol-bridge"), "serve", "--model", str(model),
                                      *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines, self.cond = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda x: x.get("event") == "ready", timeout=60)

    def _read(self):
        for raw in self.proc.stdout:
            reply = json.loads(raw)
            check_reply(reply)
            with self.cond:
                self.lines.append(reply)
                self.cond.notify_all()

    def send(self, *requests):
        data = b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode()
                        for r in requests)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for(self, match, timeout=30):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (hits := [x for x in self.lines if match(x)]):
                assert self.proc.poll() is None or self.lines, "bridge died"
                assert self.cond.wait(deadline - time.monotonic()), f"timeout; got {self.lines}"
            return hits[0]

    def final(self, rid, timeout=30):
        return self.wait_for(lambda x: x.get("id") == rid and "status" in x, timeout)

    def close(self, timeout=30):
        self.proc.stdin.close()
        return self.proc.wait(timeout)


@pytest.fixture(scope="session")
def bridge(tiny_4bit):
    """One in-process Bridge with small caps, so fuzzed generate requests stay cheap."""
    return Bridge(str(tiny_4bit), max_tokens=4, max_tokens_cap=4, max_prompt_tokens=200)


def serving(model):
    """A BridgeProcess for a fixture to yield; killed afterwards if it is still running."""
    proc = BridgeProcess(model)
    yield proc
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


@pytest.fixture
def server(tiny_4bit):
    yield from serving(tiny_4bit)


@pytest.fixture
def spawn(tiny_4bit):
    """Start bridge subprocesses with extra options; all are killed after the test."""
    started = []

    def start(*args):
        started.append(BridgeProcess(tiny_4bit, *args))
        return started[-1]

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()
