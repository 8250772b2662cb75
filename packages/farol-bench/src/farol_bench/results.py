"""Results files: one JSON document per benchmark run, validated against the committed schema.

A run lands in `<dir>/<timestamp>-<host>-mlx<version>.json`. Its `benchmarks` list holds,
per benchmark, its settings and its figures (see `farol_bench.figures`).
"""

import copy
import itertools
import json
import platform
import re
import socket
import statistics
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
from farol_core.device import facts
from farol_core.errors import FarolError
from farol_core.io import write_json

from farol_bench.figures import from_stats, split_extra_info

SCHEMA_VERSION = 1
RUN_NAME = re.compile(r"^\d{8}T\d{6}Z-.+-mlx.+\.json$")  # what file_name writes
BROKEN_HINT = "move the file out of benchmarks/results/ (or fix it); the other runs stay usable"
# Run settings that change what test_decode measures: runs that differ in them are not compared.
WORKLOAD = ("decode_tokens", "decode_context")


def benchmark_entry(name: str, stats, extra_info: dict, group: str | None = None) -> dict:
    """One benchmark's settings and figures from pytest-benchmark's stats and extra_info."""
    figures, settings = split_extra_info(dict(extra_info), stats)
    if stats is not None:
        figures = {"seconds": from_stats(stats), **figures}
    return {"name": name, "group": group, "settings": settings, "figures": figures}


def build(benchmarks: list[dict], shape: str, model: dict, settings: dict,
          device: dict | None = None, now: datetime | None = None) -> dict:
    """The results document for one run on this machine."""
    f = facts()
    return {
        "schema_version": SCHEMA_VERSION,
        "created": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        # The schema needs a host; a container may have no name, and the run must still be kept.
        "host": socket.gethostname() or "unknown",
        "versions": {"mlx": f["mlx"], "mlx_lm": f["mlx_lm"], "python": f["python"],
                     "os": platform.platform()},
        "device": device or device_facts(),
        "shape": shape,
        "model": model,
        "settings": settings,
        "benchmarks": benchmarks,
    }


def device_facts() -> dict:
    """Backend, device name and memory, with the known memory bandwidth (or null)."""
    from farol_bench.bandwidth import known_bandwidth

    f = facts()
    memory = {k: v for k, v in f.items() if k.startswith(("ram_", "device_memory", "device_max"))}
    return {"backend": f["backend"], "name": f["device_name"], "mlx_device": f["device"],
            "platform": f["platform"], "bandwidth_bytes_per_s": known_bandwidth(f["device_name"]),
            "memory": memory}


def file_name(doc: dict) -> str:
    """`<timestamp>-<host>-mlx<version>.json`, safe as a file name."""
    stamp = doc["created"].replace("-", "").replace(":", "")
    host = re.sub(r"[^A-Za-z0-9_.]+", "_", doc["host"]) or "host"
    return f"{stamp}-{host}-mlx{doc['versions']['mlx']}.json"


def write(doc: dict, out_dir: str | Path, schema: dict) -> Path:
    """Validate `doc` and write it into `out_dir`; returns the file's path."""
    validate(doc, schema)
    path = _claim(Path(out_dir), file_name(doc))
    try:
        write_json(path, doc)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _claim(folder: Path, name: str) -> Path:
    """A new, empty file `name` in `folder`, else `<name>-2.json`, `-3`, ...: two runs that end
    in the same second on one host must not overwrite each other."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = name.removesuffix(".json")
    for n in itertools.count(1):
        path = folder / (name if n == 1 else f"{stem}-{n}.json")
        try:
            path.open("x").close()  # exclusive: another process may be writing the same name
            return path
        except FileExistsError:
            continue


def validate(doc: dict, schema: dict) -> None:
    """Raise FarolError naming the first place where `doc` breaks the results schema."""
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        raise FarolError(f"results do not match the schema at {where}: {e.message}") from None


def load(path: str | Path, schema: dict) -> dict:
    """A validated results document; a FarolError naming the file otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FarolError(f"No results file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
        raise FarolError(f"{path} is not JSON ({why})",
                         hint=BROKEN_HINT) from None
    try:
        validate(doc, schema)
    except FarolError as e:
        raise FarolError(f"{path}: {e.message}", hint=BROKEN_HINT) from None
    return doc


def load_all(paths: list[Path], schema: dict, warn=print) -> list[dict]:
    """The documents at `paths` that load; each one that does not is named through `warn`,
    so one broken file does not hide every other run."""
    docs = []
    for path in paths:
        try:
            docs.append(load(path, schema))
        except FarolError as e:
            warn(f"skipped: {e.message}")
    return docs


def load_schema(path: str | Path) -> dict:
    """The results JSON Schema."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def find(folder: str | Path) -> list[Path]:
    """Results files in `folder`, oldest first (the file names start with the timestamp);
    other JSON files there are not runs and are left alone."""
    folder = Path(folder)
    found = folder.glob("*.json") if folder.is_dir() else []
    return sorted((p for p in found if RUN_NAME.match(p.name)), key=_order)


def _order(path: Path) -> tuple:
    # Within one second, `<name>-2.json` was written after `<name>.json` ("-" sorts before ".").
    again = re.search(r"-(\d+)\.json$", path.name)
    return path.name[:16], int(again[1]) if again else 1, path.name


def same_device(a: dict, b: dict) -> bool:
    """Whether two runs are comparable: same backend, device, shape, model and workload."""
    return _what(a) == _what(b)


def _what(d: dict) -> tuple:
    # A shape names its model; a run that never loaded it (`-k bridge`) recorded the shape's
    # name instead, so the model's name only tells --model folders apart.
    model = d["model"].get("name") if d["shape"] == "model" else None
    return (d["device"]["backend"], d["device"]["name"], d["shape"], model,
            *(d["settings"].get(k) for k in WORKLOAD))


def shared_figures(a: dict, b: dict) -> int:
    """How many `<benchmark> <figure>` keys two runs both hold."""
    keys = [{(x["name"], f) for x in d["benchmarks"] for f in x["figures"]} for d in (a, b)]
    return len(keys[0] & keys[1])


def newest(folder: str | Path, schema: dict) -> tuple[Path, dict]:
    """The newest results file in `folder`, loaded."""
    found = find(folder)
    if not found:
        raise FarolError(f"No results in {folder}", hint="run `invoke bench` first")
    return found[-1], load(found[-1], schema)


def baseline_for(new: dict, new_path: Path, folders: list[Path], schema: dict,
                 warn=print) -> tuple[Path, dict]:
    """The most recent earlier run on the same device, shape and model that shares a figure
    with `new`, searched in `folders`; broken files are named and skipped."""
    for folder in folders:
        paths = [p for p in reversed(find(folder)) if p.resolve() != new_path.resolve()]
        for path in paths:
            doc = next(iter(load_all([path], schema, warn)), None)
            if (doc and same_device(doc, new) and doc["created"] <= new["created"]
                    and shared_figures(doc, new)):
                return path, doc
    raise FarolError(f"No earlier run on {new['device']['name']} ({new['device']['backend']}) "
                     f"with shape {new['shape']} and a figure in common to compare with",
                     hint="run `invoke bench` twice, or pass --baseline FILE")


def check_comparable(old: dict, new: dict) -> None:
    """Raise FarolError unless the two runs share device, shape, model, workload and a figure."""
    if not same_device(old, new):
        def what(d):
            work = ", ".join(f"{k} {d['settings'].get(k)}" for k in WORKLOAD)
            return f"{d['device']['name']} ({d['device']['backend']}), {d['shape']} " \
                   f"{d['model'].get('name')}, {work}"
        raise FarolError(f"the baseline ran on {what(old)}, the new run on {what(new)}",
                         hint="compare runs of the same device, shape, model and settings")
    if not shared_figures(old, new):
        raise FarolError("the baseline and the new run have no figure in common, so nothing "
                         "can be compared", hint="pass a --baseline FILE that ran the same "
                         "benchmarks (`invoke bench -k` runs a subset)")


def merge(docs: list[dict]) -> dict:
    """Runs of the same benchmarks as one: median of the medians, overall min and max.

    The upgrade guard alternates runs here and there, so a machine that gets busier during
    the check slows both sides alike; merging gives one document per side.
    """
    merged = copy.deepcopy(docs[-1])
    for bench in merged["benchmarks"]:
        for name, fig in bench["figures"].items():
            same = [f for d in docs for b in d["benchmarks"] if b["name"] == bench["name"]
                    for n, f in b["figures"].items() if n == name]
            fig.update(median=statistics.median(f["median"] for f in same),
                       min=min(f["min"] for f in same), max=max(f["max"] for f in same),
                       rounds=sum(f["rounds"] for f in same))
    return merged


def pair(results_dir: Path, baselines_dir: Path, schema: dict,
         baseline: str | Path | None = None, warn=print) -> tuple[Path, dict, Path, dict]:
    """(baseline path, baseline, newest path, newest): the two runs `bench-compare` judges.

    A baseline from another host is compared, with a note through `warn`."""
    new_path, new = newest(results_dir, schema)
    if baseline:
        old_path, old = Path(baseline), load(baseline, schema)
        if old_path.resolve() == new_path.resolve():  # it would judge the run against itself
            raise FarolError(f"--baseline {baseline} is the newest run itself",
                             hint="pass an older results file, or leave --baseline out")
    else:
        old_path, old = baseline_for(new, new_path, [results_dir, baselines_dir], schema, warn)
    check_comparable(old, new)
    if old["host"] != new["host"]:
        # A device name does not pin the machine ("AMD EPYC": any core count, any load).
        warn(f"note: the baseline ran on host {old['host']!r}, the new run on {new['host']!r}; "
             f"same device name '{new['device']['name']}', but maybe not the same machine")
    bounds = [d["device"].get("bandwidth_bytes_per_s") for d in (old, new)]
    if bounds[0] != bounds[1]:
        # decode_fraction_of_bound divides by this bandwidth: other bounds, other fractions.
        warn(f"note: the runs used other memory bandwidths ({bounds[0]} and {bounds[1]} bytes/s),"
             " so their decode_fraction_of_bound figures are not comparable")
    return old_path, old, new_path, new
