"""The registry's eviction rules: which slot a newcomer takes from a full registry (the program's
evictable_slot in client_ix.c) and how the evicted slot's points are banked (points.c), so that slots are
reused and no wallet loses points."""
from __future__ import annotations

from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import U64_MAX, ClientState, RegisteredClient, RunState, State

IN_EPOCH = (RunState.Warmup, RunState.RoundTrain, RunState.RoundWitness, RunState.Cooldown)


def evictable_slot(s: State) -> int | None:
    """The least useful registry slot a newcomer may take: never a healthy client of the epoch in progress;
    then not-waiting before waiting for the next epoch, without earned points before with (those are banked,
    bank), most penalised, longest since it last joined, then round-robin from evict_cursor (a newcomer is not
    the next one out)."""
    busy = set()
    if s.run_state in IN_EPOCH:
        busy = {c.registry_index for c in s.epoch_state.clients
                if c.state == ClientState.Healthy and s.registry_entry(c) is not None}
    n = len(s.clients)
    order = [(s.evict_cursor % n + j) % n for j in range(n)] if n else []
    candidates = [i for i in order if i not in busy]
    if not candidates:
        return None
    best = min(candidates, key=lambda i: (s.clients[i].active == s.next_active, s.clients[i].earned != 0,
                                          -s.clients[i].slashed, s.clients[i].active, order.index(i)))
    s.evict_cursor = (best + 1) % n
    return best


def bank(s: State, c: RegisteredClient, points_for: bytes | None = None) -> None:
    """Move evicted slot `c`'s points to its wallet's banked points (the program's points PDA, created when
    there are earned points to keep). Penalties of a wallet with no points anywhere go with the slot.
    `points_for`: whose points PDA the join passed (None: `c`'s own); another's is refused."""
    if c.earned == 0 and c.slashed == 0:
        return
    if points_for is not None and points_for != c.signer:
        raise E.WrongPointsAccount("the points account is not the evicted client's points PDA")
    if c.earned == 0 and c.signer not in s.banked:
        return
    earned, slashed = s.banked.get(c.signer, (0, 0))
    s.banked[c.signer] = (min(U64_MAX, earned + c.earned), min(U64_MAX, slashed + c.slashed))
