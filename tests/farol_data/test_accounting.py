"""read == kept + rejected + duplicates on any input, however broken; large inputs show a bar."""

import json
import string

from farol_data import prepare
from farol_data.console import prepare_with_console
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

WORDS = st.text(alphabet=string.ascii_letters + "áãçé €—Ã©\n\t\x00", min_size=0, max_size=40)
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | WORDS,
                           lambda inner: st.lists(inner, max_size=3), max_leaves=5)
FIELDS = st.sampled_from(["prompt", "completion", "instruction", "output", "instrucao",
                          "resposta", "messages", "text", "category", "player", "x"])
RECORDS = st.dictionaries(FIELDS, JSON_VALUES | st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "bot"]),
                           "content": WORDS}), max_size=3), max_size=4)
LINES = st.one_of(RECORDS.map(lambda r: json.dumps(r).encode()),
                  st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
                  WORDS.map(lambda w: w.replace("\n", " ").encode()))
GOOD = json.dumps({"prompt": "Onde fica Faro?", "completion": "Faro fica no Algarve."}).encode()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(LINES, max_size=25))
def test_every_line_is_kept_rejected_or_a_duplicate(tmp_path, garbage):
    src = tmp_path / "garbage.jsonl"
    src.write_bytes(b"\n".join([GOOD, *garbage]) + b"\n")
    r = prepare([src], tmp_path / "out", config={"split": {"train": 1, "valid": 0, "test": 0}}
                ).report
    nonblank = sum(1 for line in src.read_bytes().splitlines() if line.strip())
    assert r["read"] == nonblank == r["kept"] + r["rejected"] + r["duplicates"]
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == r["rejected"]
    assert sum(1 for _ in (tmp_path / "out" / "train.jsonl").open()) == r["kept"]


def test_large_inputs_show_a_progress_bar(tmp_path, monkeypatch):
    import farol_data.console as console_mod

    src = tmp_path / "big.jsonl"
    src.write_bytes(b"\n".join(GOOD.replace(b"Faro?", f"Faro {i}?".encode())
                               for i in range(200)) + b"\n")
    monkeypatch.setattr(console_mod, "LARGE_INPUT_BYTES", 1000)
    seen = []
    monkeypatch.setattr(console_mod.Progress, "advance", lambda self, task, n: seen.append(n))
    console = Console(record=True, width=120)
    prepare_with_console([src], tmp_path / "out", console=console,
                         config={"near_duplicate_threshold": None})
    assert sum(seen) == src.stat().st_size
    assert "200 = kept 200 + rejected 0 + duplicates 0" in console.export_text()
