"""No request waits on a later one: requests that arrive together, or a few ms apart, and then
silence, each get their final line, with nothing else written to the bridge meanwhile.

A bot whose users ask at the same moment writes several lines at once and then nothing; a
stuck request there would wait until some other user writes. Replies are matched by id, never
by their text (a model may answer every prompt alike)."""

import json
import os
import select
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.farol_bridge.conftest import BIN, serving

BOUND_S = 30  # far above any answer here (well under 1 s alone); a stalled request never comes
PROMPTS = ["Quem foi Hassan Nader?", "Olá", "Em que ano foi fundado o Farense?", "Faro",
           "Fala-me do Estádio de São Luís com muito detalhe, por favor"]


@pytest.fixture(scope="module")
def live(tiny_4bit):
    yield from serving(tiny_4bit)


def generate(rid, i, **options):
    return {"id": rid, "op": "generate", "prompt": PROMPTS[i % len(PROMPTS)],
            "max_tokens": 4 + 7 * (i % 3), **options}


def answered(server, ids, timeout=BOUND_S):
    """The final line of every id in `ids`, waiting while nothing is written to the bridge."""
    return {rid: server.final(rid, timeout) for rid in ids}


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9, 16])
def test_requests_in_one_write_then_silence(live, n):
    ids = [f"w{n}-{i}" for i in range(n)]
    live.send(*[generate(rid, i, stream=i % 2 == 0) for i, rid in enumerate(ids)])
    finals = answered(live, ids)
    assert all(r["status"] == "ok" for r in finals.values()), finals
    assert all(r["usage"]["completion_tokens"] <= 4 + 7 * (i % 3) for i, r in
               enumerate(finals.values()))


@pytest.mark.parametrize("n", [2, 3, 8, 9, 16])
def test_separate_writes_ms_apart_then_silence(live, n):
    ids = [f"s{n}-{i}" for i in range(n)]
    for i, rid in enumerate(ids):
        live.send(generate(rid, i))
        time.sleep(0.001 * (i % 4))
    assert all(r["status"] == "ok" for r in answered(live, ids).values())


@pytest.mark.parametrize("n", [2, 8, 16])
def test_a_cancel_among_them(live, n):
    ids = [f"c{n}-{i}" for i in range(n)]
    victim = ids[n // 2]
    live.send(*[generate(rid, i, max_tokens=2000 if rid == victim else 8)
                for i, rid in enumerate(ids)],
              {"id": f"cancel-{n}", "op": "cancel", "target": victim})
    finals = answered(live, [*ids, f"cancel-{n}"])
    assert finals[victim]["error"]["code"] == "cancelled"
    assert all(finals[rid]["status"] == "ok" for rid in ids if rid != victim)


def test_sigint_cancels_current_work_and_exits_0(spawn):
    server = spawn()
    server.send(generate("long", 1, max_tokens=2000, stream=True),
                generate("queued", 2, max_tokens=2000, temperature=0.5, seed=1))
    server.wait_for(lambda x: x.get("event") == "token")
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(30) == 0
    for rid in ("long", "queued"):
        assert server.final(rid)["error"]["code"] == "cancelled"


# One arrival schedule: bursts of generates, gaps, cancels of earlier ids, and pings.
EVENTS = st.lists(st.one_of(
    st.tuples(st.just("burst"), st.integers(1, 9), st.booleans()),
    st.tuples(st.just("gap"), st.sampled_from([0.0, 0.001, 0.005, 0.03])),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
    st.tuples(st.just("ping"))), min_size=1, max_size=8)
SCHEDULES = iter(range(10**9))


@pytest.mark.slow
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(events=EVENTS)
def test_any_arrival_schedule_answers_everything_then_rests(live, events):
    k, ids, expect = next(SCHEDULES), [], {}
    for event in events:
        if event[0] == "burst":
            new = [f"h{k}-{len(ids) + i}" for i in range(event[1])]
            live.send(*[generate(rid, len(ids) + i, stream=event[2]) for i, rid in enumerate(new)])
            ids += new
            expect.update(dict.fromkeys(new, "generate"))
        elif event[0] == "gap":
            time.sleep(event[1])
        elif event[0] == "cancel" and ids:
            target, rid = ids[event[1] % len(ids)], f"h{k}-cancel-{len(expect)}"
            live.send({"id": rid, "op": "cancel", "target": target})
            expect[rid] = "cancel"
        elif event[0] == "ping":
            rid = f"h{k}-ping-{len(expect)}"
            live.send({"id": rid, "op": "ping"})
            expect[rid] = "ping"
    finals = answered(live, list(expect))  # and from here on, silence
    for rid, kind in expect.items():
        reply = finals[rid]
        if kind == "generate":
            assert reply["status"] == "ok" or reply["error"]["code"] == "cancelled", reply
        else:
            assert reply["response"] in {"ping": ["pong"], "cancel": ["cancelling",
                                                                      "not_running"]}[kind]
    ended = [x for x in live.lines if x.get("id") in expect and "status" in x]
    assert len(ended) == len(expect), "one final line per request, no more"


@pytest.mark.parametrize("n", [2, 3])
def test_every_final_line_is_on_the_pipe_when_written(tiny_4bit, n):
    # Finals of one batch step are written back to back and often arrive in one read. The
    # bridge flushes each line; a client must read the pipe as a stream (see the protocol doc).
    proc = subprocess.Popen([str(BIN / "farol-bridge"), "serve", "--model", str(tiny_4bit)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        fd, buf, finals = proc.stdout.fileno(), b"", set()
        proc.stdin.write(b"".join(json.dumps(generate(i, i)).encode() + b"\n" for i in range(n)))
        proc.stdin.flush()
        deadline = time.monotonic() + BOUND_S
        while len(finals) < n and select.select([fd], [], [], deadline - time.monotonic())[0]:
            *lines, buf = (buf + os.read(fd, 1 << 16)).split(b"\n")
            finals |= {json.loads(x).get("id") for x in lines if b'"status"' in x}
        assert finals == set(range(n))
    finally:
        proc.kill()
        proc.wait()
