"""Farol's tasks. Each one is a few lines over a package's public functions.

Run `invoke --list` for the list and `invoke --help TASK` for a task's options. Paths default
to the embedded sample, relative to this file, so the tasks work from any folder of the repo.
"""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

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
NODE_CLIENT = ROOT / "packages" / "farol-bridge" / "node"


@task(help={"out": "Output folder.", "force": "Replace an existing model."})
def tiny_model(c, out=str(TINY), force=False):
    """Create the embedded tiny Mistral model (random weights, BPE tokenizer from the sample)."""
    from farol_core.tiny import create_tiny_model
    from farol_data import texts

    path = create_tiny_model(out, texts([SAMPLE_QA], SAMPLE_BIOS), force=force)
    print(f"tiny model: {path}")


@task(help={"model": "Hugging Face layout folder or Hub id.", "out": "Output folder.",
            "bits": "Bits per weight.", "group_size": "Quantization group size.",
            "force": "Replace an existing output."})
def quantize(c, model=str(TINY), out=str(TINY_4BIT), bits=4, group_size=64, force=False):
    """Quantize a model to MLX format with mlx-lm's convert (4-bit, group size 64)."""
    from farol_train import quantize as run_quantize

    print(f"quantized model: {run_quantize(model, out, bits, group_size, force)}")


@task(iterable=["input"], help={"input": "Q&A file (repeatable).",
                                "biographies": "Biographies folder.", "out": "Output folder.",
                                "config": "Data config file.", "seed": "Split seed."})
def prepare(c, input=None, biographies=str(SAMPLE_BIOS), out=str(PROCESSED), config=None,
            seed=None):
    """Clean, validate, deduplicate and split Q&A data into train/valid/test JSONL."""
    from farol_data import prepare as run_prepare

    result = run_prepare(input or [SAMPLE_QA], out, biographies=biographies or None,
                         config=config, seed=seed)
    r = result.report
    print(f"data: read {r['read']} = kept {r['kept']} + rejected {r['rejected']} + duplicates "
          f"{r['duplicates']}; splits {r['splits']} -> {result.out_dir}")


@task(help={"config": "Run config file.", "model": "Base model folder.",
            "data": "Processed data folder.", "run": "Run name (runs/<name>/).",
            "iters": "Training steps.", "seed": "Random seed."})
def train(c, config=str(DEMO_CONFIG), model=None, data=None, run=None, iters=None, seed=None):
    """Train a QLoRA adapter; the run goes to runs/<name>/."""
    from farol_train import train as run_train

    result = run_train(config, model=model or str(TINY_4BIT), data=data or str(PROCESSED),
                       name=run, runs_dir=str(RUNS), iters=iters, seed=seed)
    print(f"train: loss {result.first_loss:.3f} -> {result.last_loss:.3f}, "
          f"val loss {result.val_loss:.3f}; adapter in {result.run_dir}")


@task(name="eval", help={"run": "Run name.", "samples": "Answers to generate.",
                         "max_tokens": "Tokens per answer."})
def evaluate(c, run="demo", samples=None, max_tokens=None):
    """Evaluate base against tuned: loss, perplexity and sample answers."""
    from farol_eval import evaluate as run_evaluate
    from farol_eval.evaluate import summary_lines

    report = run_evaluate(RUNS / run, samples=samples, max_tokens=max_tokens)
    print("\n".join(summary_lines(report)))
    print(f"eval report: {RUNS / run / 'eval' / 'report.json'}")


@task(help={"question": "The question.", "model": "Model folder.",
            "adapter": "Adapter folder (default: runs/demo when it exists)."})
def ask(c, question, model=str(TINY_4BIT), adapter=None):
    """Answer one question through farol-ask and print its JSON, as the bot sees it."""
    adapter = adapter or (str(RUNS / "demo") if (RUNS / "demo" / "adapters.safetensors").exists()
                          else None)
    cmd = [str(BIN / "farol-ask"), question, "--model", model]
    c.run(shlex.join(cmd + (["--adapter-path", adapter] if adapter else [])))


@task
def demo(c):
    """The whole path on the embedded sample: tiny model, quantize, prepare, train, eval, ask."""
    if not TINY.exists():
        tiny_model(c)
    if not TINY_4BIT.exists():
        quantize(c)
    prepare(c)
    train(c)
    evaluate(c)
    ask(c, "Quem foi Hassan Nader?")
    print("\nartifacts:")
    for label, path in (("base model", TINY), ("4-bit model", TINY_4BIT), ("data", PROCESSED),
                        ("run (config, metrics, adapter)", RUNS / "demo"),
                        ("eval report", RUNS / "demo" / "eval" / "report.json")):
        print(f"  {label:32} {path}")


@task(help={"args": "Extra pytest arguments.", "node": "Also run the Node.js client tests."})
def test(c, args="", node=True):
    """Run the test suite (pytest), then the Node.js client tests; a run that collects no
    Python tests is not a failure."""
    status = subprocess.call([sys.executable, "-m", "pytest", *shlex.split(args)], cwd=ROOT)
    if status == 5:
        print("pytest collected no tests")
        status = 0
    if node:
        status = node_tests() or status
    sys.exit(status) if status else None


@task
def lint(c):
    """Check style and common bugs with ruff."""
    c.run(shlex.join([str(BIN / "ruff"), "check", str(ROOT)]))


# --- bridge ---


def node_tests() -> int:
    """Run the Node.js client's tests (node --test) against this environment's farol-bridge."""
    node = shutil.which("node")
    if node is None:
        print("node not found: install Node.js >= 18 to run the bridge client tests "
              "(or pass --no-node)")
        return 1
    files = [str(p) for p in sorted((NODE_CLIENT / "test").glob("*.test.js"))]
    env = {**os.environ, "FAROL_PYTHON": sys.executable}
    return subprocess.call([node, "--test", *files], cwd=NODE_CLIENT, env=env)
