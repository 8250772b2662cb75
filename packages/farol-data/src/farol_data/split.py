"""Train/valid/test split by group, so no conversation, player or answer lands on two sides."""

import random
from collections import defaultdict


def split_by_group(records: list[dict], ratios: dict[str, float], seed: int) -> dict[str, list]:
    """Assign whole groups (record["group"]) to splits in the given ratios, deterministically.
    Groups whose records share an answer (record["answer"], a digest) go together, so a
    question asked two ways is never trained on one side and tested on the other.

    Each split with a positive ratio gets at least one group when there are enough groups.
    """
    root = _linked_groups(records)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[root[r["group"]]].append(r)
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


def _linked_groups(records: list[dict]) -> dict[str, str]:
    """Each group's representative (union-find): groups linked through a shared answer get
    the same one, their smallest name, so the result does not depend on record order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = x = parent[parent[x]]  # path halving keeps the chains short
        return x

    for r in records:
        # "~" sorts after "conversation:", "player:" and "record:", so a group name (never an
        # answer) represents each set, and a group that shares no answer keeps its own name.
        a, b = find(r["group"]), find("~" + r["answer"])
        if a != b:
            parent[max(a, b)] = min(a, b)
    return {r["group"]: find(r["group"]) for r in records}


def _quotas(total: int, ratios: dict[str, float], names: list[str]) -> dict[str, int]:
    norm = sum(ratios[n] for n in names)
    return {n: round(total * ratios[n] / norm) for n in names}
