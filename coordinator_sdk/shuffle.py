"""Deterministic randomness shared by the chain and every client: witness election (a partial Fisher-Yates
drawn from sha256 in counter mode: 10 hashes per round on chain instead of the 180 of a 90-round
swap-or-not), the swap-or-not shuffle (Ethereum's, kept for committees), and the LCG Fisher-Yates shuffle
used for data assignment. Bit-exact with the on-chain program; a client predicts roles without asking it."""
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


def witness_order(n_clients: int, round_seed: int) -> list[int]:
    """The first min(32, n) positions of a Fisher-Yates permutation of range(n): witness slot -> client index.
    Draw i is u64 number i % 4 of sha256(key || u32 (i // 4)), key = election_seed(seed, "witness")."""
    key = election_seed(round_seed, WITNESS_SALT)
    perm = list(range(n_clients))
    digest = b""
    for i in range(min(MAX_WITNESSES, n_clients)):
        if i % 4 == 0:
            digest = sha256(key, (i // 4).to_bytes(4, "little"))
        j = i + int.from_bytes(digest[8 * (i % 4):8 * (i % 4) + 8], "little") % (n_clients - i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm[:MAX_WITNESSES]


def witness_position(index: int, n_clients: int, round_seed: int) -> int:
    """The witness slot of client `index`, or n_clients when it was not drawn."""
    order = witness_order(n_clients, round_seed)
    return order.index(index) if index in order else n_clients


def witness_slots(witness_nodes: int, n_clients: int) -> int:
    """How many witnesses a round elects: the configured count, or everyone up to 32 when it is 0."""
    return min(witness_nodes if witness_nodes else MAX_WITNESSES, n_clients, MAX_WITNESSES)


def is_witness(index: int, n_clients: int, round_seed: int, witness_nodes: int) -> bool:
    return witness_position(index, n_clients, round_seed) < witness_slots(witness_nodes, n_clients)


def elected_witnesses(n_clients: int, round_seed: int, witness_nodes: int) -> list[int]:
    """Client indices elected as witnesses, in index order."""
    return sorted(witness_order(n_clients, round_seed)[:witness_slots(witness_nodes, n_clients)])


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
