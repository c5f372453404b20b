"""Issue 24's cheap reads of a followed account: sliced key columns, the members cache, the batched bloom check.

Each is a faster path to an answer the slow path already gave, so each is checked against that slow path on
random accounts and blooms (the real IDL layout, random bytes where the reader does not care)."""
from __future__ import annotations

import hashlib
import json
import random
import struct
from types import SimpleNamespace

from client.p2p.allowlist import EpochMembers, hint_addresses
from client.runner.liveness import registered_hint
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.bloom import Bloom, contains_each
from coordinator_sdk.codec import IDL_PATH
from coordinator_sdk.layout_view import LayoutTable, StructView, column
from coordinator_sdk.model.state import RunState
from coordinator_sdk.round_assignment import epoch_p2p_keys

TABLE = LayoutTable(json.loads(IDL_PATH.read_text()))
ACCOUNT = TABLE.struct("CoordinatorAccount")


def _put(buf: bytearray, name: str, fmt: str, value: int) -> None:
    assert ACCOUNT.fields is not None
    struct.pack_into(fmt, buf, ACCOUNT.fields[name][0], value)


def _set(buf: bytearray, at: int, data: bytes) -> None:
    buf[at:at + len(data)] = data


def _account(rng: random.Random, n_clients: int, n_epoch: int, run_state: RunState = RunState.RoundTrain,
             keys: list[bytes] | None = None) -> tuple[bytearray, list[bytes]]:
    """Random account bytes with the counts set, and epoch clients / registry entries drawn from `keys`."""
    buf = bytearray(rng.randbytes(ACCOUNT.size))
    _put(buf, "run_state", "<B", int(run_state))
    _put(buf, "num_clients", "<I", n_clients)
    _put(buf, "num_epoch_clients", "<I", n_epoch)
    keys = keys or [rng.randbytes(32) for _ in range(n_clients)]
    assert ACCOUNT.fields is not None
    for name, n in (("clients", n_clients), ("epoch_clients", n_epoch)):
        base, arr = ACCOUNT.fields[name]
        assert arr.item is not None and arr.item.fields is not None
        for i in range(n):
            at = base + i * arr.item.size
            _set(buf, at + arr.item.fields["signer"][0], keys[i])
            _set(buf, at + arr.item.fields["p2p"][0], hashlib.sha256(keys[i]).digest())
            if name == "epoch_clients":
                buf[at + arr.item.fields["state"][0]] = rng.randrange(4)
            else:
                hint = f"127.0.0.1:{1000 + i}".encode()
                _set(buf, at + arr.item.fields["addr_hint"][0], hint.ljust(64, b"\x00"))
                _set(buf, at + arr.item.fields["active"][0], rng.randrange(2).to_bytes(8, "little"))
    return buf, keys


def _view(buf: bytearray) -> CoordinatorView:
    return CoordinatorView(StructView(bytes(buf), 0, ACCOUNT))


def test_columns_give_what_field_reads_give() -> None:
    rng = random.Random(1)
    for n in (0, 1, 7, 40):
        st = _view(_account(rng, n, n)[0])
        raw = st.raw
        assert st.epoch_signers() == [bytes(raw.epoch_clients[i].signer) for i in range(n)]
        assert st.epoch_column("p2p") == [bytes(raw.epoch_clients[i].p2p) for i in range(n)]
        assert st.epoch_states() == [int(raw.epoch_clients[i].state) for i in range(n)]
        assert column(raw, "clients", "addr_hint", n) == [bytes(raw.clients[i].addr_hint) for i in range(n)]
        for i, signer in enumerate(st.epoch_signers()):
            assert st.epoch_index(signer) == st.epoch_signers().index(signer) <= i
        assert st.epoch_index(b"\x01" * 32) is None
    assert column(SimpleNamespace(), "clients", "signer", 1) is None  # not a layout view: the caller reads fields
    assert column(raw, "clients", "signer", 10_000) is None  # out of range: the slow path raises as before


def test_registered_hint_matches_a_scan_of_the_registry() -> None:
    rng = random.Random(2)
    buf, keys = _account(rng, 12, 12)
    st = _view(buf)
    for i, signer in enumerate(keys):
        c = st.raw.clients[i]
        want = (bytes(c.p2p), hint_addresses(c.addr_hint)) if int(c.active) else None
        assert registered_hint(st, signer) == want
    assert registered_hint(st, b"\x02" * 32) is None


def test_members_cache_follows_what_membership_reads_and_nothing_else() -> None:
    rng = random.Random(3)
    buf, keys = _account(rng, 10, 8)
    m = EpochMembers()
    first = m.refresh(_view(buf))
    assert first == epoch_p2p_keys(_view(buf)) and len(first) == 8
    assert m.hints[hashlib.sha256(keys[0]).digest()] == ["127.0.0.1:1000"]
    assert ACCOUNT.fields is not None
    rounds = ACCOUNT.fields["rounds"][0]
    buf[rounds:rounds + 64] = rng.randbytes(64)  # a witness landed: membership unchanged
    again = m.refresh(_view(buf))
    again.add(b"x")  # a caller's copy: the members do not change
    assert m.refresh(_view(buf)) == first and m.members() == first
    base, arr = ACCOUNT.fields["clients"]
    assert arr.item is not None and arr.item.fields is not None
    at = base + arr.item.fields["addr_hint"][0]
    buf[at:at + 64] = b"10.0.0.1:9".ljust(64, b"\x00")  # client 0 moved: its new hint is read
    m.refresh(_view(buf))
    assert m.hints[hashlib.sha256(keys[0]).digest()] == ["10.0.0.1:9"]
    buf2, _ = _account(rng, 10, 5, keys=keys)  # the next epoch lists fewer clients
    assert m.refresh(_view(buf2)) == {hashlib.sha256(k).digest() for k in keys[:5]}
    _put(buf2, "run_state", "<B", int(RunState.WaitingForMembers))
    assert m.refresh(_view(buf2)) == set() and m.members() == set()
    m.update({b"k"})  # set from elsewhere: the next refresh reads the account again
    assert m.refresh(_view(buf2)) == set()


def test_contains_each_is_contains_for_every_pair() -> None:
    rng = random.Random(4)
    for trial in range(50):
        blooms = [Bloom([rng.getrandbits(64) for _ in range(8)]) for _ in range(rng.randint(1, 33))]
        items = [rng.randbytes(32) for _ in range(rng.randint(1, 40))]
        for b in blooms:
            for it in rng.sample(items, rng.randint(0, len(items))):
                b.add(it)
            for _ in range(300 if trial % 5 == 0 else 0):  # saturated: many false positives to agree on
                b.add(rng.randbytes(32))
        assert contains_each(blooms, items) == [[b.contains(it) for b in blooms] for it in items]
    short = [b"abc", rng.randbytes(32)]  # an item shorter than the hashed prefix: the plain path
    assert contains_each(blooms, short) == [[b.contains(it) for b in blooms] for it in short]
    assert contains_each([], short) == [[], []] and contains_each(blooms, []) == []
