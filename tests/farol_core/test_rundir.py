"""The run folder has one owner: farol_core.rundir."""

import re
from pathlib import Path

from farol_core.rundir import RunDir, verify

ROOT = Path(__file__).resolve().parents[2]
# A run file's name written as a string anywhere else: "status.json", / "checkpoints",
# "step-{n:07d}", or a run's config.json / adapter reached from a run folder.
RUN_NAMES = re.compile(
    r"""["'](?:metrics\.jsonl|metrics\.csv|steps\.jsonl|status\.json|best\.json|"""
    r"""trainer_state\.json|manifest\.json|optimizer\.safetensors|pending_grad\.safetensors|"""
    r"""step-[^"']*)["']|/\s*["']checkpoints["']"""
    r"""|(?:run_dir|RUNS|run)\b[^\n#]*/\s*["'](?:config\.json|eval|adapters(?:\.safetensors)?)["']""")


def _code_lines(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.lstrip().startswith("#"):
            yield number, line


def test_no_package_outside_rundir_spells_a_run_file_name():
    sources = [*sorted((ROOT / "packages").glob("*/src/*/*.py")), ROOT / "tasks.py"]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in sources
             if path.name != "rundir.py" for n, line in _code_lines(path)
             if RUN_NAMES.search(line)]
    assert len(sources) > 50 and found == []


def test_the_pattern_catches_the_spellings_it_replaced():
    # What farol-eval, the monitor and tasks.py used to write, before RunDir.
    for line in ('root = Path(run_dir) / "checkpoints"', 'run_dir / "status.json"',
                 'saved = RUNS / run / "config.json" if run else None',
                 'out = run_dir / "eval" / "plots"', 'folder.name != f"step-{best_step:07d}"'):
        assert RUN_NAMES.search(line), line
    assert not RUN_NAMES.search('(model / "config.json").is_file()')  # a model's, not a run's


def test_checkpoints_are_listed_by_step_and_verified(tmp_path):
    run = RunDir.of(tmp_path, "r")
    for step in (20, 3):
        run.checkpoint(step).mkdir(parents=True)
    (run.checkpoints_dir / ".step-0000021.tmp").mkdir()  # a save in progress
    (run.checkpoints_dir / "step-x").mkdir()
    assert [p.name for p in run.checkpoints()] == ["step-0000003", "step-0000020"]
    warnings = []
    assert run.latest(warn=warnings.append) is None
    assert warnings == [f"warning: skipping checkpoint step-{s:07d}: manifest.json is missing "
                        "or unreadable" for s in (20, 3)]
    assert verify(run.checkpoint(3)) == "manifest.json is missing or unreadable"


def test_reading_a_run_that_has_not_written_yet(tmp_path):
    run = RunDir(tmp_path / "new")
    assert (run.read_metrics(), run.read_status(), run.read_config(), run.best()) == \
        ([], None, None, None)
    assert run.previous_outputs() == []
    run.status.parent.mkdir()
    run.status.write_text("{not json")  # cut short by a crash
    assert run.read_status() is None
