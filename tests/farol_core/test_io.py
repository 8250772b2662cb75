"""Crash-safe writing in farol_core.io."""

import pytest


def test_atomic_write_lines_streams_and_leaves_no_temp_file(tmp_path):
    from farol_core.io import atomic_write_lines

    path = tmp_path / "out" / "x.jsonl"
    assert atomic_write_lines(path, (f"{i}\n" for i in range(3))) == 3
    assert path.read_text() == "0\n1\n2\n"

    def broken():
        yield "new\n"
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        atomic_write_lines(path, broken())
    assert path.read_text() == "0\n1\n2\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.jsonl"]
