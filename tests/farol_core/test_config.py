import pytest
from farol_core.config import ConfigError, load_config, load_schema
from farol_core.errors import FarolError


def test_defaults_come_from_the_schema():
    cfg = load_config("train")
    schema = load_schema("train")
    assert cfg["lora"]["rank"] == schema["properties"]["lora"]["properties"]["rank"]["default"]
    assert cfg["training"]["mask_prompt"] is True


def test_overrides_merge_and_none_is_ignored():
    cfg = load_config("train", {"training": {"iters": 7}}, {"training": {"batch_size": 2},
                                                           "seed": None})
    assert (cfg["training"]["iters"], cfg["training"]["batch_size"], cfg["seed"]) == (7, 2, 0)


def test_every_problem_is_reported_at_once():
    bad = {"lora": {"rank": 0, "dropout": 2}, "training": {"iters": "many"}, "typo": 1}
    with pytest.raises(ConfigError) as err:
        load_config("train", bad)
    assert len(err.value.problems) == 4
    text = str(err.value)
    for where in ("lora.rank", "lora.dropout", "training.iters", "typo"):
        assert where in text


def test_unreadable_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora: [unclosed")
    with pytest.raises(FarolError, match="could not be parsed"):
        load_config("train", bad)
    with pytest.raises(FarolError, match="not found"):
        load_config("train", tmp_path / "missing.yaml")


def test_staged_dir_replaces_whole_or_not_at_all(tmp_path):
    from farol_core.io import staged_dir

    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FarolError, match="already exists"), staged_dir(out):
        pass
    with pytest.raises(RuntimeError), staged_dir(out, force=True) as work:
        work.mkdir()
        (work / "new.txt").write_text("half")
        raise RuntimeError("crash mid-build")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    with staged_dir(out, force=True) as work:
        work.mkdir()
        (work / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind
    # The last rename failing (here: nothing was built) once deleted the old folder with the
    # staging area; it must be put back.
    with pytest.raises(FileNotFoundError), staged_dir(out, force=True):
        pass
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_exponent_numbers_read_as_numbers_in_yaml_and_in_a_saved_config_json(tmp_path):
    # A run's config.json holds 1e-05 (Python's spelling of 1.0e-5); YAML 1.1 would read that,
    # and a hand-typed `5e-5`, as text, and the run could never resume.
    import json

    saved = load_config("train", {"training": {"learning_rate": 1.0e-5}})
    (tmp_path / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    assert load_config("train", tmp_path / "config.json")["training"]["learning_rate"] == 1e-5
    (tmp_path / "run.yaml").write_text("training:\n  learning_rate: 5e-5\n", encoding="utf-8")
    assert load_config("train", tmp_path / "run.yaml")["training"]["learning_rate"] == 5e-5


def test_typed_view_reads_the_validated_config_and_cannot_change_it():
    import dataclasses

    from farol_core.config import load_config, typed

    cfg = load_config("train", {"lora": {"keys": ["self_attn.q_proj"]},
                                "training": {"batch_size": 2}})
    view = typed("train", cfg)
    assert (view.training.batch_size, view.training.max_seq_length) == (2, 2048)
    assert view.lora.keys == ("self_attn.q_proj",) and view.template == "mistral"
    # every key of every section, with the schema's defaults filled in
    assert dataclasses.asdict(view.training) == cfg["training"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.training.iters = 5
    with pytest.raises(AttributeError):
        view.training.batch_sise  # noqa: B018 (a misspelt key fails where it is read)
