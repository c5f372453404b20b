"""A witness's participant set: one bit per epoch client of the round (bit i = byte i // 8, bit i % 8), 32
bytes for 256 clients. Exact where the 1024-bit bloom it replaces answered "present" for about one absent
client in five at 256 clients, so absentees survived and were paid. Bits are keyed by the round's
epoch-client index: the chain compacts its client list only between rounds, so the index holds for the
whole round (clients key a round's order by the trainer list they recorded when it started)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

MAX_CLIENTS = 256
SIZE = MAX_CLIENTS // 8


def participants_bitmap(indices: Iterable[int]) -> bytes:
    """The 32 bytes with bit i set for every i in `indices` (each in [0, 256))."""
    out = bytearray(SIZE)
    for i in indices:
        if not 0 <= i < MAX_CLIENTS:
            raise ValueError(f"participant index {i} is not in [0, {MAX_CLIENTS})")
        out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def has_participant(bits: bytes, index: int) -> bool:
    return 0 <= index < 8 * len(bits) and bool(bits[index // 8] >> (index % 8) & 1)


def participant_indices(bits: bytes) -> list[int]:
    return [i for i in range(8 * len(bits)) if has_participant(bits, i)]


def in_range(bits: bytes, clients_len: int) -> bool:
    """No bit at or past `clients_len` (the program refuses such a witness: ParticipantOutOfRange)."""
    return all(i < clients_len for i in participant_indices(bits))


def absent_count(bitmaps: Sequence[bytes], index: int) -> int:
    """How many of the posted witnesses left client `index` out."""
    return sum(not has_participant(b, index) for b in bitmaps)


def absentees(bitmaps: Sequence[bytes], clients_len: int, quorum: int) -> list[int]:
    """Clients of the round (index < clients_len) that at least `quorum` of the posted witnesses left out;
    none when fewer than `quorum` posted (the program's absent_mask)."""
    if len(bitmaps) < quorum:
        return []
    return [i for i in range(min(clients_len, MAX_CLIENTS)) if absent_count(bitmaps, i) >= quorum]
