"""Name every Python distribution that the GPU run needs and this interpreter lacks, all at once.

A GPU machine is lent for minutes and reaches no package index, so a module missing halfway
through a run costs the run. This reads what Farol's packages declare, adds the benchmark
harness, follows each installed distribution's own requirements, and exits 1 listing every
one that is missing or outside its version range. Run from the repository's root:
`python3 benchmarks/gpu/check_env.py`.
"""

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

HARNESS = ["pytest", "pytest-benchmark"]  # the benchmarks' runner, from the root's dev extras


def declared(root: Path) -> list[str]:
    """The runtime requirements of every package under packages/, Farol's own left out: they
    come from the checkout's source folders, not from installed distributions."""
    found = []
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        deps = tomllib.loads(pyproject.read_text())["project"].get("dependencies", [])
        found += [d for d in deps if not Requirement(d).name.startswith("farol-")]
    return found


def problems(requirements: list[str]) -> list[str]:
    """Missing or wrong-version distributions among `requirements` and everything they need,
    with requested extras left out (the CUDA build stands in for `mlx[cpu]`)."""
    todo, seen, found = [Requirement(r) for r in requirements], set(), []
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = (req.name.lower().replace("_", "-"), str(req.specifier))
        if key in seen:
            continue
        seen.add(key)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            found.append(f"{req.name}{req.specifier} (missing)")
            continue
        if not req.specifier.contains(have, prereleases=True):
            found.append(f"{req.name}{req.specifier} (have {have})")
        todo += [Requirement(r) for r in requires(req.name) or []]
    return sorted(set(found))


def main() -> int:
    wrong = problems(declared(Path.cwd()) + HARNESS)
    for line in wrong:
        print("needs", line, file=sys.stderr)
    if wrong:
        print(f"{len(wrong)} distribution(s) to carry as wheels: add them to EXTRA "
              "(docs/benchmarks.md, 'On a GPU box')", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
