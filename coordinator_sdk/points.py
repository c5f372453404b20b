"""Banked points (programs/coordinator/points.c): when a full registry gives a slot whose wallet holds points to
a newcomer, join_run moves that slot's earned/slashed to the wallet's ClientPoints PDA
["points", coordinator account, wallet]. The joiner must pass that PDA, so the SDK predicts, from the account
state it read, which slot the program will take (`evictee`, the program's evictable_slot in Python).
A wallet's points are its slot's plus its banked ones; claims and `psyche rewards` count both."""
from __future__ import annotations

import hashlib
import struct
from typing import Any

from solders.pubkey import Pubkey

from coordinator_sdk.model.state import IN_EPOCH, ClientState

CLIENT_POINTS_DISCRIMINATOR = hashlib.sha256(b"account:ClientPoints").digest()[:8]
CLIENT_POINTS_SIZE = 96
MAX_CLIENTS = 256


def points_pda(account: Pubkey, wallet: Pubkey, program_id: Pubkey) -> Pubkey:
    """The ClientPoints PDA of `wallet` in the run whose coordinator account is `account`."""
    return Pubkey.find_program_address([b"points", bytes(account), bytes(wallet)], program_id)[0]


def decode_banked(raw: bytes | None) -> tuple[int, int]:
    """(earned, slashed) of a ClientPoints account's data; (0, 0) when there is none (nothing banked)."""
    if raw is None or len(raw) == 0:
        return 0, 0
    if len(raw) != CLIENT_POINTS_SIZE or raw[:8] != CLIENT_POINTS_DISCRIMINATOR:
        raise ValueError("not a ClientPoints account")
    return struct.unpack_from("<QQ", raw, 72)


def _evictable_slot(st: Any) -> int | None:
    """The slot the program's evictable_slot picks in decoded account `st` (see its comment for the order)."""
    n = min(st.num_clients, MAX_CLIENTS)
    busy = set()
    if st.run_state in IN_EPOCH:
        for c in st.epoch_clients[:min(st.num_epoch_clients, MAX_CLIENTS)]:
            if c.state == ClientState.Healthy and c.registry_index < n \
                    and bytes(st.clients[c.registry_index].signer) == bytes(c.signer):
                busy.add(c.registry_index)
    order = [(st.evict_cursor % n + j) % n for j in range(n)] if n else []
    candidates = [(pos, i) for pos, i in enumerate(order) if i not in busy]
    if not candidates:
        return None
    c = st.clients
    return min(candidates, key=lambda t: (c[t[1]].active == st.next_active, c[t[1]].earned != 0,
                                          -c[t[1]].slashed, c[t[1]].active, t[0]))[1]


def evictee(st: Any, joiner: Pubkey) -> Pubkey | None:
    """The wallet whose points PDA a join by `joiner` must pass: the holder of the slot the join will take
    when that slot holds points; None when the join takes no slot with points (the joiner is registered,
    a slot is free, none may be taken, or the slot taken has no points)."""
    n = min(st.num_clients, MAX_CLIENTS)
    if any(bytes(c.signer) == bytes(joiner) for c in st.clients[:n]):
        return None
    if n < min(st.config.global_batch_size_end, MAX_CLIENTS):
        return None
    i = _evictable_slot(st)
    if i is None or (st.clients[i].earned == 0 and st.clients[i].slashed == 0):
        return None
    return Pubkey.from_bytes(bytes(st.clients[i].signer))


def slot_points(st: Any, wallet: Pubkey) -> tuple[int, int]:
    """(earned, slashed) in `wallet`'s registry slot of decoded account `st`; (0, 0) when it has none."""
    for c in st.clients[:min(st.num_clients, MAX_CLIENTS)]:
        if bytes(c.signer) == bytes(wallet):
            return c.earned, c.slashed
    return 0, 0
