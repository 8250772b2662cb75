"""Config files (YAML or JSON) validated by the JSON Schemas shipped in `farol_core/schemas`.

The schemas are the one place where defaults live: `load_config` fills every default the
schema declares, then validates, and reports every problem at once.
"""

import copy
import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from farol_core.errors import FarolError


class ConfigError(FarolError):
    """A config that failed validation; `problems` lists every failure."""

    def __init__(self, source: str, problems: list[str]):
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Invalid config {source} ({len(problems)} problem(s)):\n{lines}")
        self.problems = problems


def load_schema(name: str) -> dict:
    """The shipped JSON Schema `name` (e.g. "train")."""
    text = resources.files("farol_core.schemas").joinpath(f"{name}.schema.json").read_text()
    return json.loads(text)


def schema_default(name: str, key: str):
    """The default that schema `name` declares for the dotted `key` ("training.iters")."""
    node = load_schema(name)
    for part in key.split("."):
        node = node["properties"][part]
    return node["default"]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `5e-5` (no dot) as text; a config means the number, as YAML 1.2 does."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def read_config_file(path: str | Path) -> dict:
    """Parse a YAML or JSON config file into a dict, with a clear error if it can't."""
    path = Path(path)
    if not path.is_file():
        raise FarolError(f"Config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        # JSON through json: Python writes 1.0e-5 as 1e-05, which YAML 1.1 would read as text.
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)
    except (yaml.YAMLError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise FarolError(f"Config file {path} could not be parsed: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise FarolError(f"Config file {path} must hold a mapping at the top level")
    return data


def load_config(
    schema_name: str,
    source: str | Path | dict | None = None,
    overrides: dict | None = None,
    check: Callable[[dict], list[str]] | None = None,
    prepare: Callable[[dict], None] | None = None,
) -> dict:
    """Resolve a config: file or dict, then `overrides` (None values ignored), then defaults.

    `prepare` rewrites the filled-in dict before validation (so what is checked is what is
    used); `check` returns the problems the schema can't express, listed with its own."""
    if isinstance(source, dict):
        data, label = copy.deepcopy(source), "<dict>"
    elif source is None:
        data, label = {}, "<defaults>"
    else:
        data, label = read_config_file(source), str(source)
    merge(data, overrides or {})
    schema = load_schema(schema_name)
    fill_defaults(schema, data)
    if prepare is not None:
        prepare(data)
    validate(schema, data, label, check(data) if check else ())
    return data


def typed(schema_name: str, data: dict):
    """A frozen view of a validated config: each object section of the schema becomes a frozen
    dataclass built from its properties, so `cfg.training.batch_size` reads what
    `cfg["training"]["batch_size"]` did, a misspelt key fails at once, and the view cannot
    drift from the dict the run saved (rebuild it after changing the dict)."""
    return _view(load_schema(schema_name), data, schema_name.title() + "Config")


JSON_TYPES = {"integer": int, "number": float, "string": str, "boolean": bool, "array": tuple,
              "null": type(None), "object": dict}


def _view(schema: dict, data: dict, name: str):
    props = schema.get("properties", {})
    fields = [(key, _annotation(sub)) for key, sub in props.items()]
    cls = dataclasses.make_dataclass(name, fields, frozen=True)
    return cls(**{key: _value(sub, data.get(key), key) for key, sub in props.items()})


def _annotation(sub: dict):
    kinds = sub.get("type", "object" if "properties" in sub else None)
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    types = [JSON_TYPES[k] for k in kinds if k in JSON_TYPES]
    return functools.reduce(lambda a, b: a | b, types) if types else Any


def _value(sub: dict, value, key: str):
    if "properties" in sub and isinstance(value, dict):
        return _view(sub, value, key.title().replace("_", ""))
    return tuple(value) if isinstance(value, list) else value


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge `overrides` into `base` in place, skipping None values."""
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            base[key] = merge(base[key] if isinstance(base.get(key), dict) else {}, value)
        else:
            base[key] = value
    return base


def fill_defaults(schema: dict, data: dict) -> None:
    """Set each missing property that declares a default; recurse into nested objects."""
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and isinstance(data.get(key, {}), dict):
            data.setdefault(key, {})
            fill_defaults(sub, data[key])


def validate(schema: dict, data: Any, label: str = "<config>", extra: Iterable[str] = ()) -> None:
    """Raise ConfigError listing every schema violation in `data`, then the `extra` problems."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors] + list(extra)
    if problems:
        raise ConfigError(label, problems)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"
