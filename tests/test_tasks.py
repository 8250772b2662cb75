"""The Invoke tasks pass the user's choices through: a thin layer, but one that picks defaults."""

import contextlib
import json
import signal
import subprocess
import sys

import pytest
from invoke import Collection, Config, Context, Program

import tasks


def _categories(out):
    return json.loads((out / "report.json").read_text(encoding="utf-8"))["categories"]


def test_prepare_with_an_input_leaves_the_sample_biographies_out(tmp_path):
    qa = tmp_path / "mine.jsonl"
    lines = tasks.SAMPLE_QA.read_text(encoding="utf-8").splitlines()[:20]
    qa.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    assert sum(_categories(tmp_path / "out").values()) <= 20
    assert "jogadores" not in _categories(tmp_path / "out")


def test_prepare_without_inputs_uses_the_whole_sample(tmp_path):
    tasks.prepare(Context(), out=str(tmp_path / "out"))
    assert "jogadores" in _categories(tmp_path / "out")


def test_train_and_preflight_take_model_and_data_from_the_config(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: models/mistral-7b-4bit\ndata: /srv/farense\n", encoding="utf-8")
    paths = tasks._run_paths(str(config), None, None)
    assert paths == {"model": str(tasks.ROOT / "models" / "mistral-7b-4bit"),
                     "data": "/srv/farense"}
    assert tasks._run_paths(str(config), "m", "d") == {"model": "m", "data": "d"}
    assert tasks._run_paths(None, None, None) == {"model": str(tasks.TINY_4BIT),
                                                  "data": str(tasks.PROCESSED)}


def test_preflight_reports_the_configs_model_not_the_tiny_one(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("model: /no-such-model\n", encoding="utf-8")  # short: the table wraps
    with pytest.raises(SystemExit):
        tasks.preflight(Context(), config=str(config))
    assert "/no-such-model not found" in capsys.readouterr().out


# --- options with wrong values: one line on stderr and exit 1, never a traceback ---


def test_no_task_lets_invoke_parse_a_number():
    # Invoke casts an int or float default's option itself, and a bad value ("--bits abc",
    # "--threshold x") then dies in its parser with a traceback before the task runs.
    collection = Collection.from_module(tasks)
    typed = [(name, a.name) for name in collection.task_names
             for a in collection[name].get_arguments()
             if a.kind in (int, float) and not isinstance(a, tasks._WholeNumber)]
    assert typed == []


def test_whole_number_options_say_int_in_help_and_still_fail_in_one_line(capsys):
    # Before, every number showed as STRING in `invoke --help quantize`.
    program = Program(namespace=Collection.from_module(tasks))
    for name, option in (("quantize", "--bits"), ("eval", "--questions"), ("train", "--iters"),
                         ("bench", "--rounds"), ("ask", "--max-tokens")):
        program.run(["invoke", "--help", name], exit=False)
        assert f"{option}=INT" in capsys.readouterr().out, name
    with pytest.raises(SystemExit) as exit:
        program.run(["invoke", "train", "--iters", "many"], exit=False)
    assert exit.value.code == 1
    assert capsys.readouterr().err.startswith("error: --iters must be a whole number")


@pytest.mark.parametrize("task, options, message", [
    ("train", {"iters": "abc"}, "--iters must be a whole number, got 'abc'"),
    ("quantize", {"bits": "four"}, "--bits must be a whole number, got 'four'"),
    ("evaluate", {"questions": "1.5"}, "--questions must be a whole number, got '1.5'"),
    ("bench", {"rounds": "z"}, "--rounds must be a whole number, got 'z'"),
    ("monitor", {"refresh": "soon"}, "--refresh must be a number, got 'soon'"),
    ("monitor", {"refresh": "0"}, "--refresh must be more than 0 seconds"),
])
def test_a_bad_number_is_one_clear_line(task, options, message, capsys):
    with pytest.raises(SystemExit) as exit:
        getattr(tasks, task)(Context(), **options)
    assert exit.value.code == 1
    assert capsys.readouterr().err.startswith(f"error: {message}")


@pytest.mark.parametrize("argv, message", [
    (["bench-compare", "--threshold", "x"], "threshold must be a fraction between 0 and 1"),
    (["quantize", "--bits", "abc"], "--bits must be a whole number, got 'abc'"),
    (["quantize", "--group-size", "48", "--out", "/no-such-dir/q"],
     "group size must be 32, 64 or 128, got 48"),
])
def test_a_bad_number_on_the_command_line_is_one_clear_line(argv, message, capsys):
    # Through Invoke's own parser, as `invoke bench-compare --threshold x` runs it.
    program = Program(namespace=Collection.from_module(tasks))
    with pytest.raises(SystemExit) as exit:
        program.run(["invoke", *argv], exit=False)
    assert exit.value.code == 1
    assert capsys.readouterr().err.startswith(f"error: {message}")


@pytest.mark.parametrize("task, options, message", [
    # mlx-lm's convert took bits 0 as 4, and a group size that divides no layer quantized none:
    # both wrote a "4-bit" folder without a word.
    ("quantize", {"bits": "0"}, "bits must be 2, 3, 4, 5, 6 or 8, got 0"),
    ("quantize", {"bits": "7"}, "bits must be 2, 3, 4, 5, 6 or 8, got 7"),  # MLX has no 7
    ("quantize", {"group_size": "48"}, "group size must be 32, 64 or 128, got 48"),
    # Below, the package said "Invalid config <dict>" or blamed the config file instead.
    ("train", {"iters": "0"}, "--iters must be at least 1, got 0"),
    ("train", {"seed": "-1"}, "--seed must be at least 0, got -1"),
    ("prepare", {"seed": "-1"}, "--seed must be at least 0, got -1"),
    ("evaluate", {"max_tokens": "0"}, "--max-tokens must be at least 1, got 0"),
    ("evaluate", {"samples": "-1"}, "--samples must be at least 0, got -1"),
    ("evaluate", {"questions": "-2"}, "--questions must be at least -1, got -2"),
    ("ask", {"question": "Quem?", "max_tokens": "0"}, "--max-tokens must be at least 1"),
    ("train", {"np": "0"}, "--np must be at least 1, got 0"),
    # pytest-benchmark failed every benchmark on 0 rounds ("--co": if it is not caught, only
    # collect rather than measure).
    ("bench", {"rounds": "0", "args": "--co"}, "--rounds must be at least 1, got 0"),
])
def test_a_number_out_of_range_is_one_clear_line(task, options, message, tmp_path, capsys):
    if task == "quantize":
        options = {**options, "out": str(tmp_path / "q")}  # nothing to replace if it ran
    with pytest.raises(SystemExit) as exit:
        getattr(tasks, task)(Context(), **options)
    assert exit.value.code == 1
    assert capsys.readouterr().err.startswith(f"error: {message}")
    assert not (tmp_path / "q").exists()


def test_check_upgrade_refuses_zero_passes_before_installing(monkeypatch, capsys):
    # 0 passes ended in an IndexError after minutes of installing the throwaway venv.
    from farol_bench import upgrade

    def install(*a, **k):
        raise AssertionError("check_upgrade went on to install")

    monkeypatch.setattr(upgrade, "check_upgrade", install)
    for options in ({"passes": "0"}, {"rounds": "0"}):
        with pytest.raises(SystemExit):
            tasks.check_upgrade(Context(), mlx="0.32.4", mlx_lm="0.32.2", **options)
        assert "must be at least 1, got 0" in capsys.readouterr().err


def test_train_dash_h_shows_the_help(capsys):
    # -h went to --hosts: `invoke train -h` said "Flag <Argument: hosts (h)> needed value".
    program = Program(namespace=Collection.from_module(tasks))
    program.run(["invoke", "train", "-h"], exit=False)
    out, err = capsys.readouterr()
    assert "train [--options]" in out and "--hosts" in out and "--hostfile" in out
    assert err == ""
    collection = Collection.from_module(tasks)
    assert [name for name in collection.task_names
            for a in collection[name].get_arguments() if "h" in a.names] == []


@pytest.mark.parametrize("task", ["monitor", "plots"])
def test_a_run_that_does_not_exist_is_named_with_the_runs_there_are(task, tmp_path, monkeypatch,
                                                                    capsys):
    # Before, a mistyped --run made monitor wait forever, and plots blame a missing metrics file.
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit):
        getattr(tasks, task)(Context(), run="reall")
    err = capsys.readouterr().err
    assert "no run named 'reall'" in err and "runs: real" in err


# --- a run that is not the demo keeps its own base model ---


def _run(runs, name, model):
    """runs/<name>/ as training leaves it: the resolved config (demo.yaml's, another model)."""
    from farol_core.config import read_config_file

    config = {**read_config_file(tasks.DEMO_CONFIG), "name": name, "model": model}
    (runs / name).mkdir(parents=True)
    (runs / name / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return runs / name


def test_fuse_merges_into_the_model_the_run_trained_on(tmp_path, monkeypatch):
    # Before, fuse always took the tiny model: a 7B run failed, and a run on another tiny
    # build was merged into the wrong base without a word. farol-train's fuse is replaced by a
    # recorder: what is checked is the base the task hands it, not the merge itself.
    import farol_train.fuse

    calls = []
    monkeypatch.setattr(farol_train.fuse, "fuse", lambda model, *a, **k: calls.append(model)
                        or tmp_path / "fused")
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    _run(tmp_path, "mine", "/no-such-model")
    tasks.fuse(Context(), run="mine", out=str(tmp_path / "fused"))
    tasks.fuse(Context(), run="mine", model="/given", out=str(tmp_path / "fused"))
    assert calls == ["/no-such-model", "/given"]


def test_fuse_replaces_only_its_own_default_folder(tmp_path, monkeypatch):
    # Before, every --out was replaced: `--out models/mistral-7b-4bit` wiped the base model.
    import farol_train.fuse

    forced = []
    monkeypatch.setattr(farol_train.fuse, "fuse", lambda *a, force, **k: forced.append(force)
                        or tmp_path / "fused")
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    _run(tmp_path, "mine", "/m")
    tasks.fuse(Context(), run="mine")  # models/mine-fused: Farol's own output, remade each time
    tasks.fuse(Context(), run="mine", out=str(tmp_path / "mine"))
    tasks.fuse(Context(), run="mine", out=str(tmp_path / "mine"), force=True)
    assert forced == [True, False, True]


def test_fuse_names_a_missing_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    with pytest.raises(SystemExit):
        tasks.fuse(Context(), run="nope")
    assert f"No run at {tmp_path / 'nope'}" in capsys.readouterr().err


def test_train_run_alone_resumes_with_the_runs_own_config(tmp_path, monkeypatch, capsys):
    # `invoke train --run NAME` is what an interrupted run says to type; with demo.yaml it
    # resumed a 7B run on the tiny model, and the resume was refused.
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    _run(tmp_path, "mine", "/no-such-model")
    with pytest.raises(SystemExit):
        tasks.train(Context(), run="mine")
    assert "/no-such-model" in capsys.readouterr().err


def _dry():
    return Context(Config(overrides={"run": {"dry": True}}))  # prints the command, runs nothing


def test_ask_with_a_runs_adapter_uses_that_runs_model(tmp_path, capsys):
    adapter = _run(tmp_path, "mine", "/no-such-model")
    tasks.ask(_dry(), "Quem?", adapter=str(adapter / "adapters"))  # the best adapter, below it
    assert "--model /no-such-model" in capsys.readouterr().out


def test_ask_with_another_model_gets_no_demo_adapter(capsys):
    # The demo adapter fits the tiny model only; put on another base it fails or misleads.
    tasks.ask(_dry(), "Quem?", model="/another-model")
    out = capsys.readouterr().out
    assert "--model /another-model" in out and "--adapter-path" not in out


def test_preflight_checks_the_disk_where_train_writes(tmp_path, monkeypatch):
    # Before, the disk row looked at ./runs of whatever folder the user was in.
    from farol_train import preflight

    monkeypatch.chdir(tmp_path)
    seen = []
    real = preflight.check_disk
    # Read the path the check got, not the table: a long checkout path wraps the table's cell.
    monkeypatch.setattr(preflight, "check_disk", lambda path: seen.append(path) or real(path))
    with contextlib.suppress(SystemExit):  # a fresh checkout has no model yet: a fail row
        tasks.preflight(Context())
    assert seen == [tasks.RUNS]


def test_bench_plot_skips_a_broken_results_file(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    results.mkdir()
    for path in sorted((tasks.BENCH / "baselines").glob("*.json"))[:1]:
        (results / path.name).write_bytes(path.read_bytes())
    (results / "20990101T000000Z-x-mlx0.json").write_text('{"cut', encoding="utf-8")
    monkeypatch.setattr(tasks, "BENCH_RESULTS", results)
    tasks.bench_plot(Context(), out=str(tmp_path / "plot.png"))
    assert "skipped" in capsys.readouterr().err and (tmp_path / "plot.png").is_file()


def test_a_distributed_train_is_waited_for_through_ctrl_c():
    # The launcher saves a checkpoint on Ctrl+C; invoke must not kill it before it has.
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, sys, time\n"
                             "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
                             "print('ready', flush=True)\n"
                             "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"

    def interrupt_then_pass_it_on(signum, frame):
        proc.send_signal(signal.SIGINT)  # what the terminal does: Ctrl+C reaches both
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt_then_pass_it_on)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        assert tasks._wait_through_ctrl_c(proc) == 7
    finally:
        signal.signal(signal.SIGALRM, previous)


# --- without --run, the tasks follow the newest run, and say so ---


def _aged_run(runs, name, seconds_ago):
    """runs/<name>/ with a config, a one-row metrics.jsonl and an adapter, last written
    `seconds_ago`; the folder names sort the other way round from their age."""
    import os
    import time

    run = _run(runs, name, str(tasks.TINY_4BIT))
    row = {"step": 10, "epoch": 1.0, "train_loss": 2.0, "val_loss": 2.5, "val_step": 10,
           "learning_rate": 1e-5, "tokens_per_second": 100.0, "iterations_per_second": 1.0,
           "trained_tokens": 1000, "peak_memory_gb": 0.1, "wall_time_s": 10.0}
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (run / "adapters.safetensors").write_bytes(b"")
    when = time.time() - seconds_ago
    for path in [*run.iterdir(), run]:
        os.utime(path, (when, when))
    return run


@pytest.mark.parametrize("task, extra", [("plots", {}), ("monitor", {"once": True})])
def test_without_run_the_newest_run_is_used_and_named(task, extra, tmp_path, monkeypatch,
                                                      capsys):
    # Before, --run defaulted to demo: after training your own run, a forgotten --run plotted
    # or followed the demo (or failed on a machine that never ran it).
    monkeypatch.setattr(tasks, "RUNS", tmp_path / "runs")
    _aged_run(tmp_path / "runs", "a-newer", 10)
    _aged_run(tmp_path / "runs", "demo", 3600)
    out = {"plots": {"out": str(tmp_path / "charts")}}.get(task, {})
    getattr(tasks, task)(Context(), **extra, **out)
    assert "run: a-newer (the newest" in capsys.readouterr().out
    if task == "plots":
        assert (tmp_path / "charts" / "dashboard.png").is_file()


@pytest.mark.parametrize("task", ["evaluate", "plots", "monitor"])
def test_without_run_and_with_no_runs_is_one_clear_line(task, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "RUNS", tmp_path / "runs")
    with pytest.raises(SystemExit) as exit:
        getattr(tasks, task)(Context())
    assert exit.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no runs in {tmp_path / 'runs'} yet") and "Traceback" not in err


def test_ask_without_options_uses_the_newest_runs_adapter(tmp_path, monkeypatch, capsys):
    # Before, ask took runs/demo's adapter whenever one existed, whatever run was trained since.
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    newest = _aged_run(tmp_path, "meu-farense", 10)
    _aged_run(tmp_path, "demo", 3600)
    tasks.ask(_dry(), "Quem?")
    out, err = capsys.readouterr()
    assert f"--adapter-path {newest}" in out and "run meu-farense" in err


def test_ask_with_no_runs_says_it_answers_with_the_base_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tasks, "RUNS", tmp_path)
    tasks.ask(_dry(), "Quem?")
    out, err = capsys.readouterr()
    assert "--adapter-path" not in out and "no trained run" in err


# --- invoke prepare says what it replaces, names its tokenizer, keeps the user's paths out ---


def _qa_file(path, rows=20):
    lines = tasks.SAMPLE_QA.read_text(encoding="utf-8").splitlines()[:rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_prepare_says_what_the_folder_it_replaces_held(tmp_path, capsys):
    # Before, a second prepare replaced data/processed without a word.
    qa = _qa_file(tmp_path / "mine.jsonl")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    assert "replaced" not in capsys.readouterr().out
    held = json.loads((tmp_path / "out" / "report.json").read_text())["splits"]
    _qa_file(qa, rows=12)
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    flat = " ".join(capsys.readouterr().out.split())
    assert f"replaced {tmp_path / 'out'}: it held train {held['train']}, valid " in flat


def test_prepared_records_name_their_source_without_the_users_folders(tmp_path, tiny_model,
                                                                       capsys):
    # Before, every training record carried "/home/<user>/.../mine.jsonl:3".
    (tmp_path / "deep" / "folder").mkdir(parents=True)
    qa = _qa_file(tmp_path / "deep" / "folder" / "mine.jsonl")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"),
                  tokenizer=str(tiny_model))
    text = "".join((tmp_path / "out" / f"{s}.jsonl").read_text(encoding="utf-8")
                   for s in ("train", "valid", "test"))
    assert str(tmp_path) not in text
    sources = [json.loads(line)["source"] for line in text.splitlines()]
    assert sources and all(s.startswith("mine.jsonl:") for s in sources)
    flat = "".join(c for c in capsys.readouterr().out if c.isalnum())  # the table may wrap
    assert "countedwiththetokenizerof" + "".join(c for c in str(tiny_model) if c.isalnum()) \
        in flat


def test_a_json_line_cut_at_its_end_names_the_column_of_the_break(tmp_path):
    # Before: "Expecting ',' delimiter at column 1", for a break at the line's end.
    qa = _qa_file(tmp_path / "mine.jsonl")
    cut = '{"instruction": "Quem fundou o clube?", "output": "Foi fundado em 1910"'
    with qa.open("a", encoding="utf-8") as f:
        f.write(cut + "\n")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    rejects = (tmp_path / "out" / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
    reason = next(json.loads(r)["reason"] for r in rejects if "Foi fundado em 1910" in r)
    assert reason == f"not valid JSON (Expecting ',' delimiter at column {len(cut) + 1})"


def test_prepare_counts_the_records_whose_text_was_repaired_by_kind(tmp_path, capsys):
    # Before, repairs were silent: a user could not tell cleaning from damage in their data.
    rows = [("Quem foi o melhor marcador do Farense?", "Foi Hassan Nader, com muitos golos."),
            ("O que é o Estádio São Luís?", "O estádio do Farense &amp; da cidade de Faro."),
            ("Qual é a visÃ£o do clube?", "Crescer com a formação e os sócios do Farense."),
            ("Quando   subiu o clube?", "Subiu à primeira divisão em 1990 com Paco Fortes."),
            ("Onde fica Faro?", "Faro fica no Algarve,\u200b no sul de Portugal.")]
    qa = tmp_path / "mine.jsonl"
    qa.write_text("".join(json.dumps({"instruction": q, "output": a}, ensure_ascii=False) + "\n"
                          for q, a in rows), encoding="utf-8")
    tasks.prepare(Context(), input=[str(qa)], out=str(tmp_path / "out"))
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["repaired"] == {"html_entities": 1, "mojibake": 1, "whitespace": 1,
                                  "control_characters": 1}
    assert "textrepaired" in "".join(c for c in capsys.readouterr().out if c.isalnum())


def test_notebook_without_jupyterlab_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    # The task looks for jupyter-lab beside this Python, where the [notebook] extra puts it.
    monkeypatch.setattr(tasks, "BIN", tmp_path)
    with pytest.raises(SystemExit):
        tasks.notebook(Context())
    assert '.[notebook]' in capsys.readouterr().err
