"""Every file in configs/ is what its reader accepts."""

from pathlib import Path

import pytest
from farol_core.config import load_config
from farol_train.launch import read_hostfile

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_run_config_validates(path):
    load_config("train", path)


def test_shipped_hostfile_reads():
    assert read_hostfile(ROOT / "configs" / "two-macs.json", "ring") == ["mac1.local",
                                                                    "mac2.local"]
