"""Crash-safe writing in farol_core.io."""

import pytest


def test_atomic_file_leaves_the_old_file_and_no_temp_file_on_failure(tmp_path):
    from farol_core.io import atomic_file

    path = tmp_path / "out" / "x.jsonl"
    with atomic_file(path) as f:
        f.write("0\n1\n2\n")
    assert path.read_text() == "0\n1\n2\n"
    with pytest.raises(RuntimeError), atomic_file(path) as f:
        f.write("new\n")
        raise RuntimeError("disk gone")
    assert path.read_text() == "0\n1\n2\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.jsonl"]


def test_sha256_file_matches_hashlib_over_chunk_boundaries(tmp_path):
    import hashlib

    from farol_core.io import sha256_file

    data = bytes(range(256)) * 8193  # a little over two 1 MiB chunks
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


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
