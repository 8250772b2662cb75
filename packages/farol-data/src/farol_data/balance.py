"""A cap per category, so no topic crowds out the rest; sampled with the seed."""

import random
from collections import defaultdict


def cap_per_category(records: list[dict], cap: int | None,
                     seed: int) -> tuple[list[dict], list[dict]]:
    """(kept, dropped): at most `cap` records per category, chosen with `random.Random(seed)`.

    Kept records stay in input order, so the result depends only on the records and the seed.
    """
    if cap is None:
        return records, []
    by_category: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_category[r["category"]].append(i)
    rng = random.Random(seed)
    keep: set[int] = set()
    for category in sorted(by_category):
        indices = by_category[category]
        keep.update(indices if len(indices) <= cap else rng.sample(indices, cap))
    kept = [r for i, r in enumerate(records) if i in keep]
    dropped = [r for i, r in enumerate(records) if i not in keep]
    return kept, dropped
