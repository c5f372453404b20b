"""Who may talk to us: the P2P keys of the current epoch's clients, and where to dial them.

`EpochMembers.refresh(state)` is called with each newly decoded coordinator account; between epochs the
set is empty, so nobody is accepted (and nothing is sent) until a new epoch lists its clients.
"""
from __future__ import annotations

from typing import Any, Protocol

from coordinator_sdk.round_assignment import epoch_p2p_keys


class Membership(Protocol):
    def allows(self, key: bytes) -> bool: ...

    def members(self) -> set[bytes]: ...


class StaticMembers:
    """A fixed, updatable set of keys: for tools, tests and runs configured off chain."""

    def __init__(self, keys: set[bytes] | None = None) -> None:
        self._keys: set[bytes] = set(keys or ())
        self.hints: dict[bytes, list[str]] = {}

    def allows(self, key: bytes) -> bool:
        return key in self._keys

    def members(self) -> set[bytes]:
        return set(self._keys)

    def update(self, keys: set[bytes], hints: dict[bytes, list[str]] | None = None) -> None:
        self._keys = set(keys)
        if hints is not None:
            self.hints = dict(hints)


def hint_addresses(raw: Any) -> list[str]:
    """The socket addresses in a registry entry's NUL-padded, comma-separated address hint."""
    text = bytes(raw).split(b"\x00", 1)[0].decode("utf-8", errors="replace")
    return [h for h in text.split(",") if h]


class EpochMembers(StaticMembers):
    """Members and address hints read from the coordinator account (clients of the epoch in progress)."""

    def refresh(self, state: Any) -> set[bytes]:
        keys = epoch_p2p_keys(state)
        hints: dict[bytes, list[str]] = {}
        for i in range(state.num_clients):
            c = state.clients[i]
            key = bytes(c.p2p)
            if key in keys:
                hints[key] = hint_addresses(c.addr_hint)
        self.update(keys, hints)
        return keys
