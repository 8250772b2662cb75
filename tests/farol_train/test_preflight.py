"""Preflight checks, profiles, the configure wizard, fuse and GGUF export."""

import json

import yaml
from click.testing import CliRunner
from farol_train.cli import main
from farol_train.loop import resolve
from farol_train.memory import estimate, read_shape
from farol_train.preflight import check_memory_model, memory_budget, profiles, run_checks


def test_preflight_passes_on_a_ready_setup_and_fails_with_fixes(tiny_4bit, processed, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"lora": {"num_layers": 2}}))
    ok = CliRunner().invoke(main, ["preflight", "--config", str(config), "--model",
                                   str(tiny_4bit), "--data", str(processed)])
    assert ok.exit_code == 0, ok.output
    n_train = len((processed / "train.jsonl").read_text().splitlines())
    flat = "".join(ch for ch in ok.output if ch.isalnum() or ch in "(-)")  # table may wrap
    assert f"{n_train}examples" in flat and "4-bit(group64)" in flat
    assert "estimatedpeak" in flat and "BALANCED" in ok.output
    assert "packinggainsatmost1" in flat
    assert "cpucoefficientsfittedtopeaksmeasuredonthisbackend" in flat
    bad = CliRunner().invoke(main, ["preflight", "--model", str(tmp_path / "none"), "--data",
                                    str(tmp_path)])
    assert bad.exit_code == 1
    flat = "".join(ch for ch in bad.output if ch.isalnum())
    assert "invokequantize" in flat and "invokeprepare" in flat
    statuses = {c.name: c.status for c in run_checks(resolve(None, model=str(tmp_path),
                                                             data=str(processed)))}
    assert statuses["base model"] == "fail" and statuses["data train"] == "pass"
    too_deep = {c.name: c for c in run_checks(resolve(None, model=str(tiny_4bit),
                                                      data=str(processed)))}  # 16 of 4 layers
    assert too_deep["base model"].fix == "set lora.num_layers to at most 4"


def test_profiles_fit_their_share_of_the_budget_and_grow_with_it(tiny_4bit, processed):
    cfg = resolve(None, model=str(tiny_4bit), data=str(processed), lora={"num_layers": 4})
    found, budget, shape = profiles(cfg), memory_budget(cfg), read_shape(tiny_4bit)
    for name, share in (("SAFE", 0.5), ("BALANCED", 0.7), ("PERFORMANCE", 0.9)):
        p = found[name]
        lora = {**cfg["lora"], "num_layers": p["num_layers"]}
        training = {**cfg["training"], **p}
        assert estimate(shape, lora, training)["total"] <= share * budget
    assert found["SAFE"]["grad_checkpoint"]
    tight = resolve(cfg, training={"memory_fraction": 60e6 / memory_budget_total()})
    small = profiles(tight)  # a 60 MB budget: smaller settings, computed, not fixed
    assert 0 < small["PERFORMANCE"]["estimated_gb"] <= 0.9 * 0.06
    assert small["PERFORMANCE"]["estimated_gb"] < found["PERFORMANCE"]["estimated_gb"]


def memory_budget_total() -> float:
    import psutil

    return psutil.virtual_memory().total


def test_configure_wizard_writes_a_valid_config(tiny_4bit, processed, tmp_path):
    out = tmp_path / "mine.yaml"
    answers = "\n".join(["mine", str(tiny_4bit), str(processed), "custom", "2", "4", "128", "2",
                         "y"]) + "\n"
    res = CliRunner().invoke(main, ["configure", "--out", str(out)], input=answers)
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(out.read_text())
    assert cfg["name"] == "mine" and cfg["model"] == str(tiny_4bit)
    assert cfg["training"]["batch_size"] == 2 and cfg["training"]["grad_accumulation_steps"] == 4
    assert cfg["training"]["max_seq_length"] == 128 and cfg["lora"]["num_layers"] == 2
    assert cfg["training"]["grad_checkpoint"] is True
    default = CliRunner().invoke(main, ["configure", "--out", str(tmp_path / "b.yaml")],
                                 input=f"b\n{tiny_4bit}\n{processed}\n\n")
    assert default.exit_code == 0 and "custom) [BALANCED]:" in default.output
    chosen = yaml.safe_load((tmp_path / "b.yaml").read_text())
    balanced = profiles(resolve(chosen))["BALANCED"]
    assert chosen["training"]["batch_size"] == balanced["batch_size"]
    assert chosen["lora"]["num_layers"] == balanced["num_layers"] == 4


def test_fuse_and_gguf_export(trained_run, tiny_4bit, tmp_path):
    from gguf import GGUFReader
    from mlx_lm import load

    result, _ = trained_run
    res = CliRunner().invoke(main, ["fuse", "--model", str(tiny_4bit), "--adapter",
                                    str(result.run_dir), "--out", str(tmp_path / "fused")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "fused" / "config.json").read_text())["quantization"]["bits"] == 4
    load(str(tmp_path / "fused"))  # mlx-lm reads the fused model back
    res = CliRunner().invoke(main, ["export", "--model", str(tiny_4bit), "--adapter",
                                    str(result.run_dir), "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    reader = GGUFReader(str(tmp_path / "g" / "model.gguf"))
    config = json.loads((tiny_4bit / "config.json").read_text())
    assert len(reader.tensors) == 9 * config["num_hidden_layers"] + 3  # blocks, embed, norm, head
    field = reader.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == "llama"
    block_count = reader.fields["llama.block_count"]
    assert int(block_count.parts[block_count.data[0]][0]) == config["num_hidden_layers"]
    again = CliRunner().invoke(main, ["fuse", "--model", str(tiny_4bit), "--adapter",
                                      str(result.run_dir), "--out", str(tmp_path / "fused")])
    assert again.exit_code == 1 and "already exists" in again.output


def test_the_packing_check_gives_the_bound_and_suggests_packing_when_it_pays(tiny_4bit, processed,
                                                                            tmp_path):
    def packing(data):
        cfg = resolve(None, model=str(tiny_4bit), data=str(data))
        cfg["lora"]["num_layers"] = 2
        cfg["training"].update(batch_size=4, max_seq_length=256)
        return {c.name: c for c in run_checks(cfg)}["packing"]

    sample = packing(processed)  # length-sorted batches of the sample pad little
    assert "packing gains at most 1.1" in sample.detail and sample.fix == ""
    # Examples just over 32 tokens pad to 64 in every batch (about 40 tokens each here).
    short = [{"messages": [{"role": "user", "content": f"Quem marcou o golo da vitória em {y}?"},
                           {"role": "assistant", "content": "Ninguém, foi empate."}]}
             for y in range(1910, 1974)]
    for split in ("train", "valid"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in short))
    padded = packing(tmp_path)
    assert float(padded.detail.rsplit("at most ", 1)[1].rstrip("x")) > 1.3
    assert padded.fix == "set training.pack: true"


def test_preflight_says_when_the_memory_model_was_not_measured_on_this_backend():
    metal = check_memory_model("metal")
    assert metal.status == "warn" and "borrowed" in metal.detail
    assert metal.fix.startswith("measure them once: `invoke calibrate --grid ")
    cuda = check_memory_model("cuda")
    assert cuda.status == "warn" and "not measured by Farol" in cuda.detail
    assert check_memory_model("cpu").status == "pass"


def test_the_memory_model_row_warns_for_a_dtype_it_was_not_measured_on(tiny_4bit):
    shape = read_shape(tiny_4bit)  # float32, like the cpu calibration's points
    assert check_memory_model("cpu", shape).status == "pass"
    shape.dtype_bytes = 2
    half = check_memory_model("cpu", shape)
    assert half.status == "warn"
    assert "on float32 models only; this one is 16-bit float" in half.detail
    assert half.fix.startswith("`invoke calibrate --dtype float16` shows the error")
