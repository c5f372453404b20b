"""Banked points (issue 21, item 7): registry slots of past earners are reused, their points move to the
wallet's ClientPoints PDA ["points", coordinator account, wallet], and the treasurer pays slot + banked points
exactly once. Before, 256 wallets that each earned a point and left held the registry at ClientsFull forever."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from treasurer_helpers import fails_with, snapshot

from coordinator_sdk import spl_token as spl
from coordinator_sdk.events import decode_logs
from coordinator_sdk.model import Config, Machine
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import RegisteredClient, RunState, State
from coordinator_sdk.points import evictee
from devtools.fuzz import CONFIGS, FuzzWorld, apply
from devtools.treasurer_svm import EPOCH_CONFIG, TreasurerSvm, TreasuryRun

JOIN_CU_GOAL = 30_000
RATE = 3  # token base units per point


def _world(n: int, run_id: str) -> tuple[TreasurerSvm, TreasuryRun, list[Keypair]]:
    """`n` wallets that each earned points in a played epoch and did not rejoin; a registry of `n` slots
    (global_batch_size_end), so it is full; the vault funded."""
    h = TreasurerSvm()
    cfg = {**EPOCH_CONFIG, "global_batch_size_start": n, "global_batch_size_end": n, "witness_nodes": 1,
           "min_clients": 1}
    tr = h.treasury_run(run_id, rate=RATE, config=cfg, rates=(900 * n, 0))
    users = [h.fund(Keypair(), 10**9) for _ in range(n)]
    h.play_epoch(tr, users)
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**15)
    st = h.state(tr)
    assert st.run_state == 1 and st.num_clients == n and all(st.clients[i].earned > 0 for i in range(n))
    return h, tr, users


def _slot(h: TreasurerSvm, tr: TreasuryRun, wallet: Pubkey):
    st = h.state(tr)
    return next((st.clients[i] for i in range(st.num_clients) if bytes(st.clients[i].signer) == bytes(wallet)), None)


def _balance(h: TreasurerSvm, ata: Pubkey) -> int:
    return spl.decode_token_account(bytes(h.svm.get_account(ata).data)).amount


def _claim(h: TreasurerSvm, tr: TreasuryRun, user: Keypair, points: int, **kw):
    return h.claim(tr, user, points, user_collateral=h.token_account(user.pubkey(), tr.mint), **kw)


def test_256_past_earners_no_longer_lock_the_registry_and_the_evictee_is_paid_once() -> None:
    h, tr, users = _world(256, "bank-256")
    newcomer = h.fund(Keypair(), 10**9)
    out = evictee(h.state(tr), newcomer.pubkey())
    assert out is not None
    victim = next(u for u in users if u.pubkey() == out)
    points = _slot(h, tr, out).earned
    res = h.join(tr, newcomer)
    # the first banking of a wallet searches its PDA's bump: ~340 CU per step below 255 (sol_find_pda), within
    # the goal down to bump ~227 (all but 1 wallet in 500 million)
    bump = Pubkey.find_program_address([b"points", bytes(tr.account), bytes(out)], h.codec.program_id)[1]
    assert res.ok and res.cu <= JOIN_CU_GOAL + 340 * max(0, 227 - bump), (res.error_name, res.cu, bump)
    assert _slot(h, tr, out) is None and _slot(h, tr, newcomer.pubkey()) is not None
    assert h.banked(tr, out) == (points, 0)
    assert h.state(tr).num_clients == 256
    # the treasurer pays the banked points, in tokens, exactly once
    assert h.participant(tr, victim).ok
    fails_with(h, h.tcodec.participant_claim(victim.pubkey(), tr.run, tr.account, tr.mint, points), [victim],
               "NotAClient")  # without its points PDA the evictee has no points in the run
    ata = h.token_account(victim.pubkey(), tr.mint)
    assert _claim(h, tr, victim, points, banked=True).ok
    assert _balance(h, ata) == points * RATE
    fails_with(h, h.tcodec.participant_claim(victim.pubkey(), tr.run, tr.account, tr.mint, 1, user_collateral=ata,
                                             banked=True), [victim], "ClaimExceedsEarned")
    # a second newcomer evicts another earner: the first evictee's bank is untouched
    second = h.fund(Keypair(), 10**9)
    other = evictee(h.state(tr), second.pubkey())
    assert other not in (None, out)
    res = h.join(tr, second)
    assert res.ok and h.banked(tr, out) == (points, 0) and h.banked(tr, other)[0] > 0
    banks = [e for e in decode_logs(res.logs, h.codec.program_id) if e.kind == "bank"]
    assert [(e.fields["wallet"], e.fields["earned"]) for e in banks] == [(str(other), h.banked(tr, other)[0])]


def test_an_evicted_wallet_rejoins_keeps_its_bank_and_claims_slot_plus_bank() -> None:
    h, tr, users = _world(3, "bank-rejoin")
    newcomer = h.fund(Keypair(), 10**9)
    victim_key = evictee(h.state(tr), newcomer.pubkey())
    victim = next(u for u in users if u.pubkey() == victim_key)
    first = _slot(h, tr, victim_key).earned
    assert h.join(tr, newcomer).ok
    assert h.join(tr, victim).ok  # back: takes another past earner's slot (banking that one), starts at 0
    assert _slot(h, tr, victim_key).earned == 0 and h.banked(tr, victim_key) == (first, 0)
    players = [u for u in users if bytes(u.pubkey()) in
               {bytes(h.state(tr).clients[i].signer) for i in range(3)}] + [newcomer]
    h.play_epoch(tr, [p for p in dict.fromkeys(players)][:3])  # the registry's three wallets play again
    again = _slot(h, tr, victim_key).earned
    assert again > 0 and h.banked(tr, victim_key) == (first, 0)
    assert h.participant(tr, victim).ok
    total = first + again
    fails_with(h, h.tcodec.participant_claim(victim.pubkey(), tr.run, tr.account, tr.mint, total,
                                             user_collateral=h.token_account(victim_key, tr.mint)),
               [victim], "ClaimExceedsEarned")  # the slot alone holds only `again`
    assert _claim(h, tr, victim, total, banked=True).ok
    assert _balance(h, h.token_account(victim_key, tr.mint)) == total * RATE


@pytest.fixture(scope="module")
def small() -> tuple[TreasurerSvm, TreasuryRun, list[Keypair]]:
    return _world(3, "bank-neg")


def _join_ix(h: TreasurerSvm, tr: TreasuryRun, user: Keypair, points: Pubkey | None,
             victim: Pubkey | None = None) -> Instruction:
    """join_run passing `points` as the points PDA (None: no points accounts at all)."""
    ix = h.codec.join_run(user.pubkey(), tr.instance, tr.account, user.pubkey(), "h",
                          evictee=victim or Keypair().pubkey())
    if points is None:
        return Instruction(ix.program_id, ix.data, list(ix.accounts[:5]))
    metas = list(ix.accounts)
    metas[6] = AccountMeta(points, False, True)
    return Instruction(ix.program_id, ix.data, metas)


def _refused(h: TreasurerSvm, tr: TreasuryRun, ix: Instruction, signer: Keypair, name: str) -> None:
    keys = [tr.account, tr.instance, *(m.pubkey for m in ix.accounts[5:])]
    before = snapshot(h, keys)
    res = h.send(ix, [signer])
    assert not res.ok and res.error_name == name, (res.error_name, res.error, res.logs[-3:])
    assert snapshot(h, keys) == before, "a refused join changed an account"


def test_a_join_that_evicts_an_earner_needs_that_wallets_points_pda(small) -> None:
    h, tr, users = small
    joiner = h.fund(Keypair(), 10**9)
    victim = evictee(h.state(tr), joiner.pubkey())
    other = next(u.pubkey() for u in users if u.pubkey() != victim)
    wrong = [None,  # no points accounts
             h.codec.points_pda(tr.account, other),  # another earner's PDA
             h.codec.points_pda(tr.account, joiner.pubkey()),  # the joiner's own
             Keypair().pubkey(),  # not a PDA at all
             h.codec.points_pda(Keypair().pubkey(), victim),  # the victim's PDA of another run
             tr.account]  # the coordinator account itself
    for points in wrong:
        _refused(h, tr, _join_ix(h, tr, joiner, points, victim), joiner, "WrongPointsAccount")
    # a record at the right address that is not a ClientPoints (set by hand: only the program can write there)
    pda = h.codec.points_pda(tr.account, victim)
    h.svm.set_account(pda, Account(10**7, bytes(96), h.codec.program_id, False, 0))
    _refused(h, tr, _join_ix(h, tr, joiner, pda, victim), joiner, "WrongPointsAccount")
    ok_ix = h.codec.join_run(joiner.pubkey(), tr.instance, tr.account, joiner.pubkey(), "h", evictee=victim)
    ro = Instruction(ok_ix.program_id, ok_ix.data, [AccountMeta(joiner.pubkey(), True, False), *ok_ix.accounts[1:]])
    _refused(h, tr, Instruction(ok_ix.program_id, ok_ix.data, [*ok_ix.accounts[:6],
                                                               AccountMeta(pda, False, False), ok_ix.accounts[7]]),
             joiner, "WrongPointsAccount")  # the PDA must be writable
    h.svm.set_account(pda, Account(10**7, b"", SYSTEM_PROGRAM, False, 0))  # squatted: pre-funded, empty
    _refused(h, tr, ro, joiner, "NotWritable")  # the payer of a new PDA must be writable
    no_system = Instruction(ok_ix.program_id, ok_ix.data, [*ok_ix.accounts[:7], AccountMeta(tr.account, False, False)])
    _refused(h, tr, no_system, joiner, "NotSystemProgram")
    before = _slot(h, tr, victim).earned
    assert h.send(ok_ix, [joiner]).ok  # a pre-funded address is taken over, as accounts.c create_pda does
    assert h.banked(tr, victim) == (before, 0)
    assert h.svm.get_account(pda).owner == h.codec.program_id
    # the next join takes another earner's slot: the first evictee's real record is not that wallet's
    second = h.fund(Keypair(), 10**9)
    nxt = evictee(h.state(tr), second.pubkey())
    assert nxt not in (None, victim)
    _refused(h, tr, _join_ix(h, tr, second, pda, nxt), second, "WrongPointsAccount")
    copy_at = Keypair().pubkey()  # a copy of a record, with data, not owned by the program
    h.svm.set_account(copy_at, Account(10**7, bytes(h.svm.get_account(pda).data), SYSTEM_PROGRAM, False, 0))
    _refused(h, tr, _join_ix(h, tr, second, copy_at, nxt), second, "WrongPointsAccount")


def test_the_treasurer_refuses_a_forged_points_account(small) -> None:
    h, tr, users = small
    joiner = h.fund(Keypair(), 10**9)
    victim_key = evictee(h.state(tr), joiner.pubkey())
    assert h.join(tr, joiner).ok
    banked = h.banked(tr, victim_key)[0]
    victim = next(u for u in users if u.pubkey() == victim_key)
    assert h.participant(tr, victim).ok
    ata = h.token_account(victim_key, tr.mint)
    fake_owner = Keypair().pubkey()
    h.svm.set_account(fake_owner, Account(10**7, h.svm.get_account(h.codec.points_pda(tr.account, victim_key)).data,
                                          SYSTEM_PROGRAM, False, 0))  # a copy of the record, not the coordinator's
    real = bytes(h.svm.get_account(h.codec.points_pda(tr.account, victim_key)).data)
    moved, blank = Keypair().pubkey(), Keypair().pubkey()
    h.svm.set_account(moved, Account(10**7, real, h.codec.program_id, False, 0))  # the record elsewhere
    h.svm.set_account(blank, Account(10**7, bytes(96), h.codec.program_id, False, 0))
    cases = [(fake_owner, "WrongOwner"),
             (h.codec.points_pda(tr.account, joiner.pubkey()), "WrongOwner"),  # nonexistent: the System program's
             (tr.account, "WrongAccountSize"), (blank, "WrongDiscriminator"), (moved, "InvalidPda")]
    for key, name in cases:
        fails_with(h, h.tcodec.participant_claim(victim_key, tr.run, tr.account, tr.mint, 1, user_collateral=ata,
                                                 banked=key), [victim], name)
    # someone else's real bank: the record names another wallet
    thief = joiner
    assert h.participant(tr, thief).ok
    fails_with(h, h.tcodec.participant_claim(thief.pubkey(), tr.run, tr.account, tr.mint, banked + 1,
                                             user_collateral=h.token_account(thief.pubkey(), tr.mint),
                                             banked=h.codec.points_pda(tr.account, victim_key)),
               [thief], "AccountMismatch")
    assert _claim(h, tr, victim, banked, banked=True).ok  # the real record still pays, once


def test_program_and_model_agree_on_banking_and_on_forged_points_accounts() -> None:
    """Differential: two slots, two earners; newcomers take their slots (banking), one with another wallet's
    points PDA (refused on both sides), and an evicted earner returns. DiffRun compares every points PDA."""
    d, users = FuzzWorld().new_run(replace(CONFIGS[4], total_steps=1000))  # a registry of 2 slots
    for op in [("join", 0, 0, 0, 0, 0), ("join", 1, 0, 0, 0, 0), ("advance", 0, 0, 0, 2, 0), ("tick", 0, 0, 0, 0, 0),
               ("warmup_witness", 0, 0, 0, 0, 0), ("warmup_witness", 1, 0, 0, 0, 0)]:
        apply(d, users, op)
    for _ in range(40):  # rounds until the epoch's time is up and its cooldown pays the two clients
        if d.chain_state().epoch >= 1:
            break
        for op in [("witness", 0, 0b1, 0, 1, 0), ("witness", 1, 0b1, 0, 1, 0), ("advance", 0, 0, 0, 3, 0),
                   ("tick", 1, 0, 0, 0, 0)]:
            apply(d, users, op)
    st = d.chain_state()
    assert st.epoch >= 1 and all(st.clients[i].earned > 0 for i in range(2)), (st.epoch, st.run_state)
    forged = d.join(users[2], forge_points=users[3].pubkey())
    assert forged.chain.error_name == "WrongPointsAccount" and forged.model_error == "WrongPointsAccount"
    for u in (2, 3, 0):  # two newcomers bank both earners; the first earner returns (taking a newcomer's slot)
        assert d.join(users[u]).chain.ok
    assert len(d.m.state.banked) == 2 and d.banks == 2
    assert h_banked(d, users[0]) == d.m.state.banked[bytes(users[0].pubkey())]


def h_banked(d, user: Keypair) -> tuple[int, int]:
    return d.h.banked(d.run, user.pubkey())


def test_the_idl_decodes_a_points_account() -> None:
    h, tr, users = _world(3, "bank-idl")
    joiner = h.fund(Keypair(), 10**9)
    victim = evictee(h.state(tr), joiner.pubkey())
    assert h.join(tr, joiner).ok
    raw = bytes(h.svm.get_account(h.codec.points_pda(tr.account, victim)).data)
    rec = h.codec.decode(raw)
    assert (rec.earned, rec.slashed) == h.banked(tr, victim) and rec.signer == victim
    assert rec.coordinator_account == tr.account and h.codec.program.account["ClientPoints"].size == len(raw)


# ---- the model's rules (the differential tests hold the program to them) ------------------------------------
def _model(slots: list[tuple[bytes, int, int]], banked: dict | None = None) -> Machine:
    """A halted-free model run in WaitingForMembers whose registry of len(slots) slots is full: (signer,
    earned, slashed) per slot, none waiting for the next epoch."""
    cfg = Config(global_batch_size_start=len(slots), global_batch_size_end=len(slots))
    st = State(run_state=RunState.WaitingForMembers, config=cfg, next_active=2,
               clients=[RegisteredClient(k, k, active=1, earned=e, slashed=s) for k, e, s in slots])
    st.banked = dict(banked or {})
    return Machine(st)


def test_model_evicts_a_slot_without_points_before_an_earner_and_banks_an_earner() -> None:
    a, b, c, d = (bytes([i]) * 32 for i in range(1, 5))
    m = _model([(a, 5, 0), (b, 0, 9)])
    m.join_run(c, c, b"", 0, 1)  # b: no earned points (most penalised too), taken first; no PDA to create
    assert [x.signer for x in m.state.clients] == [a, c] and m.state.banked == {}
    m.join_run(d, d, b"", 0, 1)  # c just joined (protected): the earner's slot is taken, its points banked
    assert [x.signer for x in m.state.clients] == [d, c] and m.state.banked == {a: (5, 0)}


def test_model_banks_penalties_only_where_points_are_banked() -> None:
    a, b, c = (bytes([i]) * 32 for i in range(1, 4))
    m = _model([(a, 0, 4)])
    m.join_run(b, b, b"", 0, 1)
    assert m.state.banked == {}  # nothing to penalise anywhere: dropped with the slot, as before banking
    m = _model([(a, 0, 4)], banked={a: (10, 1)})
    m.join_run(c, c, b"", 0, 1)
    assert m.state.banked == {a: (10, 5)}


def test_model_refuses_another_wallets_points_pda_and_changes_nothing() -> None:
    a, b = (bytes([i]) * 32 for i in range(1, 3))
    m = _model([(a, 5, 0)])
    before = copy.deepcopy(m.state)
    with pytest.raises(E.WrongPointsAccount):
        m.join_run(b, b, b"", 0, 1, points_for=b)
    assert m.state == before
    m.join_run(b, b, b"", 0, 1, points_for=a)
    assert m.state.banked == {a: (5, 0)}
