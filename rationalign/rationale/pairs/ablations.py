"""The seed paper's rationale-quality ablations (its Table 3). `opposite` is produced by the sources
(the rationale argues for y_l); `permute` shuffles finished rationales across pairs here."""

from __future__ import annotations

import random
from collections.abc import Sequence

from rationalign.io import sha256_json


def derangement(n: int, rng: random.Random) -> list[int]:
    """A uniformly random permutation with no fixed point (rejection sampling: ~e tries)."""
    if n < 2:
        raise ValueError(f"pair_rationale.ablation=permute: needs at least 2 pairs, got {n}")
    while True:
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm


def permute(ids: Sequence[str], rationales: Sequence[str], seed: int) -> tuple[list[str], list[int]]:
    """(rationales moved across pairs, perm) where pair i receives the rationale of pair perm[i]."""
    perm = derangement(len(ids), random.Random(sha256_json([seed, "pair_rationale.permute", list(ids)])))
    return [rationales[p] for p in perm], perm
