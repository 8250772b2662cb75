"""Soak: 8 concurrent clients with random think-times send generate requests to one bridge.
Every request must be answered (0 lost) and none may wait far beyond its own generation time
(0 stalled). Time-to-final-line is set against the same request's time alone on an idle bridge.

With benchmarks enabled it sends 2,000 requests; in the test suite (`--benchmark-disable`) 64.
"""

import json
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLIENTS = 8
STALL_S = 30  # a reply this late counts as stalled (every answer here takes well under 1 s)
KINDS = [(p, n) for p in ("Olá", "Quem foi Hassan Nader?", "Fala-me do Farense em 1990")
         for n in (4, 16, 48)]


class Soak:
    """One bridge subprocess; finals are matched to their requests by id on a reader thread."""

    def __init__(self, model: Path):
        self.proc = subprocess.Popen([str(BIN / "farol-bridge"), "serve", "--model", str(model)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        assert json.loads(self.proc.stdout.readline())["event"] == "ready"
        self.waiting: dict = {}  # id -> [event, reply, arrival time]
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            reply = json.loads(line)
            if "status" in reply:
                with self.lock:
                    slot = self.waiting.get(reply["id"])
                if slot:
                    slot[1:] = [reply, time.perf_counter()]
                    slot[0].set()

    def ask(self, rid: str, prompt: str, max_tokens: int) -> tuple[dict | None, float]:
        """(final reply or None when stalled, seconds from the write to the final line)."""
        slot = [threading.Event(), None, None]
        with self.lock:
            self.waiting[rid] = slot
            start = time.perf_counter()
            self.proc.stdin.write(json.dumps({"id": rid, "op": "generate", "prompt": prompt,
                                              "max_tokens": max_tokens}).encode() + b"\n")
        if not slot[0].wait(STALL_S):
            return None, STALL_S
        return slot[1], slot[2] - start

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(60)


def alone_seconds(soak: Soak) -> dict:
    """Each kind of request's time to its final line on an idle bridge (median of 3)."""
    times = {}
    for k, (prompt, n) in enumerate(KINDS):
        runs = [soak.ask(f"alone-{k}-{r}", prompt, n)[1] for r in range(4)][1:]  # 1st warms up
        times[(prompt, n)] = statistics.median(runs)
    return times


def client(soak: Soak, c: int, count: int, rng: random.Random, out: list) -> None:
    for i in range(count):
        time.sleep(rng.expovariate(1 / 0.02))  # think-time, 20 ms on average
        prompt, n = rng.choice(KINDS)
        reply, seconds = soak.ask(f"c{c}-{i}", prompt, n)
        out.append((prompt, n, reply, seconds))


def pct(values: list[float], q: float) -> float:
    return round(sorted(values)[min(len(values) - 1, int(q * len(values)))], 4)


@pytest.mark.slow
def test_soak_8_clients_nothing_lost_nothing_stalled(benchmark, tiny_4bit):
    total = 64 if benchmark.disabled else 2000
    soak = Soak(tiny_4bit)
    try:
        alone = alone_seconds(soak)
        done: list = []

        def run():
            threads = [threading.Thread(target=client, args=(
                soak, c, total // CLIENTS, random.Random(c), done)) for c in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return len(done)

        benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        soak.close()
    stalled = [d for d in done if d[2] is None]
    answered = [d for d in done if d[2] is not None]
    ttf = [d[3] for d in answered]
    over = [d[3] / alone[(d[0], d[1])] for d in answered]
    gen = [d[2]["timing"]["seconds"] for d in answered]
    figures = {"requests": total, "clients": CLIENTS, "lost": total - len(done),
               "stalled": len(stalled), "errors": sum(d[2]["status"] != "ok" for d in answered),
               "ttf_p50_s": pct(ttf, 0.5), "ttf_p99_s": pct(ttf, 0.99),
               "alone_p50_s": pct(list(alone.values()), 0.5),
               "ttf_over_alone_p50": pct(over, 0.5), "ttf_over_alone_p99": pct(over, 0.99),
               "generation_p50_s": pct(gen, 0.5), "generation_p99_s": pct(gen, 0.99)}
    benchmark.extra_info.update(figures)
    print(f"\nbridge_soak: {figures}")
    assert figures["lost"] == 0 and figures["stalled"] == 0 and figures["errors"] == 0, figures
