"""farol-data throughput on synthetic records (pytest-benchmark).

The target is >= 20,000 records/s on one core for reading + validation + repair + exact dedup
(`collect` with near-dedup off). Near-dedup (MinHash LSH) and the whole `prepare` (with split
and writing) are measured separately. Under --benchmark-disable the suite runs them once on
2,000 records so they stay quick; run them for real with:

    .venv/bin/python -m pytest benchmarks/test_prepare_speed.py --benchmark-enable \
        --benchmark-columns=min,mean,rounds --benchmark-json=/tmp/prepare-bench.json

and read records_per_s_cpu / records_per_s_wall under extra_info in that JSON (`invoke bench`
writes them as figures: median, min and max over the rounds).
"""

import json
import random
import statistics
import time

import pytest
from farol_core.config import load_config
from farol_data import prepare
from farol_data.prepare import collect, raw_records

FULL = 100_000
QUICK = 2_000
WORDS = (
    "Farense", "Faro", "Algarve", "estádio", "São", "Luís", "época", "golo", "treinador",
    "jogador", "taça", "campeonato", "fundado", "clube", "adeptos", "vitória", "derrota",
    "empate", "final", "Portugal", "história",
)


def synthetic(n: int, seed: int = 0) -> list[str]:
    """JSON Lines of the supported formats, with ~2% exact duplicates, ~1% broken lines and
    ~5% mojibake."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.01:
            out.append("{broken json " + str(i))
            continue
        if r < 0.03 and out:
            out.append(out[rng.randrange(len(out))])
            continue
        question = f"Pergunta {i}: " + " ".join(rng.choices(WORDS, k=8)) + "?"
        answer = f"Resposta {i}. " + " ".join(rng.choices(WORDS, k=rng.randint(12, 60))) + "."
        if r < 0.08:
            answer = answer.encode("utf-8").decode("latin-1")  # mojibake to repair
        out.append(json.dumps(_shape(i, question, answer), ensure_ascii=False))
    return out


def _shape(i: int, question: str, answer: str) -> dict:
    if i % 3 == 0:
        return {"prompt": question, "completion": answer, "category": f"c{i % 7}"}
    if i % 3 == 1:
        return {"instrucao": question, "contexto": "", "resposta": answer}
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}], "conversation_id": i}


@pytest.fixture
def records_file(tmp_path, benchmark):
    n = QUICK if benchmark.disabled else FULL
    path = tmp_path / "synthetic.jsonl"
    path.write_text("\n".join(synthetic(n)) + "\n", encoding="utf-8")
    return path, n


def _measure(benchmark, fn, n: int, rounds: int):
    """Run `fn` under the benchmark; record records/s by wall time and by this process's CPU
    time (the one-core figure, steady even when other jobs share the machine)."""
    cpu = []

    def timed():
        start = time.process_time()
        result = fn()
        cpu.append(time.process_time() - start)
        return result

    result = benchmark.pedantic(timed, rounds=1 if benchmark.disabled else rounds, iterations=1)
    if benchmark.stats:
        # The record count is a setting, not a figure to judge; the rates keep every round, so
        # bench-compare sees their spread.
        rates = [n / c for c in cpu]
        benchmark.extra_info.update(
            settings={"records": n},
            records_per_s_wall={"per_round": n, "unit": "records/s"},
            records_per_s_cpu={"median": statistics.median(rates), "min": min(rates),
                               "max": max(rates), "rounds": len(rates), "unit": "records/s",
                               "better": "higher"})
    return result


def test_validation_repair_exact_dedup(benchmark, records_file):
    path, n = records_file
    cfg = load_config("data", {"near_duplicate_threshold": None})
    tally = _measure(benchmark, lambda: collect(raw_records([path], None, cfg), cfg), n, 3)
    assert len(tally.kept) + tally.rejects.count + len(tally.duplicates) == n
    assert tally.duplicates and tally.rejects.count


def test_near_dedup(benchmark, records_file):
    path, n = records_file
    cfg = load_config("data", {})
    tally = _measure(benchmark, lambda: collect(raw_records([path], None, cfg), cfg), n, 1)
    assert len(tally.kept) + tally.rejects.count + len(tally.duplicates) == n


def test_whole_prepare(benchmark, records_file, tmp_path):
    path, n = records_file
    result = _measure(benchmark, lambda: prepare([path], tmp_path / "out",
                                                 config={"near_duplicate_threshold": None}), n, 3)
    assert result.report["read"] == n
