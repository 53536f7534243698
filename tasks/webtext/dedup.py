"""Stage 6, deduplication: exact copies by hash, then near-copies by MinHash LSH; first one wins.

Exact: a hash of the text after lower-casing and collapsing whitespace, so re-wrapped or re-cased
copies count as the same. Near: the Jaccard similarity of word 5-gram shingle sets, estimated with
MinHash signatures and indexed with LSH bands (datasketch) so each document is compared with only a
handful of candidates. LSH can propose false candidates, so a candidate only counts once its
estimated Jaccard reaches the threshold.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import LeanMinHash, MinHash, MinHashLSH

from lab.errors import LabError

_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of the text's lower-cased words (punctuation dropped); a document shorter than n
    words is one shingle."""
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


class Deduplicator:
    """Feed documents in order with `check`; it answers why a document is a duplicate of one seen
    before ("exact_duplicate" / "near_duplicate"), or None and remembers it as seen."""

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 5, seed: int = 1):
        if not 0 < threshold <= 1:
            raise LabError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1 or num_perm < 16:
            raise LabError("dedup needs shingle_size >= 1 and num_perm >= 16")
        self.threshold, self.num_perm, self.shingle_size, self.seed = threshold, num_perm, shingle_size, seed
        self._hashes: set[bytes] = set()
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._sigs: dict[int, LeanMinHash] = {}

    def minhash(self, text: str) -> MinHash:
        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch(sorted(shingles(text, self.shingle_size)))
        return m

    def check(self, text: str) -> str | None:
        digest = hashlib.blake2b(normalise(text).encode(), digest_size=16).digest()
        if digest in self._hashes:
            return "exact_duplicate"
        sig = self.minhash(text)
        for key in self._lsh.query(sig):
            if sig.jaccard(self._sigs[key]) >= self.threshold:
                return "near_duplicate"
        self._hashes.add(digest)
        key = len(self._sigs)
        self._sigs[key] = LeanMinHash(sig)  # drops the permutation tables: a third of the memory
        self._lsh.insert(key, sig)
        return None
