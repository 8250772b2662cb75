"""A run started from a notebook: its own process, found again, stopped with a checkpoint."""

import json
import time

import pytest
import yaml
from farol_core.errors import FarolError
from farol_train import background
from farol_train.notebook import write_config

from tests.conftest import TEST_RUN


def _wait(predicate, seconds=120.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_interrupt_saves_a_checkpoint_and_a_second_start_reattaches_then_resumes(
        tmp_path, tiny_4bit, processed):
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(processed),
              "runs_dir": str(tmp_path), "name": "nb",
              "training": {**TEST_RUN["training"], "iters": 2000, "save_every": 1000,
                           "steps_per_report": 2, "steps_per_eval": 1000}}
    path = write_config(config, tmp_path / "nb.yaml")
    run = tmp_path / "nb"
    pid = background.start(path, run)
    # at once, before the run has written status.json: the same process, not a second one
    assert background.start(path, run) == pid
    _wait(lambda: (run / "metrics.jsonl").is_file())
    # still training: a second start (the cell run again) follows it instead of a new run
    assert background.start(path, run) == pid
    # what follow does on a notebook Interrupt
    shows = []

    def show():
        shows.append(1)
        if len(shows) == 2:
            raise KeyboardInterrupt
    assert background.follow(pid, show, refresh=0.1) == "interrupted"
    assert not background.alive(pid) and background.exit_code(pid) == 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted"
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    # the checkpoint Ctrl+C saves (save_every, 1000, made none)
    assert saved == [f"step-{status['step']:07d}"]
    # started again, it resumes from that checkpoint instead of starting over
    pid2 = background.start(path, run)
    _wait(lambda: json.loads((run / "status.json").read_text())["state"] == "training")
    background.stop(pid2)
    assert pid2 != pid and background.exit_code(pid2) == 0
    assert "resuming nb from" in (run / "train.log").read_text()


def test_config_written_for_the_notebook_is_what_configure_writes(tmp_path, tiny_4bit,
                                                                  processed):
    config = {"name": "nb", "model": str(tiny_4bit), "data": str(processed)}
    path = write_config(config, tmp_path / "c.yaml", profile="SAFE", iters=12,
                        learning_rate=1e-3)
    written = yaml.safe_load(path.read_text())
    assert written["training"]["iters"] == 12 and written["training"]["learning_rate"] == 1e-3
    assert written["training"]["grad_checkpoint"] is True  # SAFE always checkpoints
    with pytest.raises(Exception, match="batch_size"):
        write_config(config, tmp_path / "bad.yaml", batch_size=0)
    assert not (tmp_path / "bad.yaml").exists()


def test_form_save_rewrites_the_config_and_refuses_a_bad_value(tmp_path, tiny_4bit, processed):
    pytest.importorskip("ipywidgets")
    from farol_train.notebook import config_form

    config = {"name": "nb", "model": str(tiny_4bit), "data": str(processed)}
    path = write_config(config, tmp_path / "c.yaml")
    form = config_form(config, path, None, yaml.safe_load(path.read_text())["training"])
    buttons, *fields, save, result = form.children
    dict(zip([f.description for f in fields], fields, strict=True))["batch_size"].value = 2
    save.click()
    assert yaml.safe_load(path.read_text())["training"]["batch_size"] == 2
    fields[0].value = 0  # batch_size 0: the schema refuses it and the file stays as it was
    save.click()
    assert yaml.safe_load(path.read_text())["training"]["batch_size"] == 2


def test_a_run_that_fails_at_once_is_an_error_in_the_cell_with_its_log(tmp_path, tiny_4bit,
                                                                       processed):
    config = {**TEST_RUN, "model": str(tiny_4bit), "data": str(tmp_path / "no-data"),
              "runs_dir": str(tmp_path), "name": "bad"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    pid = background.start(path, tmp_path / "bad")
    with pytest.raises(FarolError, match="no-data"):  # the log's own message, not a bare code
        background.follow(pid, lambda: None, refresh=0.1, run_dir=tmp_path / "bad")
