"""The witnesses' broadcast bloom filter: 1024 bits, 8 keyed FNV-1a-64 hashes, keys sent along with the bits.
Layout (little-endian, 192 bytes): keys[8] u64, then bits as words[16] u64 (bit i = bit i%64 of word i/64).
An item's positions hash its first 8 bytes (ITEM_PREFIX): items are digests (result commitments), so 64 bits
are ample for 1024 bits. Only clients read it, to tell which commitment a witness saw for a trainer its exact
participant bits list (coordinator_sdk.participation): at 256 items it answers "yes" for ~30% of absent
items, which is why who trained is no longer a bloom."""
from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, field

N_KEYS, N_WORDS = 8, 16
N_BITS = N_WORDS * 64
SIZE = 8 * (N_KEYS + N_WORDS)
ITEM_PREFIX = 8
_FNV_PRIME = 0x100000001B3
_M64 = (1 << 64) - 1


def fnv1a64(key: int, data: bytes) -> int:
    h = key & _M64
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _M64
    return h


@dataclass
class Bloom:
    keys: list[int]
    words: list[int] = field(default_factory=lambda: [0] * N_WORDS)

    def __post_init__(self) -> None:
        if len(self.keys) != N_KEYS or len(self.words) != N_WORDS:
            raise ValueError(f"a bloom filter has {N_KEYS} keys and {N_WORDS} words")

    @classmethod
    def random(cls) -> Bloom:
        return cls([int.from_bytes(secrets.token_bytes(8), "little") for _ in range(N_KEYS)])

    def positions(self, item: bytes) -> list[int]:
        prefix = item[:ITEM_PREFIX]
        return [fnv1a64(k, prefix) % N_BITS for k in self.keys]

    def add(self, item: bytes) -> None:
        for p in self.positions(item):
            self.words[p // 64] |= 1 << (p % 64)

    def contains(self, item: bytes) -> bool:
        return all(self.words[p // 64] >> (p % 64) & 1 for p in self.positions(item))

    def to_bytes(self) -> bytes:
        return struct.pack(f"<{N_KEYS + N_WORDS}Q", *self.keys, *self.words)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bloom:
        if len(data) != SIZE:
            raise ValueError(f"a bloom filter is {SIZE} bytes, got {len(data)}")
        vals = struct.unpack(f"<{N_KEYS + N_WORDS}Q", data)
        return cls(list(vals[:N_KEYS]), list(vals[N_KEYS:]))


def contains_each(blooms: list[Bloom], items: list[bytes]) -> list[list[bool]]:
    """`[[bloom.contains(item) for bloom in blooms] for item in items]`, hashed for all pairs at once.

    Why: a client applying a step checks every trainer's commitment against every witness's bloom, N x W x 8
    FNV hashes of 8 bytes per round in Python (~20 us a pair, ~20 ms a round at 32 clients); numpy wraps
    uint64 arithmetic mod 2**64 as FNV does, so one vectorised pass gives the same bits. numpy is imported
    here, not at module level: the CLI's read-only commands import this module and stay numpy-free."""
    if not blooms or not items or any(len(it) < ITEM_PREFIX for it in items):
        return [[b.contains(it) for b in blooms] for it in items]
    import numpy as np

    keys = np.array([b.keys for b in blooms], dtype=np.uint64)  # (W, K)
    words = np.array([b.words for b in blooms], dtype=np.uint64)  # (W, N_WORDS)
    data = np.frombuffer(b"".join(it[:ITEM_PREFIX] for it in items), dtype=np.uint8).reshape(len(items), ITEM_PREFIX)
    h = np.broadcast_to(keys, (len(items), *keys.shape)).copy()  # (T, W, K)
    prime = np.uint64(_FNV_PRIME)
    for j in range(ITEM_PREFIX):
        h ^= data[:, j].astype(np.uint64)[:, None, None]
        h *= prime
    pos = h % np.uint64(N_BITS)
    word = (pos >> np.uint64(6)).astype(np.intp)
    bit = pos & np.uint64(63)
    hit = (words[np.arange(len(blooms))[None, :, None], word] >> bit) & np.uint64(1)
    return hit.all(axis=2).tolist()
