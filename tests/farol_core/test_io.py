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


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    # mkstemp's 0600 made outputs unreadable to anyone but their owner (a service, a group).
    import os

    from farol_core.io import atomic_write_text

    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644


def test_read_jsonl_names_the_line_that_is_not_utf8(tmp_path):
    # Text-mode reading decodes 8 KB ahead, so the error used to name an earlier line.
    from farol_core.errors import FarolError
    from farol_core.io import read_jsonl

    good = b'{"text": "' + b"a" * 100 + b'"}\n'
    path = tmp_path / "train.jsonl"
    path.write_bytes(good * 200 + b'{"text": "caf\xe9"}\n' + good)
    with pytest.raises(FarolError, match=r"train\.jsonl:201: not UTF-8 text"):
        list(read_jsonl(path))
