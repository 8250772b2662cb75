"""Figures: each measured quantity of a benchmark as the median, min and max of its repeats.

A benchmark's figures come from two places. pytest-benchmark's stats give `seconds` per round.
`benchmark.extra_info` adds the rest, by the shape of each value:
- a number: one measurement (median = min = max);
- a list of numbers: one measurement per repeat;
- `{"per_round": N, "unit": U}`: a rate, N per round, from the round times (e.g. tokens/s);
- `{"median": .., "min": .., "max": ..}`: a figure summarised by the benchmark itself;
- anything else (text, flags, nested dicts): a setting of that benchmark, not a figure;
  `extra_info["settings"] = {...}` is the place for numbers that are settings, not figures.
"""

import re
import statistics

# A figure whose name or unit holds "/s" or one of these words is better when higher; otherwise
# lower. Whole words only: "generation_s" and "duration_s" hold "ratio" but are times.
HIGHER_IS_BETTER = re.compile(
    r"/s|(?<![a-z0-9])(per_s(ec(ond)?)?|tps|ratio|fraction|speedup)s?(?![a-z0-9])")
UNIT_SUFFIXES = (("_per_s", "1/s"), ("_gb", "GB"), ("_bytes", "bytes"), ("_s", "s"))


def summarize(values, unit: str, better: str | None = None, name: str = "") -> dict:
    """A figure from one value or a list of repeats."""
    values = [float(v) for v in (values if isinstance(values, list | tuple) else [values])]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": len(values), "unit": unit, "better": better or better_for(name, unit)}


def better_for(name: str, unit: str) -> str:
    """"higher" for rates and ratios, "lower" for times and memory."""
    return "higher" if HIGHER_IS_BETTER.search(f"{name} {unit}".lower()) else "lower"


def unit_for(name: str) -> str:
    """The unit a figure's name implies: tokens_per_s -> tokens/s, peak_memory_gb -> GB."""
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            if unit == "1/s":
                noun = name[: -len(suffix)].rsplit("_", 1)[-1]
                return f"{noun}/s"
            return unit
    return ""


def from_stats(stats) -> dict:
    """`seconds` per round from pytest-benchmark's Stats."""
    return {"median": stats.median, "min": stats.min, "max": stats.max, "rounds": stats.rounds,
            "unit": "s", "better": "lower"}


def split_extra_info(extra_info: dict, stats) -> tuple[dict, dict]:
    """(figures, settings) from a benchmark's extra_info; rates need the round `stats`."""
    figures, settings = {}, {}
    for name, value in extra_info.items():
        if name == "settings" and isinstance(value, dict):
            settings.update(value)
            continue
        figure = _figure(name, value, stats)
        if figure is None:
            settings[name] = value
        else:
            figures[name] = figure
    return figures, settings


def _figure(name: str, value, stats) -> dict | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return summarize(value, unit_for(name), name=name)
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return summarize(value, unit_for(name), name=name)
    if isinstance(value, dict) and "per_round" in value and stats is not None:
        return _rate(name, value, stats)
    if isinstance(value, dict) and "median" in value:
        unit = value.get("unit", unit_for(name))
        figure = summarize(value["median"], unit, value.get("better"), name)
        figure.update({k: value[k] for k in ("min", "max", "rounds") if k in value})
        return figure
    return None


def _rate(name: str, value: dict, stats) -> dict:
    # The fastest round gives the highest rate, so min and max swap.
    n, unit = value["per_round"], value.get("unit", unit_for(name))
    return {"median": n / stats.median, "min": n / stats.max, "max": n / stats.min,
            "rounds": stats.rounds, "unit": unit, "better": value.get("better", "higher")}


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
