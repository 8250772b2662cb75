"""Exact and near-duplicate detection over a stream of records; the first one seen is kept."""

import hashlib
import re
import zlib

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
SHINGLE = 5
SCHEME = "affine32"  # datasketch's scheme for 32-bit hashes such as CRC-32
_WS = re.compile(r"\s+")


def fingerprint(messages: list[dict]) -> bytes:
    """A digest of the cleaned conversation: equal digests mean exact duplicates."""
    text = "\x00".join(f"{m['role']}\x01{m['content']}" for m in messages)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def answer_key(messages: list[dict]) -> str:
    """A short digest of the cleaned answer (the last message): equal keys, same answer."""
    return hashlib.blake2b(messages[-1]["content"].encode("utf-8"), digest_size=8).hexdigest()


def shingles(messages: list[dict]) -> set[bytes]:
    """Character 5-grams of the question and answer text, case-folded, spaces collapsed."""
    text = _WS.sub(" ", " ".join(m["content"] for m in messages if m["role"] != "system"))
    text = text.casefold()
    if len(text) <= SHINGLE:
        return {text.encode("utf-8")}
    return {text[i:i + SHINGLE].encode("utf-8") for i in range(len(text) - SHINGLE + 1)}


class NearDuplicates:
    """MinHash LSH index: `check` answers (source, similarity) of the closest earlier record of
    another group at or above the threshold, else None, and indexes the record when it is new.

    Records of one group (a player's biography questions, one conversation) are not compared:
    they look alike on purpose and the split keeps them on one side anyway."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        # Fixed seed and CRC-32 shingle hashes: the same input always gives the same answer.
        self.permutations = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=zlib.crc32,
                                    scheme=SCHEME).permutations
        self.hashes: list[MinHash] = []
        self.sources: list[str] = []
        self.groups: list[str] = []

    def check(self, source: str, messages: list[dict], group: str) -> tuple[str, float] | None:
        mh = MinHash(num_perm=NUM_PERM, hashfunc=zlib.crc32, permutations=self.permutations,
                     scheme=SCHEME)
        mh.update_batch(list(shingles(messages)))
        best = max(((self.hashes[i].jaccard(mh), i) for i in self.lsh.query(mh)
                    if self.groups[i] != group), default=None)
        if best and best[0] >= self.threshold:
            return self.sources[best[1]], round(best[0], 3)
        self.lsh.insert(len(self.hashes), mh, check_duplication=False)
        self.hashes.append(mh)
        self.sources.append(source)
        self.groups.append(group)
        return None
