"""Farol's tasks. Each one is a few lines over a package's public functions.

Run `invoke --list` for the list and `invoke --help TASK` for a task's options. Paths default
to the embedded sample, relative to this file, so the tasks work from any folder of the repo.
"""

import shlex
import subprocess
import sys
from pathlib import Path

from farol_core.errors import exit_on_error
from invoke import task

ROOT = Path(__file__).resolve().parent
TINY = ROOT / "models" / "tiny-mistral"
TINY_4BIT = ROOT / "models" / "tiny-mistral-4bit"
SAMPLE_QA = ROOT / "data" / "sample" / "farense_qa.jsonl"
SAMPLE_BIOS = ROOT / "data" / "sample" / "biografias" / "jogadores"
PROCESSED = ROOT / "data" / "processed"
RUNS = ROOT / "runs"
DEMO_CONFIG = ROOT / "configs" / "demo.yaml"
BIN = Path(sys.executable).parent


@task(help={"out": "Output folder.", "force": "Replace an existing model."})
@exit_on_error
def tiny_model(c, out=str(TINY), force=False):
    """Create the embedded tiny Mistral model (random weights, BPE tokenizer from the sample)."""
    from farol_core.tiny import create_tiny_model
    from farol_data import texts

    path = create_tiny_model(out, texts([SAMPLE_QA], SAMPLE_BIOS), force=force)
    print(f"tiny model: {path}")


@task(help={"model": "Hugging Face layout folder or Hub id.", "out": "Output folder.",
            "bits": "Bits per weight.", "group_size": "Quantization group size.",
            "force": "Replace an existing output."})
@exit_on_error
def quantize(c, model=str(TINY), out=str(TINY_4BIT), bits=4, group_size=64, force=False):
    """Quantize a model to MLX format with mlx-lm's convert (4-bit, group size 64)."""
    from farol_train import quantize as run_quantize

    print(f"quantized model: {run_quantize(model, out, bits, group_size, force)}")


@task(iterable=["input"], help={"input": "Q&A file (repeatable).",
                                "biographies": "Biographies folder.", "out": "Output folder.",
                                "config": "Data config file.", "seed": "Split seed."})
@exit_on_error
def prepare(c, input=None, biographies=str(SAMPLE_BIOS), out=str(PROCESSED), config=None,
            seed=None):
    """Clean, validate, deduplicate and split Q&A data into train/valid/test JSONL."""
    from farol_data import prepare as run_prepare

    result = run_prepare(input or [SAMPLE_QA], out, biographies=biographies or None,
                         config=config, seed=_int(seed))
    r = result.report
    print(f"data: read {r['read']} = kept {r['kept']} + rejected {r['rejected']} + duplicates "
          f"{r['duplicates']}; splits {r['splits']} -> {result.out_dir}")


@task(help={"config": "Run config file.", "model": "Base model folder.",
            "data": "Processed data folder.", "run": "Run name (runs/<name>/).",
            "iters": "Training steps.", "seed": "Random seed."})
@exit_on_error
def train(c, config=str(DEMO_CONFIG), model=None, data=None, run=None, iters=None, seed=None):
    """Train a QLoRA adapter; the run goes to runs/<name>/."""
    from farol_train import train as run_train

    result = run_train(config, model=model or str(TINY_4BIT), data=data or str(PROCESSED),
                       name=run, runs_dir=str(RUNS), iters=_int(iters), seed=_int(seed))
    print(f"train: loss {result.first_loss:.3f} -> {result.last_loss:.3f}, "
          f"val loss {result.val_loss:.3f}; adapter in {result.run_dir}")


@task(name="eval", help={"run": "Run name.", "samples": "Answers to generate.",
                         "max_tokens": "Tokens per answer."})
@exit_on_error
def evaluate(c, run="demo", samples=None, max_tokens=None):
    """Evaluate base against tuned: loss, perplexity and sample answers."""
    from farol_eval import evaluate as run_evaluate
    from farol_eval.evaluate import summary_lines

    report = run_evaluate(RUNS / run, samples=_int(samples), max_tokens=_int(max_tokens))
    print("\n".join(summary_lines(report)))
    print(f"eval report: {RUNS / run / 'eval' / 'report.json'}")


@task(help={"question": "The question.", "model": "Model folder.",
            "adapter": "Adapter folder (default: runs/demo when it exists).",
            "max_tokens": "Longest answer, in tokens."})
@exit_on_error
def ask(c, question, model=str(TINY_4BIT), adapter=None, max_tokens=None):
    """Answer one question through farol-ask and print its JSON, as the bot sees it."""
    adapter = adapter or (str(RUNS / "demo") if (RUNS / "demo" / "adapters.safetensors").exists()
                          else None)
    cmd = [str(BIN / "farol-ask"), question, "--model", model]
    cmd += ["--adapter-path", adapter] if adapter else []
    c.run(shlex.join(cmd + (["--max-tokens", str(max_tokens)] if max_tokens else [])))


@task
@exit_on_error
def demo(c):
    """The whole path on the embedded sample: tiny model, quantize, prepare, train, eval, ask."""
    if not TINY.exists():
        tiny_model(c)
    if not TINY_4BIT.exists():
        quantize(c)
    prepare(c)
    train(c)
    evaluate(c)
    from farol_core.config import load_config

    answer_tokens = load_config("train", DEMO_CONFIG)["eval"]["max_tokens"]
    ask(c, "Quem foi Hassan Nader?", max_tokens=answer_tokens)
    print("\nartifacts:")
    for label, path in (("base model", TINY), ("4-bit model", TINY_4BIT), ("data", PROCESSED),
                        ("run (config, metrics, adapter)", RUNS / "demo"),
                        ("eval report", RUNS / "demo" / "eval" / "report.json")):
        print(f"  {label:32} {path}")


@task(help={"args": "Extra pytest arguments."})
@exit_on_error
def test(c, args=""):
    """Run the test suite (pytest); a run that collects no tests is not a failure."""
    status = subprocess.call([sys.executable, "-m", "pytest", *shlex.split(args)], cwd=ROOT)
    if status == 5:
        print("pytest collected no tests")
        status = 0
    sys.exit(status) if status else None


@task
@exit_on_error
def lint(c):
    """Check style and common bugs with ruff."""
    c.run(shlex.join([str(BIN / "ruff"), "check", str(ROOT)]))


def _int(value) -> int | None:
    # Invoke passes options whose default is None as strings.
    return None if value is None else int(value)


# --- benchmarks ---
BENCH = ROOT / "benchmarks"
BENCH_RESULTS = BENCH / "results"
BENCH_SCHEMA = BENCH / "results.schema.json"


@task(help={"shape": "Model shape: tiny or mistral-7b.", "model": "Benchmark this model folder.",
            "rounds": "Timed repeats per benchmark.", "args": "Extra pytest arguments."})
@exit_on_error
def bench(c, shape="tiny", model=None, rounds=5, args=""):
    """Run the benchmarks for real and write benchmarks/results/<time>-<host>-mlx<ver>.json."""
    from farol_bench.models import check_choice

    check_choice(shape, model)
    cmd = [sys.executable, "-m", "pytest", str(BENCH), "--benchmark-enable", "--shape", shape,
           "--bench-rounds", str(rounds), "-q", *(["--model", model] if model else []),
           *shlex.split(args)]
    sys.exit(subprocess.call(cmd, cwd=ROOT) or 0)


@task(help={"baseline": "Results file to compare with (default: the last earlier run on this "
                        "device, in benchmarks/results/ then benchmarks/baselines/).",
            "threshold": "Largest tolerated slowdown, as a fraction."})
@exit_on_error
def bench_compare(c, baseline=None, threshold=0.10):
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


@task(help={"out": "PNG file to write."})
@exit_on_error
def bench_plot(c, out=str(BENCH_RESULTS / "tokens_per_s.png")):
    """Draw tokens/s per mlx version over time from benchmarks/results/ (and baselines/)."""
    from farol_bench import plot, results

    schema = results.load_schema(BENCH_SCHEMA)
    docs = [results.load(p, schema) for d in (BENCH / "baselines", BENCH_RESULTS)
            for p in results.find(d)]
    print(f"plot of {len(docs)} runs: {plot.plot(docs, out)}")


@task(help={"mlx": "mlx version to try.", "mlx_lm": "mlx-lm version to try.",
            "threshold": "Largest tolerated slowdown.", "rounds": "Timed repeats per benchmark.",
            "tests": "Benchmark files to run.", "keep": "Keep the throwaway venv.",
            "passes": "Benchmark runs per side, alternating here and there."})
@exit_on_error
def check_upgrade(c, mlx, mlx_lm, threshold=0.10, rounds=3, tests="benchmarks", keep=False,
                  passes=2):
    """Try mlx/mlx-lm versions in a throwaway venv: API tests, tiny benchmarks, a verdict."""
    from farol_bench import compare, upgrade

    out = upgrade.check_upgrade(ROOT, mlx, mlx_lm, compare.check_threshold(threshold), tests,
                                int(rounds), keep, passes=int(passes))
    if out.rows:
        print(compare.table(out.rows, *out.labels) + "\n\n" + out.summary)
    print("\n".join(["", f"verdict: {out.verdict}", *out.reasons]))
    sys.exit(0 if out.verdict == "safe to upgrade" else 1)
