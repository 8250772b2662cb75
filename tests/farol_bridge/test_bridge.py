"""Smoke test of farol-bridge: farol-ask's JSON, and the server's protocol lines."""

import json
import os
import subprocess
import sys
from pathlib import Path

from farol_bridge import Bridge
from farol_bridge.ask import ask

from tests.farol_bridge.serving import handle

BIN = Path(sys.executable).parent


def run_ask(*args):
    proc = subprocess.run([str(BIN / "farol-ask"), *args], capture_output=True, text=True,
                          timeout=120)
    return proc, json.loads(proc.stdout)


def test_farol_ask_prints_the_shape_the_bot_parses(tiny_4bit, trained_run):
    result, _ = trained_run
    proc, reply = run_ask("Quem foi Hassan Nader?", "--model", str(tiny_4bit),
                          "--adapter-path", str(result.run_dir), "--max-tokens", "8")
    assert proc.returncode == 0
    assert set(reply) == {"prompt", "response", "status"}
    assert reply["status"] == "success" and reply["prompt"] == "Quem foi Hassan Nader?"
    # greedy by default: the same answer as the tuned model gives in-process
    expected = ask("Quem foi Hassan Nader?", str(tiny_4bit), str(result.run_dir), max_tokens=8)
    assert reply["response"] == expected.text
    assert len(proc.stdout.strip().splitlines()) == 1  # nothing else on stdout


def test_farol_ask_errors_are_json_with_nonzero_exit(tmp_path):
    proc, reply = run_ask("Olá?", "--model", str(tmp_path / "nope"))
    assert proc.returncode == 1
    assert reply["status"] == "error" and "Model not found" in reply["error"]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_bridge_answers_and_survives_bad_lines(tiny_4bit):
    bridge = Bridge(str(tiny_4bit))
    reply, more = handle(bridge, json.dumps({"id": 1, "op": "generate", "prompt": "Olá",
                                             "max_tokens": 4}))
    assert more and reply["status"] == "ok" and reply["id"] == 1
    assert reply["usage"]["completion_tokens"] <= 4 and reply["finish_reason"] in ("stop", "length")
    for line, code in ((b"{nope", "bad_json"), (b"\xff\xfe", "bad_json"), (b"[1]", "bad_request"),
                       (b'{"id": 2, "op": "fly"}', "unknown_op"),
                       (b'{"id": 3, "op": "generate"}', "bad_request"),
                       (b'{"id": 4, "op": "generate", "prompt": "x", "max_tokens": -1}',
                        "bad_request")):
        reply, more = handle(bridge, line)
        assert more and reply["status"] == "error" and reply["error"]["code"] == code
    reply, more = handle(bridge, '{"id": "s", "op": "shutdown"}')
    assert reply["status"] == "ok" and not more


def test_serve_process_speaks_json_lines(tiny_4bit):
    requests = ['{"id": 1, "op": "ping"}', "garbage",
                '{"id": 2, "op": "generate", "messages": [{"role": "user", "content": "Olá"}],'
                ' "max_tokens": 3}', '{"id": 3, "op": "info"}']
    proc = subprocess.run([str(BIN / "farol-bridge"), "serve", "--model", str(tiny_4bit)],
                          input="\n".join(requests) + "\n", capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["event"] == "ready"
    by_id = {x.get("id"): x for x in lines[1:]}  # generate runs beside the reader: any order
    assert len(lines) == 5 and set(by_id) == {1, None, 2, 3}
    assert [by_id[i]["status"] for i in (1, None, 2, 3)] == ["ok", "error", "ok", "ok"]
    assert by_id[3]["device"]["backend"] in ("cpu", "metal", "cuda")


def test_replies_are_utf8_whatever_the_locale_and_never_dropped(tiny_4bit):
    # A latin-1 stdout used to swallow the reply to "€"; a lone surrogate was dropped anywhere.
    requests = ['{"id": "€ã", "op": "ping"}', '{"id": "\\ud800", "op": "ping"}',
                '{"id": 3, "op": "ping"}']
    proc = subprocess.run([str(BIN / "farol-bridge"), "serve", "--model", str(tiny_4bit)],
                          input="\n".join(requests).encode() + b"\n", capture_output=True,
                          timeout=120, env={**os.environ, "PYTHONIOENCODING": "latin-1"})
    lines = [json.loads(x) for x in proc.stdout.decode("utf-8").splitlines()[1:]]
    assert sorted(str(x["id"]) for x in lines) == sorted(["€ã", "\ud800", "3"])
    assert all(x["response"] == "pong" for x in lines)
