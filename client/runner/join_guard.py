"""Which process holds a wallet's registry entry, told from the chain without trusting stale reads.

Two processes on one wallet can race past the start-up liveness probe; the chain then holds the address
hint of whichever joined last, and the other must find out. The danger is the opposite mistake: a state
read *before* our own join landed still shows the address of our crashed predecessor, and a client that
takes that for a second process leaves a run it should be in (exit 10 in a clean-clone CI run: the state
stream had buffered a state newer than the one the join was decided on, but older than the join).

So a state counts only once it is known to include our join: its nonce is at least the nonce of a state
fetched after the join was confirmed, or we have already seen our own hint on chain.
"""
from __future__ import annotations

from enum import Enum

from client.runner.liveness import registered_hint
from coordinator_sdk.account_view import CoordinatorView


class Holder(Enum):
    US = "us"  # the chain shows our address, or the state predates our join (nothing to conclude)
    OTHER = "other"  # another process joined with this wallet after we did


class JoinGuard:
    def __init__(self, me: bytes) -> None:
        self.me = me
        self.hint: str | None = None
        self._landed_nonce: int | None = None  # states with a nonce at or past this one include our join
        self._seen = False  # a state showed our own hint: every newer state is authoritative

    def joined(self, hint: str, nonce_after_landing: int | None) -> None:
        """Our join was confirmed; `nonce_after_landing` is the nonce of a state read after that (None when the
        read failed: then only seeing our own hint on chain makes later states count)."""
        self.hint, self._landed_nonce, self._seen = hint, nonce_after_landing, False

    def holder(self, st: CoordinatorView) -> tuple[Holder, list[str]]:
        if self.hint is None:
            return Holder.US, []
        held = registered_hint(st, self.me)
        if held is not None and self.hint in held[1]:
            self._seen = True
            return Holder.US, held[1]
        if held is None:
            return Holder.US, []
        if not self._seen and (self._landed_nonce is None or int(st.nonce) < self._landed_nonce):
            return Holder.US, []  # read before our join landed: the hint is our crashed predecessor's
        return Holder.OTHER, held[1]
