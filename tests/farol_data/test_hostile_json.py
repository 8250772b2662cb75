"""Any bytes a user's file can hold: `farol-data prepare` (the CLI) never ends in a traceback,
and every non-blank line is kept, rejected or a duplicate."""

import json

from click.testing import CliRunner
from farol_data.cli import main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GOOD = json.dumps({"prompt": "Onde fica Faro?", "completion": "Faro fica no Algarve."}).encode()
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=20))
SHAPES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
FIELDS = st.sampled_from(["prompt", "completion", "messages", "text", "category", "player"])


def nested(depth: int, inside: bytes = b"1") -> bytes:
    """`depth` arrays or objects around `inside`: past Python's stack, `json` raises
    RecursionError; just under it, parsing works and later steps must cope."""
    return b'{"prompt": ' + b"[" * depth + inside + b"]" * depth + b', "completion": "x y z"}'


LINES = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    SHAPES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(FIELDS, SHAPES, max_size=4).map(lambda d: json.dumps(d).encode()),
    st.integers(1, 5000).map(nested),
    st.integers(4200, 9000).map(lambda n: b'{"prompt": ' + b"9" * n + b"}"),
    st.sampled_from([b'{"prompt": "\\ud83d", "completion": "meio emoji \\udc00 aqui"}',
                     b'{"prompt": NaN, "completion": Infinity}', b"[" * 100_000,
                     b'{"prompt": 1e999999}', b"\xef\xbb\xbf" + GOOD, b"\x00" * 5]))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(LINES, max_size=12), st.booleans())
def test_prepare_cli_accounts_for_any_line(tmp_path, lines, as_array):
    src, out = tmp_path / "hostile.jsonl", tmp_path / "out"
    body = [GOOD, *lines]
    # An array file is read item by item; a JSON Lines file line by line.
    src.write_bytes(b"[" + b",\n".join(body) + b"]\n" if as_array else b"\n".join(body) + b"\n")
    result = CliRunner().invoke(main, ["prepare", "--input", str(src), "--out", str(out),
                                       "--seed", "1"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if as_array and result.exit_code == 1:  # the good item came first but a broken array
        assert result.output.startswith("error: Nothing usable"), result.output  # can't
        return  # be read past its first non-UTF-8 byte, so the array was one reject
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["read"] == report["kept"] + report["rejected"] + report["duplicates"]
    if not as_array:
        assert report["read"] == sum(1 for line in src.read_bytes().split(b"\n") if line.strip())
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").open(encoding="utf-8")]
    assert len(rejects) == report["rejected"]
    assert all(r["source"] == str(src) and r["line"] >= 1 and r["reason"] for r in rejects)
    kept = sum(sum(1 for _ in (out / f"{s}.jsonl").open()) for s in ("train", "valid", "test"))
    assert kept == report["kept"] >= 1
