"""The verdict instruction (issue 25 phase 2) on LiteSVM, the reference model alongside (DiffRun compares the
decoded account with the model after every instruction): a drawn verifier's pass / fail on a trainer's result of
a kept round, conviction (fails >= 2 and > passes: Ejected, slashed, unpaid for the epoch), vindication (the
first accuser slashed), and every refusal, each a named error that leaves the accounts byte-identical."""
from __future__ import annotations

from dataclasses import replace

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from coordinator_sdk.events import decode_logs
from coordinator_sdk.model.state import ClientState, RunState
from coordinator_sdk.verdicts import eligible
from devtools.differential import DiffRun
from devtools.fuzz import BASE, FuzzWorld, apply

WORLD = FuzzWorld()
SLASH = 7  # DiffRun's default rates: (earning 1000, slashing 7)
EVIDENCE = (list(b"r" * 32), list(b"e" * 32))


def play(rounds: int, users: int = 4, config=BASE) -> tuple[DiffRun, list[Keypair]]:
    """A run in RoundTrain of height `rounds` (every client witnessed every round)."""
    d, keys = WORLD.new_run(config)
    ops = [("join", u, 0, 0, 0, 0) for u in range(users)] + [("advance", 0, 0, 0, 2, 0), ("tick", 0, 0, 0, 0, 0),
                                                             ("advance", 0, 0, 0, 0, 0)]
    ops += [("warmup_witness", u, 0, 0, 0, 0) for u in range(users)]
    for op in ops:
        apply(d, keys, op)
    for _ in range(rounds):
        st = d.chain_state()
        for u in range(users):
            apply(d, keys, ("witness", u, 0b0001, 0, 1, 0))
        d.h.advance(st.config.round_witness_time + 1)
        d.client("tick", keys[0])
    st = d.chain_state()
    assert st.run_state == RunState.RoundTrain and st.rounds[st.rounds_head].height == rounds, st.run_state
    return d, keys


def signer_of(d: DiffRun, keys: list[Keypair], index: int) -> Keypair:
    st = d.chain_state()
    return {bytes(k.pubkey()): k for k in keys}[bytes(st.epoch_clients[index].signer)]


def drawn(d: DiffRun, trainer: int, height: int) -> list[int]:
    """The epoch-client indices drawn to verify `trainer`'s result of round `height` (the SDK's rule)."""
    st = d.chain_state()
    j = height % 4
    seed, n = st.rounds[(j + 1) % 4].random_seed, st.rounds[j].clients_len
    t = bytes(st.epoch_clients[trainer].p2p)
    per_mille = int(st.config.verifiers_per_mille)
    return [i for i in range(st.num_epoch_clients)
            if eligible(seed, bytes(st.epoch_clients[i].p2p), t, n, per_mille)]


def find(d: DiffRun, want: int, heights: list[int]) -> tuple[int, int, list[int]]:
    """A (trainer, height) with at least `want` drawn verifiers."""
    st = d.chain_state()
    for h in heights:
        for t in range(st.num_epoch_clients):
            v = drawn(d, t, h)
            if len(v) >= want:
                return t, h, v
    pytest.skip(f"no trainer with {want} verifiers in rounds {heights} of this run's seeds")


def key_of(d: DiffRun, index: int) -> list[int]:
    """The P2P key a verdict names its trainer by: the one at `index` (32 zero bytes past the list)."""
    st = d.chain_state()
    return list(bytes(st.epoch_clients[index].p2p)) if index < st.num_epoch_clients else [0] * 32


def verdict(d: DiffRun, keys: list[Keypair], verifier: int, trainer: int, height: int, outcome: int,
            named: list[int] | None = None):
    return d.client("verdict", signer_of(d, keys, verifier), trainer, key_of(d, trainer) if named is None else named,
                    height, outcome, *EVIDENCE)


def snapshot(d: DiffRun, *extra: Pubkey) -> list[bytes | None]:
    out = []
    for k in (d.run.instance, d.run.account, *extra):
        a = d.h.raw(k)
        out.append(None if a is None else bytes(a.data) + a.lamports.to_bytes(8, "little"))
    return out


def refused(d: DiffRun, name: str, step) -> None:
    before = snapshot(d)
    res = step().chain
    assert not res.ok and res.error_name == name, (res.error_name, res.error, res.logs[-3:])
    assert snapshot(d) == before, "a refused verdict changed an account"


def test_a_drawn_verifier_posts_a_pass_with_its_evidence() -> None:
    d, keys = play(2)
    t, h, v = find(d, 1, [1, 0])
    res = verdict(d, keys, v[0], t, h, 1).chain
    assert res.ok, res.error
    st = d.chain_state()
    assert st.epoch_clients[t].passes[h % 4] == 1 and st.epoch_clients[t].fails[h % 4] == 0
    assert st.epoch_clients[v[0]].verdict_height == h + 1
    ev = [e for e in decode_logs(res.logs, d.h.codec.program_id) if e.kind == "verdict"]
    assert len(ev) == 1 and ev[0].fields["outcome"] == "pass" and ev[0].fields["height"] == h
    assert ev[0].fields["result"] == (b"r" * 32).hex() and ev[0].fields["ef"] == (b"e" * 32).hex()
    print(f"verdict CU: {res.cu}")


def test_two_fails_convict_eject_slash_and_cost_the_epoch_points() -> None:
    d, keys = play(2)
    t, h, v = find(d, 2, [1, 0])
    trainer_key = bytes(d.chain_state().epoch_clients[t].signer)
    assert verdict(d, keys, v[0], t, h, 0).chain.ok
    assert d.chain_state().epoch_clients[t].state == ClientState.Healthy  # one verifier alone convicts nobody
    res = verdict(d, keys, v[1], t, h, 0).chain
    assert res.ok
    st = d.chain_state()
    assert st.epoch_clients[t].state == ClientState.Ejected
    assert any(e.kind == "convicted" for e in decode_logs(res.logs, d.h.codec.program_id))
    reg = {bytes(st.clients[i].signer): st.clients[i] for i in range(st.num_clients)}
    assert reg[trainer_key].slashed == SLASH
    # the ejected client may no longer post, and the epoch pays only the others
    refused(d, "ClientNotHealthy", lambda: verdict(d, keys, t, v[0], h, 1))
    for _ in range(40):
        st = d.chain_state()
        if st.run_state == RunState.WaitingForMembers and st.epoch >= 1:
            break
        apply(d, keys, ("play_round", 0, 0b11110, 0, 1, 0))
    st = d.chain_state()
    assert st.epoch >= 1, st.run_state
    earned = {bytes(st.clients[i].signer): st.clients[i].earned for i in range(st.num_clients)}
    assert earned.pop(trainer_key) == 0
    assert all(e > 0 for e in earned.values()), earned


def test_a_pass_majority_vindicates_and_slashes_the_first_accuser() -> None:
    d, keys = play(3, users=5)
    t, h, v = find(d, 3, [2, 1, 0])
    accuser = bytes(d.chain_state().epoch_clients[v[0]].signer)
    assert verdict(d, keys, v[0], t, h, 0).chain.ok
    assert verdict(d, keys, v[1], t, h, 1).chain.ok
    assert verdict(d, keys, v[2], t, h, 1).chain.ok
    st = d.chain_state()
    assert st.epoch_clients[t].state == ClientState.Healthy
    assert st.epoch_clients[t].accuser[h % 4] == 0xFFFF
    reg = {bytes(st.clients[i].signer): st.clients[i] for i in range(st.num_clients)}
    assert reg[accuser].slashed == SLASH
    assert sum(c.slashed for c in reg.values()) == SLASH  # nobody else


def test_verdict_rules() -> None:
    d, keys = play(2)
    st = d.chain_state()
    n = st.num_epoch_clients
    t, h, v = find(d, 1, [1, 0])
    others = [i for i in range(n) if i not in v and i != t]
    if others:
        refused(d, "NotAVerifier", lambda: verdict(d, keys, others[0], t, h, 0))
    refused(d, "NotAVerifier", lambda: verdict(d, keys, t, t, h, 0))  # nobody verifies itself
    refused(d, "StaleRound", lambda: verdict(d, keys, v[0], t, 2, 0))  # the current round: no successor yet
    refused(d, "StaleRound", lambda: verdict(d, keys, v[0], t, 2**32 - 1, 0))
    refused(d, "NotAnEpochClient", lambda: verdict(d, keys, v[0], n, h, 0))
    # the index read before a round's compaction names another client after it: a verdict naming its trainer
    # by another key than the one at the index is refused, never counted against whoever holds the index now
    for other in (i for i in range(n) if i != t):
        refused(d, "WrongTrainer", lambda other=other: verdict(d, keys, v[0], t, h, 0, named=key_of(d, other)))
    refused(d, "WrongTrainer", lambda: verdict(d, keys, v[0], t, h, 0, named=[0] * 32))
    refused(d, "InvalidArgument", lambda: verdict(d, keys, v[0], t, h, 2))
    outsider = WORLD.svm.fund(Keypair())
    refused(d, "SignerNotAClient", lambda: d.client("verdict", outsider, t, key_of(d, t), h, 0, *EVIDENCE))
    assert verdict(d, keys, v[0], t, h, 1).chain.ok
    refused(d, "DuplicateVerdict", lambda: verdict(d, keys, v[0], t, h, 1))  # one per (verifier, trainer, round)
    refused(d, "DuplicateVerdict", lambda: verdict(d, keys, v[0], t, h, 0))  # nor a change of mind
    if h == 1:  # an older round after a newer one
        older = [x for x in range(n) if v[0] in drawn(d, x, 0)]
        if older:
            refused(d, "DuplicateVerdict", lambda: verdict(d, keys, v[0], older[0], 0, 0))


def test_rounds_no_longer_kept_are_refused() -> None:
    d, keys = play(5)
    t, h, v = find(d, 1, [1])  # round 1: the ring holds 2..5
    refused(d, "StaleRound", lambda: verdict(d, keys, v[0], t, h, 0))


def test_not_healthy_not_in_a_round_halted() -> None:
    d, keys = play(2)
    t, h, v = find(d, 1, [1, 0])
    assert d.client("withdraw", signer_of(d, keys, v[0])).chain.ok
    if d.chain_state().epoch_clients[v[0]].state == ClientState.Withdrawn:
        refused(d, "ClientNotHealthy", lambda: verdict(d, keys, v[0], t, h, 0))
    d2, keys2 = WORLD.new_run(BASE)
    for u in range(2):
        d2.join(keys2[u])
    refused(d2, "WrongState", lambda: d2.client("verdict", keys2[0], 0, [0] * 32, 0, 0, *EVIDENCE))  # waiting
    d3, keys3 = WORLD.new_run(BASE)
    d3.set_paused(True)
    refused(d3, "Halted", lambda: d3.client("verdict", keys3[0], 0, [0] * 32, 0, 0, *EVIDENCE))


def test_tally_overflow_is_refused() -> None:
    d, keys = play(2)
    t, h, v = find(d, 1, [1, 0])
    acc = d.h.svm.get_account(d.run.account)
    raw = bytearray(bytes(acc.data))
    import numpy as np

    arr = np.frombuffer(raw, dtype=d.h.codec._compiler.struct("CoordinatorAccount"), offset=8, count=1)
    arr["epoch_clients"]["passes"][0, t, h % 4] = 255
    d.m.state.epoch_state.clients[t].passes[h % 4] = 255
    d.h.svm.set_account(d.run.account, Account(acc.lamports, bytes(raw), acc.owner, acc.executable, acc.rent_epoch))
    d.check("poke passes")
    refused(d, "ArithmeticOverflow", lambda: verdict(d, keys, v[0], t, h, 1))


def _ix(d: DiffRun, user: Keypair, *args) -> Instruction:
    return d.h.codec.client_ix("verdict", user.pubkey(), d.run.instance, d.run.account, *args, *EVIDENCE)


def _metas(ix: Instruction, i: int, meta: AccountMeta) -> Instruction:
    metas = [AccountMeta(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts]
    metas[i] = meta
    return Instruction(ix.program_id, ix.data, metas)


def _copy(d: DiffRun, key: Pubkey, owner: Pubkey | None = None, mutate=None) -> Pubkey:
    acc = d.h.raw(key)
    data = bytearray(acc.data)
    if mutate:
        mutate(data)
    new = Pubkey.new_unique()
    d.h.svm.set_account(new, Account(acc.lamports, bytes(data), owner or acc.owner, False, 0))
    return new


def test_account_attacks_are_refused_by_name() -> None:
    d, keys = play(2)
    t, h, v = find(d, 1, [1, 0])
    user = signer_of(d, keys, v[0])
    ix = _ix(d, user, t, key_of(d, t), h, 1)
    acct = ix.accounts[2].pubkey
    cases = {
        "MissingSigner": (_metas(ix, 0, AccountMeta(user.pubkey(), False, False)), []),
        "NotWritable": (_metas(ix, 2, AccountMeta(acct, False, False)), [user]),
        "WrongOwner": (_metas(ix, 2, AccountMeta(_copy(d, acct, owner=Pubkey.new_unique()), False, True)), [user]),
        "WrongDiscriminator": (_metas(ix, 2, AccountMeta(_copy(d, acct, mutate=lambda b: b.__setitem__(0, b[0] ^ 1)),
                                                         False, True)), [user]),
        "WrongAccountSize": (_metas(ix, 2, AccountMeta(_copy(d, acct, mutate=lambda b: b.extend(bytes(8))),
                                                       False, True)), [user]),
        "InvalidPda": (_metas(ix, 1, AccountMeta(_copy(d, ix.accounts[1].pubkey), False, False)), [user]),
        "WrongSysvar": (_metas(ix, 3, AccountMeta(Pubkey.new_unique(), False, False)), [user]),
        "NotEnoughAccounts": (Instruction(ix.program_id, ix.data, ix.accounts[:3]), [user]),
        "InvalidInstruction": (Instruction(ix.program_id, ix.data[:-1], ix.accounts), [user]),
    }
    cases["TrailingByte"] = (Instruction(ix.program_id, ix.data + b"\0", ix.accounts), [user])
    for name, (bad, signers) in cases.items():
        before = snapshot(d)
        res = d.h.send(bad, signers)
        expected = "InvalidInstruction" if name == "TrailingByte" else name
        assert not res.ok and res.error_name == expected, (name, res.error_name, res.error)
        assert snapshot(d) == before, name
    assert d.h.send(ix, [user]).ok  # the same instruction, unharmed, is accepted


def _across_rounds(d: DiffRun, same: bool) -> tuple[int, int, int, int, int]:
    """(trainer, h1, verifier drawn for h1, h2 > h1, verifier drawn for h2): the same verifier or two others."""
    st = d.chain_state()
    for t in range(st.num_epoch_clients):
        for h1, h2 in ((0, 1), (0, 2), (1, 2)):
            for a in drawn(d, t, h1):
                for b in drawn(d, t, h2):
                    if (a == b) == same:
                        return t, h1, a, h2, b
    pytest.skip("no such draw in this run's seeds")


def test_fails_on_two_rounds_convict_and_one_verifier_alone_does_not() -> None:
    """Issue 25 phase 3: epoch_fails / epoch_passes add up over the epoch, so two fails by two verifiers on two
    different results convict (no result drew two); two fails by one verifier on two results do not."""
    d, keys = play(3, users=5)
    t, h1, a, h2, b = _across_rounds(d, same=False)
    assert verdict(d, keys, a, t, h1, 0).chain.ok
    assert d.chain_state().epoch_clients[t].state == ClientState.Healthy
    res = verdict(d, keys, b, t, h2, 0).chain
    assert res.ok, res.error
    st = d.chain_state()
    c = st.epoch_clients[t]
    assert (c.epoch_fails, c.epoch_passes, c.state) == (2, 0, ClientState.Ejected)
    assert c.fails[h1 % 4] == 1 and c.fails[h2 % 4] == 1
    assert any(e.kind == "convicted" for e in decode_logs(res.logs, d.h.codec.program_id))

    d, keys = play(3, users=5)
    t, h1, a, h2, _ = _across_rounds(d, same=True)
    assert verdict(d, keys, a, t, h1, 0).chain.ok and verdict(d, keys, a, t, h2, 0).chain.ok
    c = d.chain_state().epoch_clients[t]
    assert (c.epoch_fails, c.state) == (1, ClientState.Healthy)


def test_a_zero_rate_draws_no_verifier() -> None:
    d, keys = play(2, config=replace(BASE, verifiers_per_mille=0))
    st = d.chain_state()
    assert st.config.verifiers_per_mille == 0
    for t in range(st.num_epoch_clients):
        assert drawn(d, t, 0) == drawn(d, t, 1) == []
    refused(d, "NotAVerifier", lambda: verdict(d, keys, 1, 0, 1, 0))
    refused(d, "NotAVerifier", lambda: verdict(d, keys, 0, 1, 0, 1))
