"""The bridge as the bot runs it: a subprocess with several requests in flight."""

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

from farol_bridge.protocol import MAX_LINE_BYTES

BIN = Path(sys.executable).parent

PROMPTS = ["Quem foi Hassan Nader?", "Olá", "Em que ano foi fundado o Farense?",
           "Fala-me do Estádio de São Luís", "Quem treinou o Farense em 1990?"]


def generate(rid, prompt, **options):
    return {"id": rid, "op": "generate", "prompt": prompt, **options}


def test_concurrent_requests_are_batched_and_match_their_alone_answers(server):
    alone = {}
    for i, prompt in enumerate(PROMPTS):
        server.send(generate(f"a{i}", prompt, max_tokens=8))
        alone[i] = server.final(f"a{i}")
    assert not any(r["timing"]["batched"] for r in alone.values())
    server.send(*[generate(f"b{i}", p, max_tokens=8) for i, p in enumerate(PROMPTS)])
    together = {i: server.final(f"b{i}") for i in range(len(PROMPTS))}
    assert all(r["timing"]["batched"] for r in together.values())
    for i in alone:
        assert together[i]["response"] == alone[i]["response"], PROMPTS[i]
        assert together[i]["usage"] == alone[i]["usage"]


def test_streamed_tokens_add_up_to_the_response(server):
    server.send(generate(1, "Quem foi Hassan Nader?", max_tokens=12, stream=True),
                generate(2, "Olá", max_tokens=12, stream=True, stop=[" 19"]))
    for rid in (1, 2):
        final = server.final(rid)
        tokens = [x["text"] for x in server.lines if x.get("id") == rid and "event" in x]
        assert tokens and "".join(tokens) == final["response"]
        assert server.lines.index(final) > max(i for i, x in enumerate(server.lines)
                                               if x.get("id") == rid and "event" in x)


def test_cancel_stops_a_running_generation(server):
    server.send(generate("long", "Olá", max_tokens=2000, stream=True))
    server.wait_for(lambda x: x.get("id") == "long" and x.get("event") == "token")
    server.send({"id": "c", "op": "cancel", "target": "long"})
    assert server.final("c")["response"] == "cancelling"
    reply = server.final("long")
    assert reply["status"] == "error" and reply["error"]["code"] == "cancelled"
    server.send({"id": "c2", "op": "cancel", "target": "long"}, {"id": "p", "op": "ping"})
    assert server.final("c2")["response"] == "not_running"
    assert server.final("p")["response"] == "pong"


def test_ids_in_flight_must_be_unique(server):
    server.send(generate(5, "Olá", max_tokens=400), generate(5, "Olá", max_tokens=4))
    dup = server.wait_for(lambda x: x.get("id") == 5 and x.get("status") == "error")
    assert dup["error"]["code"] == "duplicate_id"
    assert server.wait_for(lambda x: x.get("id") == 5 and x.get("status") == "ok")


def test_eof_answers_current_work_then_exits_0(server):
    server.send(generate(1, "Olá", max_tokens=30), generate(2, "Farense", max_tokens=30))
    assert server.close() == 0
    assert {server.final(1)["status"], server.final(2)["status"]} == {"ok"}


def test_shutdown_waits_for_work_then_says_bye_last(server):
    server.send(generate(1, "Olá", max_tokens=30), {"id": "s", "op": "shutdown"},
                {"id": "late", "op": "ping"})
    assert server.proc.wait(30) == 0
    assert server.lines[-1] == {"v": 1, "id": "s", "status": "ok", "response": "bye"}
    assert server.final(1)["status"] == "ok"
    assert not [x for x in server.lines if x.get("id") == "late"]


def test_sigterm_cancels_current_work_and_exits_0(server):
    server.send(generate("long", "Olá", max_tokens=2000, stream=True),
                generate("queued", "Farense", max_tokens=2000))
    server.wait_for(lambda x: x.get("event") == "token")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    for rid in ("long", "queued"):
        assert server.final(rid)["error"]["code"] == "cancelled"


def test_hostile_lines_through_stdin(server):
    server.send(b"\xff\xfe\xfd\n", b"x" * (MAX_LINE_BYTES * 3) + b"\n", b"\n", b"[]\r\n",
                b'{"id": 9, "op": "ping"}\n')
    assert server.final(9)["response"] == "pong"
    codes = [x["error"]["code"] for x in server.lines if x.get("status") == "error"]
    assert codes == ["bad_json", "too_long", "bad_request"]


def test_random_lines_never_kill_the_process(server):
    rng = random.Random(6)
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b" ")
            for _ in range(300)]
    junk += [json.dumps({"id": i, "op": rng.choice(["ping", "generate", "cancel", "info"]),
                         rng.choice(["prompt", "target", "stop"]): rng.choice([1, "x", [], None])}
                        ).encode() for i in range(300)]
    rng.shuffle(junk)
    server.send(*[line + b"\n" for line in junk], {"id": "end", "op": "ping"})
    assert server.final("end", timeout=60)["response"] == "pong"
    answered = 1 + sum(1 for line in junk if line.strip()) + 1  # ready, one per line, "end"
    server.wait_for(lambda _: len(server.lines) >= answered, timeout=60)
    assert server.proc.poll() is None


def test_sigterm_when_idle_exits_0(server):
    server.send({"id": 1, "op": "ping"})
    server.final(1)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0


def test_lone_surrogates_in_a_prompt_are_answered_with_the_id(server):
    # JSON.stringify sends half an emoji that a client cut off as "\ud83d". The tokenizer
    # refused it, and the id-less internal error left the client waiting for its timeout.
    server.send(b'{"id": 1, "op": "generate", "prompt": "Ol\\u00e1 \\ud83d", "max_tokens": 2}\n',
                b'{"id": 2, "op": "generate", "max_tokens": 2,'
                b' "messages": [{"role": "user", "content": "\\udc00 Farense"}]}\n')
    assert [server.final(i, timeout=10)["status"] for i in (1, 2)] == ["ok", "ok"]


def test_a_closed_stdout_cancels_the_work_and_exits_0(tiny_4bit):
    # The client went away (its end of stdout is closed; stdin may stay open): nobody can read
    # the answers, so the bridge must not go on generating 4 x 2000 tokens, then wait for input.
    proc = subprocess.Popen([str(BIN / "farol-bridge"), "serve", "--model", str(tiny_4bit)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        proc.stdout.readline()  # ready
        proc.stdin.write(b"".join(json.dumps(generate(i, "Olá", max_tokens=2000, stream=True))
                                  .encode() + b"\n" for i in range(4)))
        proc.stdin.flush()
        proc.stdout.readline()  # the first token line
        proc.stdout.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
