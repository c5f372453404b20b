"""Who may fetch which batch from a TCP data server.

The real policy comes from the coordinator: serve only clients in the current epoch, and only the
batch assigned to each for the current round. The server asks through `RoundAuthority` on every
request (rounds change under a live connection). The implementations here are complete policies over
fixed lists; the chain-backed one belongs with coordinator_sdk.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from data_providers.types import BatchId


class RoundAuthority(Protocol):
    async def is_member(self, p2p_pubkey: bytes) -> bool:
        """Is this ed25519 key a client of the run's current epoch?"""
        ...

    async def assigned_batch(self, p2p_pubkey: bytes) -> BatchId | None:
        """The batch this client trains in the current round; None when it has none."""
        ...


class StaticRoundAuthority:
    """One round's assignment held in memory; `set_round` swaps in the next round's."""

    def __init__(self, assignments: Mapping[bytes, BatchId | None]) -> None:
        self.set_round(assignments)

    def set_round(self, assignments: Mapping[bytes, BatchId | None]) -> None:
        for key in assignments:
            if len(key) != 32:
                raise ValueError(f"p2p public keys are 32 bytes, got {len(key)}: {key.hex()}")
        self._assignments = dict(assignments)

    async def is_member(self, p2p_pubkey: bytes) -> bool:
        return p2p_pubkey in self._assignments

    async def assigned_batch(self, p2p_pubkey: bytes) -> BatchId | None:
        return self._assignments.get(p2p_pubkey)


class AllowlistAuthority:
    """A static allowlist: listed keys may fetch any batch of the dataset, everyone else nothing.

    For private runs and tests where no coordinator decides; it does not enforce per-round assignment.
    """

    def __init__(self, keys: Iterable[bytes], num_samples: int) -> None:
        self._keys = set()
        for key in keys:
            if len(key) != 32:
                raise ValueError(f"p2p public keys are 32 bytes, got {len(key)}: {key.hex()}")
            self._keys.add(bytes(key))
        self._everything = BatchId(0, num_samples - 1)

    async def is_member(self, p2p_pubkey: bytes) -> bool:
        return p2p_pubkey in self._keys

    async def assigned_batch(self, p2p_pubkey: bytes) -> BatchId | None:
        return self._everything if p2p_pubkey in self._keys else None
