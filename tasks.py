"""Farol's tasks. Each one is a few lines over a package's public functions.

Run `invoke --list` for the list and `invoke --help TASK` for a task's options. Paths default
to the embedded sample, relative to this file, so the tasks work from any folder of the repo.
"""

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from farol_core.errors import FarolError, exit_on_error
from farol_core.rundir import RunDir
from invoke import Argument, Task, task

ROOT = Path(__file__).resolve().parent
TINY = ROOT / "models" / "tiny-mistral"
TINY_4BIT = ROOT / "models" / "tiny-mistral-4bit"
SAMPLE_QA = ROOT / "data" / "sample" / "farense_qa.jsonl"
SAMPLE_BIOS = ROOT / "data" / "sample" / "biografias" / "jogadores"
PROCESSED = ROOT / "data" / "processed"
RUNS = ROOT / "runs"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
BIN = Path(sys.executable).parent
NODE_CLIENT = ROOT / "packages" / "farol-bridge" / "node"


# Options that take a whole number: --help says INT, and _int reads them (see there).
WHOLE_NUMBERS = {"bits", "group_size", "seed", "iters", "np", "samples", "max_tokens",
                 "questions", "rounds", "passes"}


class _WholeNumber(Argument):
    """Shown as INT in --help, handed over as typed: Invoke's own cast of a bad value ends
    in a traceback, _int's in one line."""

    def set_value(self, value, cast=True):
        super().set_value(value, cast=False)


class _Typed(Task):
    """A task whose whole-number options are _WholeNumber arguments."""

    def get_arguments(self, ignore_unknown_help=None):
        return [_WholeNumber(names=a.names, kind=int, default=a.default, help=a.help,
                             positional=a.positional, optional=a.optional,
                             attr_name=a.attr_name) if a.name in WHOLE_NUMBERS else a
                for a in super().get_arguments(ignore_unknown_help)]


@task(help={"out": "Output folder (default: models/tiny-mistral).",
            "force": "Replace an existing model.",
            "random": "Leave the weights random instead of pre-training them."})
@exit_on_error
def tiny_model(c, out=str(TINY), force=False, random=False):
    """Create the embedded tiny Mistral model: a BPE tokenizer and a short pre-training (about
    30 s on 2 cores with OpenBLAS), both on the sample's train split only; pretraining.json says
    what on."""
    from farol_core.tiny import create_tiny_model
    from farol_data.corpus import train_split_corpus

    corpus = train_split_corpus([SAMPLE_QA], SAMPLE_BIOS)
    pretraining = None if random else {"documents": corpus["documents"],
                                       "source": corpus["source"]}
    path = create_tiny_model(out, corpus["texts"], force=force, pretraining=pretraining)
    print(f"tiny model: {path}" + ("" if random else f" (pre-trained on {corpus['source']})"))


@task(klass=_Typed,
      help={"model": "Hugging Face layout folder or Hub id (default: models/tiny-mistral).",
            "out": "Output folder (default: models/tiny-mistral-4bit).",
            "bits": "Bits per weight: 2, 3, 4, 5, 6 or 8 (default: 4).",
            "group_size": "Quantization group size: 32, 64 or 128 (default: 64).",
            "force": "Replace an existing output.",
            "template": "Chat template written beside it: mistral (default) or model (the "
                        "model's own); match the run config's `template`."})
@exit_on_error
def quantize(c, model=str(TINY), out=str(TINY_4BIT), bits="4", group_size="64", force=False,
             template=None):
    """Quantize a model to MLX format with mlx-lm's convert (4-bit, group size 64)."""
    from farol_train import quantize as run_quantize

    # Numbers arrive as text (see _int): Invoke's own int parsing dies with a traceback.
    path = run_quantize(model, out, _int(bits, "bits"), _int(group_size, "group-size"), force,
                        template)
    print(f"quantized model: {path}")


@task(klass=_Typed, iterable=["input"],
      help={"input": "Q&A file (repeatable).",
            "biographies": "Biographies folder (default: the sample's, only when no --input "
                           "is given).",
            "out": "Output folder (default: data/processed).",
            "config": "Data config file (default: the built-in defaults).",
            "seed": "Split seed (default: the data config's, 0).",
            "tokenizer": "Model folder whose tokenizer counts tokens (default: the tiny model "
                         "when it exists)."})
@exit_on_error
def prepare(c, input=None, biographies=None, out=str(PROCESSED), config=None,
            seed=None, tokenizer=None):
    """Repair, validate, deduplicate, balance, analyse and split Q&A data into train/valid/test."""
    from farol_data.console import prepare_with_console

    tokenizer = tokenizer or (str(TINY) if (TINY / "config.json").exists() else None)
    if not input and not biographies:  # the embedded sample; the user's data never gets it mixed in
        input, biographies = [SAMPLE_QA], SAMPLE_BIOS
    prepare_with_console(input, out, biographies=biographies,
                         config=config, seed=_int(seed, "seed", 0),
                         tokenizer=tokenizer)


class _KeepsHelpFlag(_Typed):
    """A task whose options leave -h alone: Invoke would give it to the first option that
    starts with h (--hosts), and `invoke train -h` then asked for a host list, not for help."""

    def arg_opts(self, name, default, taken_names):
        return super().arg_opts(name, default, taken_names | {"h"})


@task(klass=_KeepsHelpFlag,
      help={"config": "Run config file (default: runs/<name>/config.json when --run names an "
                      "existing run, else configs/demo.yaml).",
            "model": "Base model folder (default: the config's model).",
            "data": "Processed data folder (default: the config's data).",
            "run": "Run name, trained into runs/<name>/ (default: the config's name).",
            "iters": "Training steps (default: the config's).",
            "seed": "Random seed (default: the config's).",
            "fresh": "Start the run over instead of resuming its newest checkpoint.",
            "hosts": "Distributed: comma-separated host IPs (docs/distributed.md).",
            "hostfile": "Distributed: mlx.launch hostfile (JSON).",
            "np": "Distributed: processes per host."})
@exit_on_error
def train(c, config=None, model=None, data=None, run=None, iters=None, seed=None,
          fresh=False, hostfile=None, hosts=None, np=None):  # hostfile first: it keeps -o
    """Train a QLoRA adapter into runs/<name>/; an existing run resumes by itself.

    With --hosts, --hostfile or --np it trains data-parallel on every rank through mlx.launch."""
    from farol_train import train as run_train

    # `invoke train --run NAME` (what an interrupted run says to type) resumes NAME with the
    # config it was started with; demo.yaml would hand it another model and settings.
    saved = RunDir.of(RUNS, run).config if run else None
    config = config or (str(saved) if saved and saved.is_file() else str(DEMO_CONFIG))
    iters, seed = _int(iters, "iters", 1), _int(seed, "seed", 0)
    if hosts or hostfile or np:
        _distributed_train(config, model, data, run, iters, seed, fresh, hosts, hostfile,
                           _int(np, "np", 1))
        return
    result = run_train(config, **_run_paths(config, model, data), name=run, runs_dir=str(RUNS),
                       iters=iters, seed=seed, fresh=fresh)
    print(f"train: {result.loss_line()}; {result.stopped} at step {result.steps}; "
          f"adapter in {result.run_dir}")


@task(klass=_Typed, name="eval",
      help={"run": "Run name (default: the newest run, by its last write).",
            "samples": "Answers printed in the summary (default: the run config's "
                       "eval.samples).",
            "max_tokens": "Tokens per answer (default: the run config's eval.max_tokens).",
            "questions": "Test questions to score, -1 for all (default: the run config's "
                         "eval.questions).",
            "base_only": "Evaluate the base model alone."})
@exit_on_error
def evaluate(c, run=None, samples=None, max_tokens=None, questions=None, base_only=False):
    """Evaluate base against tuned: loss, perplexity, exact match, token F1, ROUGE-L with CIs."""
    from farol_eval import evaluate as run_evaluate
    from farol_eval.evaluate import summary_lines

    numbers = {"samples": _int(samples, "samples", 0),
               "max_tokens": _int(max_tokens, "max-tokens", 1),
               "questions": _int(questions, "questions", -1)}
    run = _run_dir(run).name
    report = run_evaluate(RUNS / run, **numbers, base_only=base_only)
    print("\n".join(summary_lines(report)))
    print(f"eval report: {RunDir.of(RUNS, run).eval_dir}/report.{{json,csv,md}}")


@task(klass=_Typed,
      help={"question": "The question.",
            "model": "Model folder (default: the model the --adapter run trained on, else "
                     "models/tiny-mistral-4bit).",
            "adapter": "Adapter folder, e.g. runs/<name> (default: the newest run's when no "
                       "--model is given; none otherwise).",
            "max_tokens": "Longest answer, in tokens (default: the bridge config's, 256)."})
@exit_on_error
def ask(c, question, model=None, adapter=None, max_tokens=None):
    """Answer one question through farol-ask and print its JSON, as the bot sees it."""
    from farol_core.model import recorded_base

    max_tokens = _int(max_tokens, "max-tokens", 1)
    if model is None and adapter is None:  # a run's adapter fits its own base model only
        adapter = _newest_adapter()
    model = model or (recorded_base(adapter) if adapter else None) or str(TINY_4BIT)
    cmd = [str(BIN / "farol-ask"), question, "--model", model]
    cmd += ["--adapter-path", adapter] if adapter else []
    c.run(shlex.join(cmd + (["--max-tokens", str(max_tokens)] if max_tokens is not None
                            else [])))


@task
@exit_on_error
def demo(c):
    """The whole path on the embedded sample: tiny model, quantize, prepare, train, eval, ask."""
    if not TINY.exists():
        tiny_model(c)
    if not TINY_4BIT.exists():
        quantize(c)
    prepare(c)
    train(c, fresh=True)
    evaluate(c, run="demo")
    plots(c, run="demo")
    from farol_core.config import load_config
    from farol_eval.report import example_lines

    report = json.loads(RunDir.of(RUNS, "demo").report.read_text(encoding="utf-8"))
    print("\n" + "\n".join(example_lines(report)) + "\n")
    answer_tokens = load_config("train", DEMO_CONFIG)["eval"]["max_tokens"]
    ask(c, "Quem foi Hassan Nader?", adapter=str(RUNS / "demo"), max_tokens=answer_tokens)
    print("\nartifacts:")
    for label, path in (("base model", TINY), ("4-bit model", TINY_4BIT), ("data", PROCESSED),
                        ("run (config, metrics, adapter)", RUNS / "demo"),
                        ("eval report", RunDir.of(RUNS, "demo").report.with_suffix(".md")),
                        ("charts", RunDir.of(RUNS, "demo").plots)):
        print(f"  {label:32} {path}")
    print("\nnext:\n"
          "  your own data:  invoke prepare --input my_qa.jsonl && invoke train --run mine "
          "--model <model folder>\n"
          "                  (docs/data.md: formats; the tiny model only knows the sample)\n"
          "  the notebook:   invoke notebook   (notebooks/farol.ipynb: this run's charts "
          "and report)")


@task(help={"args": "Extra pytest arguments (default: none).",
            "node": "Also run the Node.js client tests (default: on; --no-node skips them)."})
@exit_on_error
def test(c, args="", node=True):
    """Run the tests: pytest, then the Node.js client tests (node --test).

    A pytest run that collects no tests (exit code 5) is not a failure."""
    status = subprocess.call([sys.executable, "-m", "pytest", *shlex.split(args)], cwd=ROOT)
    if status == 5:
        print("pytest collected no tests")
        status = 0
    if node:
        status = node_tests() or status
    sys.exit(status) if status else None


@task
@exit_on_error
def lint(c):
    """Check style and common bugs with ruff."""
    c.run(shlex.join([str(BIN / "ruff"), "check", str(ROOT)]))


# --- evaluation: charts and the live monitor ---


@task(help={"run": "Run name (default: the newest run, by its last write).",
            "out": "Chart folder (default: runs/<name>/eval/plots)."})
@exit_on_error
def plots(c, run=None, out=None):
    """PNG charts of a run: training dashboard, loss analysis, base against tuned, checkpoints."""
    from farol_eval.plots import plot

    for path in plot(_run_dir(run), out):
        print(f"chart: {path}")


@task(help={"run": "Run name (default: the newest run, by its last write).",
            "refresh": "Seconds between redraws (default: 2).",
            "once": "Draw once and exit."})
@exit_on_error
def monitor(c, run=None, refresh="2", once=False):
    """Follow a training run live (loss sparkline, ETA, memory); Ctrl+C exits."""
    from farol_eval.monitor import monitor as run_monitor

    seconds = _number(refresh, "refresh", float)
    if seconds <= 0:  # 0 would redraw in a busy loop
        raise FarolError(f"--refresh must be more than 0 seconds, got {refresh!r}")
    # A typo would otherwise wait forever for a run never made.
    run_monitor(_run_dir(run), refresh=seconds, max_updates=1 if once else None)


@task(help={"run": "Run name (default: the newest run)."})
@exit_on_error
def summary(c, run=None):
    """The run's facts (duration, losses, overfitting check, checkpoints, base against tuned)
    and runs/<name>/summary.html with the charts embedded."""
    from farol_eval.summary import summarize, summary_lines, write_html

    run_dir = _run_dir(run)
    facts = summarize(run_dir)
    print("\n".join(summary_lines(facts)))
    print(f"summary: {write_html(run_dir, facts, log=lambda m: None)}")


@task
@exit_on_error
def notebook(c):
    """Open notebooks/farol.ipynb in JupyterLab (needs `pip install -e ".[notebook]"`)."""
    if shutil.which("jupyter-lab", path=str(BIN)) is None:
        raise FarolError("JupyterLab is not installed", hint='pip install -e ".[notebook]"')
    # Rooted at the repo, so the notebook opens from any folder and its ../ paths hold.
    c.run(shlex.join([str(BIN / "jupyter-lab"), f"--ServerApp.root_dir={ROOT}",
                      str(ROOT / "notebooks" / "farol.ipynb")]), pty=True)


def _run_dir(run: str | None) -> Path:
    """runs/<run>, or a FarolError that lists the runs there are. Without a name, the newest
    run, named on stdout: a forgotten --run must not silently pick another run."""
    if run is None:
        newest = _newest_run()
        if newest is None:
            raise FarolError(f"no runs in {RUNS} yet", hint="train one with `invoke train`")
        print(f"run: {newest.name} (the newest in {RUNS}; pick another with --run)")
        return newest
    if not (RUNS / run).is_dir():
        raise FarolError(f"no run named {run!r} in {RUNS}",
                         hint=f"runs: {_run_names()}; start `invoke train` first")
    return RUNS / run


# --- training ---


@task(help={"config": "Run config file (default: configs/demo.yaml).",
            "model": "Base model folder (default: the config's model).",
            "data": "Processed data folder (default: the config's data)."})
@exit_on_error
def preflight(c, config=str(DEMO_CONFIG), model=None, data=None):
    """Check versions, device, memory, disk, data and model before training (exit 1 on a fail)."""
    from farol_train.preflight import report
    from farol_train.run_config import resolve

    # runs_dir as `invoke train` uses it, so the disk check looks where checkpoints will go.
    cfg = resolve(config, runs_dir=str(RUNS), **_run_paths(config, model, data))
    if not report(cfg):
        sys.exit(1)


@task(help={"out": "Config file to write (default: asked, configs/NAME.yaml).",
            "force": "Replace OUT without asking if it exists."})
@exit_on_error
def configure(c, out=None, force=False):
    """Wizard: a profile or custom settings for a run, each with its default and reason; writes
    the config and ends with the `invoke train` line. Nothing is written if cut short."""
    from farol_train.cli import main

    args = ["configure", *(["--out", out] if out else []), *(["--force"] if force else [])]
    main.main(args, prog_name="invoke configure")  # click's prompts, errors and exit code


@task(help={"grid": "Points to measure: tiny (minutes on a CPU), mistral-7b-16gb (the 7B "
                    "shape under 9 GB: a 16 GB Mac) or mistral-7b (up to 22 GB); "
                    "default: tiny.",
            "write": "Save the refitted coefficients for this machine's backend.",
            "dtype": "Measure the grid's models in float32 or float16 instead of its own "
                     "(default: its own).",
            "fresh": "Measure every point again instead of resuming from runs/calibrate/."})
@exit_on_error
def calibrate(c, grid="tiny", write=False, dtype=None, fresh=False):
    """Measure training peaks on a grid and refit the memory model for this machine's backend."""
    from farol_core.device import backend
    from farol_train.calibrate import calibrate as run_calibrate
    from farol_train.calibrate import default_file, progress_file

    run_calibrate(grid, backend(), default_file() if write else None, dtype=dtype,
                  progress=progress_file(RUNS, backend(), grid, dtype), fresh=fresh)


@task(help={"run": "Run name (default: demo).",
            "model": "Base model folder (default: the model the run trained on).",
            "out": "Output folder (default: models/<run>-fused).",
            "gguf": "Also write OUT/model.gguf and an Ollama OUT/Modelfile.",
            "gguf_type": "GGUF weight type: f16, q8_0 or q4_0 (default: f16).",
            "dequantize": "Float weights.",
            "force": "Replace an existing --out folder (the default folder is always "
                     "replaced)."})
@exit_on_error
def fuse(c, run="demo", model=None, out=None, gguf=False, dequantize=False, force=False,
         gguf_type="f16"):
    """Merge a run's adapter into its base model (and export GGUF with --gguf)."""
    from farol_eval.evaluate import run_config
    from farol_train.fuse import fuse as run_fuse

    # The run's own base: the tiny model under a 7B adapter would be a wrong (or failed) merge.
    model = model or run_config(RUNS / run)["model"]
    # Only models/<run>-fused is Farol's to replace; a folder the user names (a typo away from
    # the base model itself) is replaced only with --force.
    force = force or out is None
    out = out or str(ROOT / "models" / f"{run}-fused")
    folder = run_fuse(model, RUNS / run, out, dequantize=dequantize,
                      gguf="model.gguf" if gguf else None, force=force, gguf_type=gguf_type)
    print(f"fused model: {folder}")
    if gguf:
        print(f"GGUF: {(folder / 'model.gguf').resolve()}\n"
              f"Ollama: ollama create {run} -f {(folder / 'Modelfile').resolve()}")


# --- bridge ---


def node_tests() -> int:
    """Run the Node.js client's tests (node --test) against this environment's farol-bridge."""
    node = shutil.which("node")
    if node is None:
        # CI must run them; on a user's machine without Node they are skipped, loudly.
        print("node not found: the Node.js bridge client tests did NOT run "
              "(install Node.js >= 18 to run them)")
        return 1 if os.environ.get("CI") else 0
    files = [str(p) for p in sorted((NODE_CLIENT / "test").glob("*.test.js"))]
    env = {**os.environ, "FAROL_PYTHON": sys.executable}
    return subprocess.call([node, "--test", *files], cwd=NODE_CLIENT, env=env)


def _run_paths(config, model, data) -> dict:
    """The run's model and data folders: the option when given, else the config file's (its
    relative paths are from the repo root), else the embedded sample's."""
    from farol_core.config import read_config_file

    written = read_config_file(config) if config else {}

    def pick(given, key, default):
        if given or key not in written:
            return given or str(default)
        value = written[key]  # a non-string goes on as it is, for the schema to report
        return str(ROOT / value) if isinstance(value, str) and value else value

    return {"model": pick(model, "model", TINY_4BIT), "data": pick(data, "data", PROCESSED)}


def _int(value, option: str, minimum: int | None = None) -> int | None:
    # Invoke passes options whose default is None (or text) as strings; it would parse an int
    # default itself, but a bad value then ends in its traceback instead of one line. The
    # minimum is the package command's own: checked here, a value out of range is named as the
    # option typed, not as a config key of "<dict>" or of a config file the user never edited.
    if value is None:
        return None
    number = _number(value, option, int)
    if minimum is not None and number < minimum:
        raise FarolError(f"--{option} must be at least {minimum}, got {number}")
    return number


def _number(value, option: str, kind):
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise FarolError(f"--{option} must be {what}, got {value!r}") from None


def _newest_run() -> Path | None:
    """The run folder (one with a config.json) written to last, or None."""
    runs = [p for p in RUNS.glob("*") if RunDir(p).config.is_file()]
    return max(runs, key=_last_write, default=None)


def _last_write(folder: Path) -> float:
    """The newest modification time of `folder` and what sits directly in it."""
    times = [folder.stat().st_mtime]
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):  # a temporary file a live run just renamed
            times.append(path.stat().st_mtime)
    return max(times)


def _newest_adapter() -> str | None:
    """The newest run's folder when it holds an adapter, said on stderr (stdout is the JSON)."""
    newest = _newest_run()
    if newest is None or not RunDir(newest).adapter.is_file():
        print(f"ask: no trained run in {RUNS}; answering with the base model alone",
              file=sys.stderr)
        return None
    print(f"ask: adapter of run {newest.name} (the newest; pick another with --adapter)",
          file=sys.stderr)
    return str(newest)


def _run_names() -> str:
    names = sorted(p.name for p in RUNS.glob("*") if RunDir(p).config.is_file())
    return ", ".join(names) or "none yet"


# --- benchmarks ---
BENCH = ROOT / "benchmarks"
BENCH_RESULTS = BENCH / "results"
BENCH_SCHEMA = BENCH / "results.schema.json"


@task(klass=_Typed, help={"shape": "Model shape: tiny or mistral-7b (default: tiny).",
            "model": "Benchmark this model folder instead of a shape (default: none).",
            "rounds": "Timed repeats per benchmark (default: 5).",
            "args": "Extra pytest arguments (default: none)."})
@exit_on_error
def bench(c, shape="tiny", model=None, rounds="5", args=""):
    """Run the benchmarks for real and write benchmarks/results/<time>-<host>-mlx<ver>.json."""
    from farol_bench.models import check_choice

    check_choice(shape, model)
    rounds = _int(rounds, "rounds", 1)
    cmd = [sys.executable, "-m", "pytest", str(BENCH), "--benchmark-enable", "--shape", shape,
           "--bench-rounds", str(rounds), "-q", *(["--model", model] if model else []),
           *shlex.split(args)]
    sys.exit(subprocess.call(cmd, cwd=ROOT) or 0)


@task(help={"baseline": "Results file to compare with (default: the last earlier run on this "
                        "device, in benchmarks/results/ then benchmarks/baselines/).",
            "threshold": "Largest tolerated slowdown, as a fraction or a percentage "
                         "(default: 0.10, i.e. 10%)."})
@exit_on_error
def bench_compare(c, baseline=None, threshold="0.10"):
    """Compare the newest benchmark run with a baseline; exit 1 when a figure got worse."""
    from farol_bench import compare, results

    threshold = compare.check_threshold(threshold)
    schema = results.load_schema(BENCH_SCHEMA)
    old_path, old, new_path, new = results.pair(BENCH_RESULTS, BENCH / "baselines", schema,
                                                baseline)
    rows = compare.compare(old, new, threshold)
    print(f"old: {old_path}\nnew: {new_path}\n")
    print(compare.table(rows))
    print("\n" + compare.verdict_line(rows, old, new, threshold))
    sys.exit(1 if compare.regressions(rows) else 0)


@task(help={"out": "PNG file to write (default: benchmarks/results/tokens_per_s.png)."})
@exit_on_error
def bench_plot(c, out=str(BENCH_RESULTS / "tokens_per_s.png")):
    """Draw tokens/s per mlx version over time from benchmarks/results/ (and baselines/)."""
    from farol_bench import plot, results

    schema = results.load_schema(BENCH_SCHEMA)
    paths = [p for d in (BENCH / "baselines", BENCH_RESULTS) for p in results.find(d)]
    docs = results.load_all(paths, schema, warn=lambda m: print(m, file=sys.stderr))
    print(f"plot of {len(docs)} runs: {plot.plot(docs, out)}")


@task(klass=_Typed, help={"mlx": "mlx version to try.", "mlx_lm": "mlx-lm version to try.",
            "threshold": "Largest tolerated slowdown, as a fraction or a percentage "
                         "(default: 0.10).",
            "rounds": "Timed repeats per benchmark (default: 3).",
            "tests": "Benchmark files to run (default: benchmarks).",
            "keep": "Keep the throwaway venv.",
            "passes": "Benchmark runs per side, alternating here and there (default: 2)."})
@exit_on_error
def check_upgrade(c, mlx, mlx_lm, threshold="0.10", rounds="3", tests="benchmarks", keep=False,
                  passes="2"):
    """Try mlx/mlx-lm versions in a throwaway venv: API tests, tiny benchmarks, a verdict."""
    from farol_bench import compare, upgrade

    out = upgrade.check_upgrade(ROOT, mlx, mlx_lm, compare.check_threshold(threshold), tests,
                                _int(rounds, "rounds", 1), keep,
                                passes=_int(passes, "passes", 1))
    if out.rows:
        print(compare.table(out.rows, *out.labels) + "\n\n" + out.summary)
    print("\n".join(["", f"verdict: {out.verdict}", *out.reasons]))
    sys.exit(0 if out.verdict == "safe to upgrade" else 1)


# --- distributed ---


def _distributed_train(config, model, data, run, iters, seed, fresh, hosts, hostfile, np):
    """`invoke train --hosts/--hostfile/--np`: the same run through `farol-train run`, whose
    launcher preflights the hosts and starts every rank with mlx.launch."""
    paths = _run_paths(config, model, data)
    options = {"--config": config, "--model": paths["model"], "--data": paths["data"],
               "--run": run, "--runs-dir": str(RUNS),
               "--iters": iters, "--seed": seed, "--hosts": hosts, "--hostfile": hostfile,
               "--np": np}
    cmd = [str(BIN / "farol-train"), "run"]
    cmd += [a for k, v in options.items() if v is not None for a in (k, str(v))]
    code = _wait_through_ctrl_c(subprocess.Popen(cmd + (["--fresh"] if fresh else [])))
    if code:
        sys.exit(code)


def _wait_through_ctrl_c(proc) -> int:
    """The exit code of `proc`. Ctrl+C reaches it too, and it stops its ranks with a checkpoint;
    subprocess.run would kill it a quarter second later, before they have saved."""
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue
