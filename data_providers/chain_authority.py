"""The TCP data server's policy read from the chain: serve only clients of the run's current epoch, and to
each only the batch assigned to it for the round in progress. The coordinator account is re-read at most
every `refresh_s` seconds (a round lasts tens of seconds; a stale view only delays, never widens, access)."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from coordinator_sdk.client import Coordinator
from coordinator_sdk.round_assignment import current_assignment, epoch_p2p_keys
from data_providers.types import BatchId


class ChainRoundAuthority:
    def __init__(self, coordinator: Coordinator, refresh_s: float = 1.0) -> None:
        self.coordinator, self.refresh_s = coordinator, refresh_s
        self._at = -1e18
        self._members: set[bytes] = set()
        self._assignment: dict[bytes, tuple[int, int]] = {}
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._at < self.refresh_s:
                return
            state: Any = await self.coordinator.fetch_state()
            self._members = epoch_p2p_keys(state)
            self._assignment = current_assignment(state)
            self._at = time.monotonic()

    async def is_member(self, p2p_pubkey: bytes) -> bool:
        await self._refresh()
        return p2p_pubkey in self._members

    async def assigned_batch(self, p2p_pubkey: bytes) -> BatchId | None:
        await self._refresh()
        span = self._assignment.get(p2p_pubkey)
        return BatchId(*span) if span else None
