"""Each package declares exactly what it imports, and the workspace installs all of them."""

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
# import name -> distribution name, where they differ
DIST = {"mlx": "mlx", "mlx_lm": "mlx-lm", "yaml": "pyyaml", "farol_core": "farol-core",
        "IPython": "ipython"}


def _project(path: Path) -> dict:
    return tomllib.loads(path.read_text())["project"]


def _dist_name(requirement: str) -> str:
    name = requirement.split(";")[0].split("[")[0]
    for sep in "<>=!~ ":
        name = name.split(sep)[0]
    return name.strip().lower()


def _imports(src: Path) -> set[str]:
    own = src.name
    found = set()
    for file in src.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    third_party = found - set(sys.stdlib_module_names) - {own}
    return {DIST.get(name, name.replace("_", "-")) for name in third_party}


@pytest.mark.parametrize("package", PACKAGES)
def test_package_declares_exactly_what_it_imports(package):
    project = _project(ROOT / "packages" / package / "pyproject.toml")
    # an optional import (the notebook's IPython and ipywidgets) is declared in an extra
    extras = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
    declared = {_dist_name(r) for r in project["dependencies"] + extras}
    imported = _imports(ROOT / "packages" / package / "src" / package.replace("-", "_"))
    assert imported == declared, f"imports {sorted(imported)} but declares {sorted(declared)}"


def test_workspace_installs_every_package_and_script():
    root = _project(ROOT / "pyproject.toml")
    root_deps = set(root["dependencies"]).union(*root["optional-dependencies"].values())
    scripts = {}
    for package in PACKAGES:
        project = _project(ROOT / "packages" / package / "pyproject.toml")
        extras = [r for reqs in project.get("optional-dependencies", {}).values() for r in reqs]
        missing = {r for r in project["dependencies"] + extras
                   if not r.startswith("farol-")} - root_deps
        assert not missing, f"{package} needs {missing}, which the workspace does not install"
        scripts |= project.get("scripts", {})
    assert scripts == root["scripts"]


def _farol_imports(file: Path, modules: set[str]) -> set[str]:
    """The farol modules `file` imports, at its top or inside a function (`from farol_x import
    y` counts as farol_x.y when y is a module, else as farol_x's __init__)."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs if len(subs) == len(node.names) else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found & modules


def test_modules_import_in_layers_with_no_cycle():
    # A cycle works until the day an import order changes; farol-core imports no other package.
    files = {f"{f.parent.name}.{f.stem}".removesuffix(".__init__"): f
             for f in ROOT.glob("packages/*/src/*/*.py")}
    graph = {name: _farol_imports(f, set(files)) - {name} for name, f in files.items()}
    done: list[str] = []
    while len(done) < len(graph):  # peel off the modules whose imports are all done
        ready = [m for m in graph if m not in done and graph[m] <= set(done)]
        assert ready, f"import cycle among {sorted(set(graph) - set(done))}"
        done += ready
    core = {d.split(".")[0] for m, deps in graph.items() if m.startswith("farol_core")
            for d in deps}
    assert core <= {"farol_core"}
