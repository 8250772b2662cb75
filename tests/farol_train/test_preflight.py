"""Preflight checks, profiles, the configure wizard, fuse and GGUF export."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from farol_train import wizard
from farol_train.cli import main
from farol_train.memory import estimate, margin, read_shape
from farol_train.preflight import check_memory_model, memory_budget, profiles, run_checks
from farol_train.run_config import resolve


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
    assert "23safetymargin" in flat  # the cpu margin, shown on the memory row and the profiles
    assert "profiles plan for the estimated peak plus the cpu safety margin of 23%" in ok.output
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
                         "y", "", "50", "2e-4", "10", "16", "10", "0.05"]) + "\n"
    res = CliRunner().invoke(main, ["configure", "--out", str(out)], input=answers)
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load(out.read_text())
    assert cfg["name"] == "mine" and cfg["model"] == str(tiny_4bit)
    assert cfg["training"]["batch_size"] == 2 and cfg["training"]["grad_accumulation_steps"] == 4
    assert cfg["training"]["max_seq_length"] == 128 and cfg["lora"]["num_layers"] == 2
    assert cfg["training"]["grad_checkpoint"] is True
    assert cfg["training"]["epochs"] is None and cfg["training"]["iters"] == 50
    assert cfg["training"]["learning_rate"] == 2e-4 and cfg["training"]["warmup_steps"] == 10
    assert (cfg["lora"]["rank"], cfg["lora"]["scale"], cfg["lora"]["dropout"]) == (16, 10, 0.05)
    assert "learning_rate: 1e-5 is gentle" in res.output  # each question says why
    assert res.output.rstrip().endswith(f"train with: invoke train --config {out}")
    default = CliRunner().invoke(main, ["configure", "--out", str(tmp_path / "b.yaml")],
                                 input=f"b\n{tiny_4bit}\n{processed}\n\n" + "\n" * 7)
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

    # The bound is packed over padded real-token share (both worked by hand in test_packing).
    from farol_core.dataset import load_split
    from farol_core.model import load_tokenizer
    from farol_train.packing import real_token_share
    from farol_train.preflight import PACKING_WORTH

    share = real_token_share(load_split(processed / "train.jsonl", load_tokenizer(tiny_4bit)),
                             4, 256)
    bound = share["packed"] / share["unpacked"]
    sample = packing(processed)  # length-sorted batches of the sample pad little
    assert f"packing gains at most {bound:.2f}x" in sample.detail
    assert 1 <= bound < PACKING_WORTH and sample.fix == ""
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
    assert metal.status == "warn"
    assert "metal profile memory is an estimate borrowed from cuda" in metal.detail
    assert metal.fix.startswith("measure them once: `invoke calibrate --grid ")
    assert check_memory_model("cuda").status == "pass"  # the measured 7B peaks
    assert check_memory_model("cpu").status == "pass"


def test_the_memory_model_row_warns_for_a_dtype_it_was_not_measured_on(tiny_4bit):
    shape = read_shape(tiny_4bit)  # float32, like the cpu calibration's points
    assert check_memory_model("cpu", shape).status == "pass"
    shape.dtype_bytes = 2
    half = check_memory_model("cpu", shape)
    assert half.status == "warn"
    assert "on float32 models only; this one is 16-bit float" in half.detail
    assert half.fix.startswith("`invoke calibrate --dtype float16` shows the error")


def _rows(model, data, **training) -> dict:
    cfg = resolve(None, model=str(model), data=str(data), lora={"num_layers": 2},
                  training=training)
    return {c.name: c for c in run_checks(cfg)}


def test_empty_splits_and_a_max_seq_length_below_every_answer_fail(tiny_4bit, processed,
                                                                   tmp_path):
    # Training refuses both; preflight used to pass an empty valid.jsonl ("0 examples").
    (tmp_path / "train.jsonl").write_text((processed / "train.jsonl").read_text())
    (tmp_path / "valid.jsonl").write_text("")
    empty = _rows(tiny_4bit, tmp_path)["data valid"]
    assert empty.status == "fail" and "holds no examples" in empty.detail
    (tmp_path / "train.jsonl").write_text("")
    assert "holds no examples" in _rows(tiny_4bit, tmp_path)["data train"].detail
    short = _rows(tiny_4bit, processed, max_seq_length=16)["data lengths"]
    assert short.status == "fail" and "no example keeps an answer token" in short.detail
    assert short.fix.startswith("raise training.max_seq_length to ")
    assert _rows(tiny_4bit, processed)["data lengths"].status == "pass"  # 2048 holds them all


def test_an_unquantized_base_gets_a_quantize_command_with_an_out_folder(tiny_model, processed):
    row = _rows(tiny_model, processed)["base model"]
    assert row.status == "warn" and f"--out {tiny_model}-4bit" in row.fix


MISTRAL_7B_4BIT = {"model_type": "mistral", "hidden_size": 4096, "num_hidden_layers": 32,
                   "intermediate_size": 14336, "num_attention_heads": 32,
                   "num_key_value_heads": 8, "vocab_size": 32000, "torch_dtype": "float16",
                   "quantization": {"bits": 4, "group_size": 64}}


def test_profiles_keep_the_effective_batch_and_estimate_their_own_accumulation(processed,
                                                                              tmp_path):
    model = tmp_path / "mistral"  # the memory model needs only config.json
    model.mkdir()
    (model / "config.json").write_text(json.dumps(MISTRAL_7B_4BIT))
    cfg = resolve(None, model=str(model), data=str(processed),
                  training={"batch_size": 8, "grad_accumulation_steps": 1,
                            "memory_fraction": 12e9 / memory_budget_total()})
    found, shape = profiles(cfg), read_shape(model)
    assert all(found.values())
    for p in found.values():
        assert p["batch_size"] * p["grad_accumulation_steps"] == 8
        training = {**cfg["training"], **p}  # the profile's own accumulation: pending gradient
        total = estimate(shape, {**cfg["lora"], "num_layers": p["num_layers"]}, training)["total"]
        assert p["estimated_gb"] == round(total * (1 + margin("cpu")) / 1e9, 2)  # with margin
    assert any(p["grad_accumulation_steps"] > 1 for p in found.values())


def test_profiles_never_ask_for_a_batch_larger_than_the_train_split(tiny_4bit, processed,
                                                                    tmp_path):
    lines = (processed / "train.jsonl").read_text().splitlines()[:3]
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    cfg = resolve(None, model=str(tiny_4bit), data=str(tmp_path), lora={"num_layers": 4},
                  training={"batch_size": 1, "grad_accumulation_steps": 8})
    for p in profiles(cfg).values():
        assert p["batch_size"] <= 3 and p["batch_size"] * p["grad_accumulation_steps"] == 8


def _configure(tmp_path, out, answers, *extra):
    return CliRunner().invoke(main, ["configure", "--out", str(out), *extra],
                              input="\n".join(answers) + "\n")


def test_configure_never_overwrites_silently_and_writes_nothing_when_cut_short(tiny_4bit,
                                                                            processed,
                                                                            tmp_path):
    out = tmp_path / "mine.yaml"
    out.write_text("keep: me\n")
    refused = _configure(tmp_path, out, ["n"])
    assert refused.exit_code == 1 and "already exists; nothing was written" in refused.output
    assert out.read_text() == "keep: me\n"
    answers = ["mine", str(tiny_4bit), str(processed), "", *[""] * 7]
    replaced = _configure(tmp_path, out, ["y", *answers])
    assert replaced.exit_code == 0 and yaml.safe_load(out.read_text())["name"] == "mine"
    assert _configure(tmp_path, out, answers, "--force").exit_code == 0
    cut = _configure(tmp_path, tmp_path / "cut.yaml", answers[:2])  # end of input midway
    assert cut.exit_code == 1 and not list(tmp_path.glob("*cut.yaml*"))


def test_configure_asks_again_for_a_custom_value_the_schema_refuses(tiny_4bit, processed,
                                                                    tmp_path):
    out = tmp_path / "c.yaml"
    res = _configure(tmp_path, out, ["c", str(tiny_4bit), str(processed), "custom",
                                     "0", "2", "0", "1", "8", "64", "2", "n", *[""] * 7])
    assert res.exit_code == 0, res.output
    assert res.output.count("is not in the range x>=") == 3  # 0, 0 and 8 asked again
    training = yaml.safe_load(out.read_text())["training"]
    assert training["batch_size"] == 2 and training["max_seq_length"] == 64
    assert "train with: invoke train --config" in res.output


def _fuse(*args):
    return CliRunner().invoke(main, ["fuse", *map(str, args)])


def test_fuse_refuses_to_replace_its_inputs_and_replaces_out_whole(trained_run, tiny_4bit,
                                                                  tmp_path):
    run_dir = trained_run[0].run_dir
    base = tmp_path / "base"
    shutil.copytree(tiny_4bit, base)
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    res = _fuse("--model", base, "--adapter", run_dir, "--out", base, "--force")
    assert res.exit_code == 1 and "would replace the model folder" in res.output
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
    out = tmp_path / "fused"
    out.mkdir()
    (out / "old.gguf").write_text("stale")  # an earlier export's file
    res = _fuse("--model", base, "--adapter", run_dir, "--out", out, "--force")
    assert res.exit_code == 0, res.output
    assert not (out / "old.gguf").exists() and (out / "model.safetensors").is_file()


def test_fuse_with_an_adapter_of_another_model_is_one_clear_line(trained_run, processed,
                                                                 tmp_path):
    from farol_core.tiny import create_tiny_model
    from farol_data import texts

    from tests.conftest import SAMPLE_BIOS, SAMPLE_QA

    other = create_tiny_model(tmp_path / "other", texts([SAMPLE_QA], SAMPLE_BIOS),
                              shape={"hidden_size": 64, "num_hidden_layers": 2,
                                     "intermediate_size": 128, "num_attention_heads": 4,
                                     "num_key_value_heads": 2})
    res = _fuse("--model", other, "--adapter", trained_run[0].run_dir, "--out", tmp_path / "o")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "does not fit the model" in res.output and "it was trained on" in res.output
    assert not (tmp_path / "o").exists()


# mlx-lm's GGUF writer names mixtral's stacked experts (switch_mlp) as no GGUF reader expects.
@pytest.mark.parametrize("model_type", ["qwen2", "mixtral"])
def test_gguf_export_of_another_architecture_is_refused_before_writing(model_type, trained_run,
                                                                       tiny_4bit, tmp_path):
    other = tmp_path / model_type
    shutil.copytree(tiny_4bit, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    res = CliRunner().invoke(main, ["export", "--model", str(other), "--adapter",
                                    str(trained_run[0].run_dir), "--out", str(tmp_path / "g")])
    assert res.exit_code == 1
    assert f"GGUF export supports llama, mistral models, not {model_type}" in res.output
    assert not (tmp_path / "g").exists()


def test_gguf_given_as_a_path_is_refused_before_writing(trained_run, tiny_4bit, tmp_path):
    # mlx's GGUF writer fails with a bare RuntimeError on a path; the option is a file name.
    out = tmp_path / "g"
    res = CliRunner().invoke(main, ["export", "--model", str(tiny_4bit), "--adapter",
                                    str(trained_run[0].run_dir), "--out", str(out),
                                    "--gguf", str(out / "model.gguf")])
    assert res.exit_code == 1 and "must be a file name ending in .gguf" in res.output
    assert not out.exists()


def _with_report(processed, tmp_path, recommended=128, p95=85):
    data = tmp_path / "data"
    shutil.copytree(processed, data)
    report = json.loads((data / "report.json").read_text())
    report["tokens"] = {"recommended_max_seq_length": recommended, "p95": p95, "limit": 2048}
    (data / "report.json").write_text(json.dumps(report))
    return data


def test_the_data_recommendation_feeds_preflight_profiles_and_the_wizard(tiny_4bit, processed,
                                                                         tmp_path):
    data = _with_report(processed, tmp_path)
    cfg = resolve(None, model=str(tiny_4bit), data=str(data),
                  training={"max_seq_length": 2048}, lora={"num_layers": 2})
    advice = {c.name: c for c in run_checks(cfg)}["max_seq_length"]
    assert advice.status == "warn" and "far above what the data needs" in advice.detail
    assert advice.fix.startswith("set training.max_seq_length to 128")
    assert all(p["max_seq_length"] <= 128 for p in profiles(cfg).values() if p)
    fine = resolve(None, model=str(tiny_4bit), data=str(data), training={"max_seq_length": 128})
    assert {c.name: c for c in run_checks(fine)}["max_seq_length"].status == "pass"
    out = tmp_path / "w.yaml"
    res = _configure(tmp_path, out, ["w", str(tiny_4bit), str(data), "custom", "", "", "", "2",
                                     "y", *[""] * 7])
    assert res.exit_code == 0, res.output
    assert "max_seq_length [128]:" in res.output  # the data's advice, not the schema's 2048
    assert yaml.safe_load(out.read_text())["training"]["max_seq_length"] == 128


def test_the_wizard_warns_on_many_passes_over_a_small_split(tiny_4bit, processed, tmp_path):
    n = len((processed / "train.jsonl").read_text().splitlines())
    res = _configure(tmp_path, tmp_path / "m.yaml", ["m", str(tiny_4bit), str(processed),
                                                     "custom", "1", "1", "64", "2", "y", "",
                                                     str(n * 40), *[""] * 5])
    assert res.exit_code == 0, res.output
    assert f"warning: {n * 40} steps of batch 1 over {n} train examples is 40 passes" \
        in res.output
    cfg = resolve(None, data=str(processed), training={"epochs": 3})
    assert wizard.plan_warning(cfg, n) is None


def test_identical_profiles_are_explained():
    same = {"batch_size": 4, "grad_accumulation_steps": 1, "max_seq_length": 128,
            "num_layers": 4, "grad_checkpoint": False}
    found = {"SAFE": {**same, "grad_checkpoint": True, "estimated_gb": 0.1},
             "BALANCED": {**same, "estimated_gb": 0.2}, "PERFORMANCE": {**same,
                                                                        "estimated_gb": 0.2}}
    assert wizard.why_profiles_coincide(found) == [
        "BALANCED and PERFORMANCE are the same: memory allows more than the data needs (the "
        "longest rows it needs, the deepest adapters preferred and the whole batch already fit "
        "in BALANCED's share)"]


def test_invoke_configure_runs_the_wizard_and_ends_with_the_train_line(tiny_4bit, processed,
                                                                       tmp_path):
    out = tmp_path / "via-invoke.yaml"
    answers = "\n".join(["v", str(tiny_4bit), str(processed), "", "3", *[""] * 5]) + "\n"
    res = subprocess.run([str(Path(sys.executable).parent / "invoke"), "configure", "--out",
                          str(out)], input=answers, capture_output=True, text=True,
                         cwd=Path(__file__).parents[2], timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert yaml.safe_load(out.read_text())["training"]["epochs"] == 3
    assert res.stdout.rstrip().endswith(f"train with: invoke train --config {out}")
