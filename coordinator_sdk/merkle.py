"""Solana-style merkle root over the commitments a witness saw: leaf = sha256(0x00 || item),
node = sha256(0x01 || left || right), an odd node at the end of a level pairs with itself."""
from __future__ import annotations

from collections.abc import Sequence

from coordinator_sdk.shuffle import sha256

EMPTY_ROOT = bytes(32)


def merkle_root(items: Sequence[bytes]) -> bytes:
    if not items:
        return EMPTY_ROOT
    level = [sha256(b"\x00", x) for x in items]
    while len(level) > 1:
        level = [sha256(b"\x01", level[i], level[i + 1] if i + 1 < len(level) else level[i])
                 for i in range(0, len(level), 2)]
    return level[0]
