"""Compare two benchmark runs figure by figure, with a verdict that knows about noise.

A figure regresses when its median got worse by more than the threshold (slower rates, longer
times, more memory). The spread of a figure is (max - min) / median over its repeats. A verdict
is marked unsafe when either run's spread exceeds the threshold and the two runs' min-max ranges
overlap: the repeats disagree by more than the change being judged, and some repeat of the
worse run was as good as one of the better run. A figure with one value in either run (one
round, or one number from the benchmark) has no spread: its noise is unknown, so its verdict is
marked unsafe too.
"""

import math
from dataclasses import dataclass

from farol_core.errors import FarolError


@dataclass
class Row:
    """One figure in both runs."""

    key: str
    unit: str
    old: float | None
    new: float | None
    ratio: float | None  # new / old
    worse: float | None  # fraction by which new is worse than old (negative: better)
    spread: float | None  # the larger relative spread of the two runs; None: one value
    status: str  # "ok", "regression", "improved", "only old", "only new", "not judged: ..."
    unsafe: bool


def figures_by_key(doc: dict) -> dict[str, dict]:
    """`"<benchmark> <figure>"` -> figure, for every figure of a run."""
    return {f"{b['name']} {name}": fig for b in doc["benchmarks"]
            for name, fig in b["figures"].items()}


def compare(old: dict, new: dict, threshold: float = 0.10) -> list[Row]:
    """A row per figure found in either run, in the new run's order."""
    a, b = figures_by_key(old), figures_by_key(new)
    keys = list(b) + [k for k in a if k not in b]
    return [_row(k, a.get(k), b.get(k), threshold) for k in keys]


def check_threshold(value) -> float:
    """The threshold as a fraction in (0, 1), or a FarolError; "10%" means 0.10."""
    text = str(value).strip()
    try:
        # A percent sign leaves no doubt about the scale, so "10%" is taken as 0.10.
        threshold = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        threshold = -1.0
    if not 0 < threshold < 1:
        raise FarolError(f"threshold must be a fraction between 0 and 1, got {value!r}",
                         hint="--threshold 0.10 (or 10%) tolerates a 10% slowdown")
    return threshold


def regressions(rows: list[Row]) -> list[Row]:
    """The rows that got worse by more than the threshold."""
    return [r for r in rows if r.status == "regression"]


# Float rounding puts "exactly 10% slower" a hair past 0.10 (1.1 / 1.0 - 1 = 0.10000000000000009);
# a change equal to the threshold is within it.
TIE = 1e-9


def _row(key: str, old: dict | None, new: dict | None, threshold: float) -> Row:
    if old is None or new is None:
        fig = old or new
        return Row(key, fig["unit"], _median(old), _median(new), None, None, spread(fig),
                   "only new" if old is None else "only old", False)
    spreads = (spread(old), spread(new))
    noise = None if None in spreads else max(spreads)
    a, b = old["median"], new["median"]
    if not (a > 0 and b >= 0 and math.isfinite(a) and math.isfinite(b)):
        # A ratio to zero, a negative or a NaN says nothing; show it rather than call it "ok".
        return Row(key, new["unit"], old["median"], new["median"], None, None, noise,
                   "not judged: a median is 0, negative or NaN", False)
    ratio = new["median"] / old["median"]
    worse = 1 - ratio if new["better"] == "higher" else ratio - 1
    status = "ok"
    if worse > threshold + TIE:
        status = "regression"
    elif worse < -threshold - TIE:
        status = "improved"
    # One value per run says nothing about noise: a 20% change may be one busy moment.
    unsafe = noise is None or (noise > threshold and _overlap(old, new))
    return Row(key, new["unit"], old["median"], new["median"], ratio, worse, noise, status,
               unsafe)


def _overlap(a: dict, b: dict) -> bool:
    return a["min"] <= b["max"] and b["min"] <= a["max"]


def spread(fig: dict) -> float | None:
    """(max - min) / median of a figure's repeats; None for a single value (noise unknown)."""
    if fig["rounds"] < 2:
        return None
    return (fig["max"] - fig["min"]) / abs(fig["median"]) if fig["median"] else 0.0


def _median(fig: dict | None) -> float | None:
    return None if fig is None else fig["median"]


def table(rows: list[Row], old_label: str = "old", new_label: str = "new") -> str:
    """A plain-text table: figure, unit, old, new, ratio, spread, verdict."""
    head = ("figure", "unit", old_label, new_label, "new/old", "spread", "verdict")
    lines = [head] + [(r.key, r.unit, _num(r.old), _num(r.new),
                       "" if r.ratio is None else f"{r.ratio:.3f}",
                       "-" if r.spread is None else f"{r.spread:.0%}", r.status + _unsafe(r))
                      for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) if i < 2 or i == 6 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip()
           for line in lines]
    return "\n".join(out[:1] + ["-" * len(out[0])] + out[1:])


def _unsafe(r: Row) -> str:
    if not r.unsafe:
        return ""
    return " (unsafe: one value)" if r.spread is None else " (unsafe: noisy)"


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


def missing_benchmarks(rows: list[Row]) -> list[str]:
    """Benchmarks of the old run with no figure at all in the new one. A figure that an older
    results format kept and the new one does not (a count now in the settings) is not one."""
    bench = {r.key: r.key.rsplit(" ", 1)[0] for r in rows}
    present = {bench[r.key] for r in rows if r.status != "only old"}
    return list(dict.fromkeys(b for k, b in bench.items() if b not in present))


def verdict_line(rows: list[Row], old: dict, new: dict, threshold: float) -> str:
    """One sentence: regressions or none, and whether noise makes the verdict unsafe."""
    bad = regressions(rows)
    noisy = [r for r in rows if r.unsafe and r.spread is not None]
    single = [r for r in rows if r.unsafe and r.spread is None]
    head = (f"{len(bad)} of {len(rows)} figures worse by more than {threshold:.0%}: "
            + ", ".join(r.key for r in bad) if bad
            else f"no figure worse by more than {threshold:.0%}")
    gone = missing_benchmarks(rows)
    if gone:
        # A benchmark that failed or was left out of the new run must not pass unnoticed.
        head += f"; not in the new run (failed or left out): {', '.join(gone)}"
    if noisy:
        head += (f"; unsafe for {len(noisy)} figure(s) whose min-max ranges overlap and spread"
                 " wider than the threshold (rerun on a quiet machine)")
    if single:
        head += (f"; unsafe for {len(single)} figure(s) with one value per run, whose noise is "
                 "unknown (more rounds give a spread)")
    versions = (f"mlx {old['versions']['mlx']} -> {new['versions']['mlx']}, mlx-lm "
                f"{old['versions']['mlx_lm']} -> {new['versions']['mlx_lm']}")
    return f"{head} ({versions})"
