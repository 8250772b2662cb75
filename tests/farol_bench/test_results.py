"""Results documents: schema-valid, written where expected, and paired with a fair baseline."""

import json
from types import SimpleNamespace

import pytest
from farol_bench import results
from farol_core.errors import FarolError

from tests.farol_bench.conftest import fig, run_doc


def test_a_built_document_matches_the_schema_and_names_its_file(tmp_path, schema):
    stats = SimpleNamespace(median=0.5, min=0.4, max=0.8, rounds=3)
    entry = results.benchmark_entry("test_decode", stats,
                                    {"decode_tokens_per_s": {"per_round": 64},
                                     "peak_memory_gb": [0.1, 0.2, 0.1]})
    doc = results.build([entry], "tiny", {"name": "tiny-mistral-4bit"}, {"rounds": 3})
    path = results.write(doc, tmp_path, schema)
    assert path.name.endswith(f"-mlx{doc['versions']['mlx']}.json")
    assert path.name[:16] == doc["created"].replace("-", "").replace(":", "")
    loaded = results.load(path, schema)
    assert set(loaded["benchmarks"][0]["figures"]) == {"seconds", "decode_tokens_per_s",
                                                       "peak_memory_gb"}
    assert loaded["device"]["backend"] in ("cpu", "metal", "cuda")


def test_a_broken_document_is_refused_naming_the_place(tmp_path, schema):
    doc = run_doc({"decode tps": fig(1.0)})
    doc["benchmarks"][0]["figures"]["tps"]["better"] = "faster"
    with pytest.raises(FarolError, match="benchmarks/0/figures/tps/better"):
        results.write(doc, tmp_path, schema)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FarolError, match="not JSON"):
        results.load(tmp_path / "bad.json", schema)


def test_the_baseline_is_the_last_earlier_run_on_the_same_device(tmp_path, schema):
    runs = {"a": run_doc({"d tps": fig(1.0)}, created="2026-11-20T00:00:00Z"),
            "b": run_doc({"d tps": fig(1.0)}, created="2026-11-21T00:00:00Z", device="Apple M2"),
            "c": run_doc({"d tps": fig(1.0)}, created="2026-11-22T00:00:00Z")}
    paths = {k: results.write(d, tmp_path, schema) for k, d in runs.items()}
    (tmp_path / "zz-notes.json").write_text("{}")  # not a run: sorted last, and left alone
    new_path, new = results.newest(tmp_path, schema)
    assert new_path == paths["c"]
    base_path, _ = results.baseline_for(new, new_path, [tmp_path], schema)
    assert base_path == paths["a"]
    other = tmp_path / "other"
    other.mkdir()
    results.write(run_doc({"d tps": fig(1.0)}, device="NVIDIA H200"), other, schema)
    only_path, only = results.newest(other, schema)
    with pytest.raises(FarolError, match="No earlier run on NVIDIA H200"):
        results.baseline_for(only, only_path, [other], schema)


def test_the_committed_baseline_is_valid(schema):
    from tests.farol_bench.conftest import SCHEMA_PATH

    for path in (SCHEMA_PATH.parent / "baselines").glob("*.json"):
        doc = results.load(path, schema)
        assert json.loads(path.read_text())["benchmarks"], path
        assert doc["shape"] == "tiny"


def test_runs_of_different_devices_or_shapes_are_not_compared(tmp_path):
    from farol_bench.models import check_choice

    mac = run_doc({"d tps": fig(1.0)})
    results.check_comparable(mac, run_doc({"d tps": fig(2.0)}))
    with pytest.raises(FarolError, match="baseline ran on Apple M1 .metal., tiny"):
        results.check_comparable(mac, run_doc({"d tps": fig(1.0)}, shape="mistral-7b"))
    with pytest.raises(FarolError, match="unknown shape 'big'"):
        check_choice("big", None)
    with pytest.raises(FarolError, match="Model not found"):
        check_choice("tiny", str(tmp_path / "none"))


def test_merged_runs_keep_the_median_of_medians_and_the_overall_range(schema):
    runs = [run_doc({"d tps": fig(m, m - 1, m + 1, rounds=3)}) for m in (10.0, 30.0, 12.0)]
    merged = results.merge(runs)
    assert merged["benchmarks"][0]["figures"]["tps"] == fig(12.0, 9.0, 31.0, rounds=9)
    assert runs[-1]["benchmarks"][0]["figures"]["tps"]["median"] == 12.0  # inputs untouched
    results.validate(merged, schema)


def test_pair_takes_an_explicit_baseline_only_from_the_same_device(tmp_path, schema):
    runs, base = tmp_path / "results", tmp_path / "baselines"
    new_path = results.write(run_doc({"d tps": fig(2.0)}), runs, schema)
    good = results.write(run_doc({"d tps": fig(1.0)}, created="2026-11-01T00:00:00Z"), base,
                         schema)
    assert results.pair(runs, base, schema)[::2] == (good, new_path)
    other = results.write(run_doc({"d tps": fig(1.0)}, device="Apple M2"), tmp_path, schema)
    with pytest.raises(FarolError, match="baseline ran on Apple M2"):
        results.pair(runs, base, schema, other)


def test_a_truncated_or_foreign_file_is_named_and_the_other_runs_stay_usable(tmp_path, schema):
    good = results.write(run_doc({"d tps": fig(1.0)}, created="2026-11-20T00:00:00Z"), tmp_path,
                         schema)
    text = json.dumps(run_doc({"d tps": fig(1.0)}, created="2026-11-21T00:00:00Z"))
    truncated = tmp_path / "20261121T000000Z-mac-mlx0.32.4.json"
    truncated.write_text(text[: len(text) // 2])
    (tmp_path / "20261121T120000Z-mac-mlx0.32.4.json").write_bytes(b"\xff\xfe{")
    new_path = results.write(run_doc({"d tps": fig(2.0)}, created="2026-11-22T00:00:00Z"),
                             tmp_path, schema)
    warnings = []
    base, _ = results.baseline_for(results.load(new_path, schema), new_path, [tmp_path], schema,
                                   warnings.append)
    assert base == good
    assert [w.split(" is not JSON")[0] for w in warnings] == [
        f"skipped: {tmp_path / '20261121T120000Z-mac-mlx0.32.4.json'}", f"skipped: {truncated}"]
    new_path.unlink()  # now the newest file is the broken one: refused by name, with a way out
    with pytest.raises(FarolError, match=r"20261121T120000Z-mac-mlx0.32.4.json is not JSON"):
        results.newest(tmp_path, schema)
    assert len(results.load_all(results.find(tmp_path), schema, warnings.append)) == 1


def test_runs_of_another_workload_or_with_no_figure_in_common_are_not_compared(tmp_path, schema):
    old, new = run_doc({"d tps": fig(1.0)}), run_doc({"d tps": fig(2.0)})
    old["settings"], new["settings"] = {"decode_tokens": 128}, {"decode_tokens": 4}
    with pytest.raises(FarolError, match="decode_tokens 128.*decode_tokens 4"):
        results.check_comparable(old, new)
    with pytest.raises(FarolError, match="no figure in common"):
        results.check_comparable(run_doc({"d tps": fig(1.0)}), run_doc({"p tps": fig(1.0)}))
    # A subset run (`-k prefill`) skips an earlier run of other benchmarks for one that shares.
    runs = {"a": run_doc({"p tps": fig(1.0)}, created="2026-11-20T00:00:00Z"),
            "b": run_doc({"d tps": fig(1.0)}, created="2026-11-21T00:00:00Z"),
            "c": run_doc({"p tps": fig(1.0)}, created="2026-11-22T00:00:00Z")}
    paths = {k: results.write(d, tmp_path, schema) for k, d in runs.items()}
    assert results.pair(tmp_path, tmp_path / "none", schema)[0] == paths["a"]


def test_a_run_that_never_loaded_the_shape_model_compares_with_one_that_did():
    # `invoke bench -k bridge` recorded the model as "tiny", a full run as "tiny-mistral-4bit".
    bridge, full = run_doc({"d tps": fig(1.0)}), run_doc({"d tps": fig(1.0)})
    bridge["model"] = {"name": "tiny"}
    assert results.same_device(bridge, full)
    a, b = (run_doc({"d tps": fig(1.0)}, shape="model") for _ in range(2))
    b["model"]["name"] = "mistral-7b-4bit"
    assert not results.same_device(a, b)


def test_two_runs_ending_in_the_same_second_both_keep_their_file(tmp_path, schema):
    # Same host, mlx version and second gave the same file name: the second run replaced the first.
    first = results.write(run_doc({"d tps": fig(1.0)}), tmp_path, schema)
    second = results.write(run_doc({"d tps": fig(2.0)}, shape="mistral-7b"), tmp_path, schema)
    assert first != second and results.load(first, schema)["shape"] == "tiny"
    assert results.find(tmp_path) == [first, second]
    assert results.newest(tmp_path, schema)[1]["shape"] == "mistral-7b"


def test_a_baseline_from_another_host_is_compared_with_a_note(tmp_path, schema, capsys):
    # The committed baseline is one 2-core VM's "AMD EPYC"; any other EPYC box matched it silently.
    runs, base = tmp_path / "results", tmp_path / "baselines"
    mine = run_doc({"d tps": fig(2.0)})
    mine["host"] = "my-box"
    results.write(mine, runs, schema)
    results.write(run_doc({"d tps": fig(1.0)}, created="2026-11-01T00:00:00Z"), base, schema)
    results.pair(runs, base, schema)
    assert "baseline ran on host 'mac', the new run on 'my-box'" in capsys.readouterr().out
    results.write(run_doc({"d tps": fig(1.0)}, created="2026-11-02T00:00:00Z") | {"host": "my-box"},
                  base, schema)
    results.pair(runs, base, schema)
    assert capsys.readouterr().out == ""


def test_the_newest_run_as_its_own_baseline_is_refused(tmp_path, schema):
    runs = tmp_path / "results"
    path = results.write(run_doc({"d tps": fig(2.0)}), runs, schema)
    with pytest.raises(FarolError, match="is the newest run itself"):
        results.pair(runs, tmp_path / "baselines", schema, baseline=path)


def test_runs_with_other_bandwidths_get_a_note(tmp_path, schema, capsys):
    runs = tmp_path / "results"
    old = run_doc({"d tps": fig(1.0)}, created="2026-11-01T00:00:00Z")
    old["device"]["bandwidth_bytes_per_s"] = 100e9  # given with --bandwidth
    old_path = results.write(old, tmp_path / "old", schema)
    results.write(run_doc({"d tps": fig(2.0)}), runs, schema)
    results.pair(runs, tmp_path / "baselines", schema, baseline=old_path)
    assert "decode_fraction_of_bound figures are not comparable" in capsys.readouterr().out


def test_a_machine_without_a_host_name_still_writes_its_results(tmp_path, schema, monkeypatch):
    # An empty host name broke the schema at the end of the run, and the whole run was lost.
    monkeypatch.setattr(results.socket, "gethostname", lambda: "")
    doc = results.build([], "tiny", {"name": "tiny-mistral-4bit"}, {})
    assert results.load(results.write(doc, tmp_path, schema), schema)["host"] == "unknown"
