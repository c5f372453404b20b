"""Who may talk to us: the P2P keys of the current epoch's clients, and where to dial them.

`EpochMembers.refresh(state)` is called with each newly decoded coordinator account; between epochs the
set is empty, so nobody is accepted (and nothing is sent) until a new epoch lists its clients.
"""
from __future__ import annotations

from typing import Any, Protocol

from coordinator_sdk.account_view import view
from coordinator_sdk.layout_view import StructView, column
from coordinator_sdk.model.state import NO_EPOCH
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
    """Members and address hints read from the coordinator account (clients of the epoch in progress).

    `refresh` runs on every account update a client follows (~N per round), and building the members reads
    every client's key and address hint: O(N) per update. The result depends only on the epoch's keys and
    the registry's keys and hints, so those bytes (sliced from a layout view's buffer) are the cache key: an
    update that changed anything else (rounds, witnesses, points) costs the slicing and one comparison."""

    def __init__(self, keys: set[bytes] | None = None) -> None:
        super().__init__(keys)
        self._source: tuple[Any, ...] | None = None  # what the current keys and hints were built from

    def update(self, keys: set[bytes], hints: dict[bytes, list[str]] | None = None) -> None:
        self._source = None  # set from elsewhere: the next refresh rebuilds
        super().update(keys, hints)

    def refresh(self, state: Any) -> set[bytes]:
        source = _member_source(state)
        if source is not None and source == self._source:
            return set(self._keys)
        keys = epoch_p2p_keys(state)
        hints: dict[bytes, list[str]] = {}
        for i in range(state.num_clients):
            c = state.clients[i]
            key = bytes(c.p2p)
            if key in keys:
                hints[key] = hint_addresses(c.addr_hint)
        self.update(keys, hints)
        self._source = source
        return keys


def _member_source(state: Any) -> tuple[Any, ...] | None:
    """The account bytes `EpochMembers.refresh` reads, as a comparable key; None when `state` is not a layout
    view (then nothing is cached)."""
    st = view(state)
    if not isinstance(st.raw, StructView):
        return None
    no_epoch = st.run_state in NO_EPOCH
    epoch = None if no_epoch else column(st.raw, "epoch_clients", "p2p", st.num_epoch_clients)
    n = st.num_clients
    p2p, hints = column(st.raw, "clients", "p2p", n), column(st.raw, "clients", "addr_hint", n)
    if (epoch is None and not no_epoch) or p2p is None or hints is None:
        return None
    return no_epoch, epoch, p2p, hints
