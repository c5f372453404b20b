"""Deterministic randomness shared by the chain and every client: the swap-or-not shuffle (Ethereum's,
90 rounds of sha256), committee and witness election built on it, and the LCG Fisher-Yates shuffle used
for data assignment. Bit-exact with the on-chain program; a client predicts roles without asking it."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")
SHUFFLE_ROUNDS = 90
WITNESS_SALT = b"witness"
COMMITTEE_SALT = b"committee"
MAX_WITNESSES = 32
_M64 = (1 << 64) - 1


def sha256(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def compute_shuffled_index(index: int, count: int, seed: bytes, rounds: int = SHUFFLE_ROUNDS) -> int:
    """Position of `index` in a permutation of range(count) keyed by a 32-byte seed (swap-or-not)."""
    if not 0 <= index < count:
        raise ValueError(f"index {index} is outside 0..{count}")
    if len(seed) != 32:
        raise ValueError(f"seed must be 32 bytes, got {len(seed)}")
    for r in range(rounds):
        rb = bytes([r])
        pivot = int.from_bytes(sha256(seed, rb)[:8], "little") % count
        flip = (pivot + count - index) % count
        position = max(index, flip)
        source = sha256(seed, rb, (position // 256).to_bytes(4, "little"))
        if (source[(position % 256) // 8] >> (position % 8)) & 1:
            index = flip
    return index


def election_seed(round_seed: int, salt: bytes) -> bytes:
    """The shuffle key for one role in one round: sha256(sha256(seed_u64_le) || salt)."""
    return sha256(sha256(round_seed.to_bytes(8, "little")), salt)


def witness_position(index: int, n_clients: int, round_seed: int) -> int:
    return compute_shuffled_index(index, n_clients, election_seed(round_seed, WITNESS_SALT))


def witness_slots(witness_nodes: int, n_clients: int) -> int:
    """How many witnesses a round elects: the configured count, or everyone up to 32 when it is 0."""
    return min(witness_nodes if witness_nodes else MAX_WITNESSES, n_clients, MAX_WITNESSES)


def is_witness(index: int, n_clients: int, round_seed: int, witness_nodes: int) -> bool:
    return witness_position(index, n_clients, round_seed) < witness_slots(witness_nodes, n_clients)


def elected_witnesses(n_clients: int, round_seed: int, witness_nodes: int) -> list[int]:
    """Client indices elected as witnesses, in index order."""
    return [i for i in range(n_clients) if is_witness(i, n_clients, round_seed, witness_nodes)]


class Lcg:
    """64-bit linear congruential generator (Knuth's MMIX constants)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _M64

    def next_u64(self) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) & _M64
        return self.state


def deterministic_shuffle(items: Sequence[T], seed: int) -> list[T]:
    """Fisher-Yates from the end with Lcg(seed): j = next_u64 mod (i+1)."""
    out = list(items)
    rng = Lcg(seed)
    for i in range(len(out) - 1, 0, -1):
        j = rng.next_u64() % (i + 1)
        out[i], out[j] = out[j], out[i]
    return out
