"""Train/valid/test split by group, so no conversation or player lands on two sides."""

import random
from collections import defaultdict


def split_by_group(records: list[dict], ratios: dict[str, float], seed: int) -> dict[str, list]:
    """Assign whole groups (record["group"]) to splits in the given ratios, deterministically.

    Each split with a positive ratio gets at least one group when there are enough groups.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["group"]].append(r)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    names = [n for n in ("train", "valid", "test") if ratios.get(n, 0) > 0]
    quotas = _quotas(len(records), ratios, names)
    out: dict[str, list] = {n: [] for n in ("train", "valid", "test")}
    # Smallest splits fill first, so a few large groups cannot starve valid/test.
    order = sorted(names, key=lambda n: quotas[n])
    for key in keys:
        target = next((n for n in order if len(out[n]) < quotas[n]), order[-1])
        if any(not out[n] for n in order) and len(keys) >= len(order):
            target = next(n for n in order if not out[n])
        out[target].extend(groups[key])
    return out


def _quotas(total: int, ratios: dict[str, float], names: list[str]) -> dict[str, int]:
    norm = sum(ratios[n] for n in names)
    return {n: round(total * ratios[n] / norm) for n in names}
