"""Issue 14: the attacks a hostile wallet or run participant made on the coordinator, each replayed against the
program (LiteSVM, deployed through the loader). Every test here failed on the program before the fix."""
from __future__ import annotations

from solders.account import Account
from solders.instruction import AccountMeta
from solders.keypair import Keypair
from solders.system_program import ID as SYSTEM_PROGRAM
from test_coordinator_negative import CFG, expect, with_metas

from coordinator_sdk.codec import ANYONE
from coordinator_sdk.participation import participants_bitmap
from coordinator_sdk.shuffle import elected_witnesses
from devtools.differential import next_round_seed
from devtools.litesvm_harness import CoordinatorSvm, Run

GOAL = 30_000


class Drive:
    """A run with n clients and helpers to move it: every call asserts the transaction landed."""

    def __init__(self, h: CoordinatorSvm, n: int, run_id: str = "sec", **cfg: int) -> None:
        self.h, self.cfg = h, {**CFG, "init_min_clients": n, "min_clients": min(n, 2), "witness_nodes": 0,
                               "global_batch_size_start": max(8, n), "global_batch_size_end": max(8, n), **cfg}
        self.run: Run = h.create_run(run_id, config=self.cfg, rates=(1000, 7))
        self.users = [h.fund(Keypair(), 10**9) for _ in range(n)]
        self.by_key = {bytes(u.pubkey()): u for u in self.users}
        self.cus: dict[str, int] = {}

    def ok(self, res, label: str = ""):
        assert res.ok, (res.error_name, res.logs[-3:])
        if label:
            self.cus[label] = max(self.cus.get(label, 0), res.cu)
        return res

    def st(self):
        return self.h.state(self.run)

    def epoch_signers(self) -> list[bytes]:
        st = self.st()
        return [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]

    def tick(self, label: str = "tick"):
        return self.ok(self.h.client(self.run, "tick", self.users[0]), label)

    def to_warmup(self) -> None:
        self.ok(self.h.owner(self.run, "set_paused", False))
        for u in self.users:
            self.ok(self.h.join(self.run, u), "join_run")
        self.h.advance(2)
        self.tick("tick: WaitingForMembers -> Warmup")
        assert self.st().run_state == 2

    def to_round(self) -> None:
        self.to_warmup()
        self.h.advance(0)
        for k in self.epoch_signers()[:32]:
            self.ok(self.h.client(self.run, "warmup_witness", self.by_key[k]), "warmup_witness")
        assert self.st().run_state == 3

    def elected(self) -> list[bytes]:
        st = self.st()
        r = st.rounds[st.rounds_head]
        signers = self.epoch_signers()
        return [signers[i] for i in elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes)]

    def bits(self, delivered: list[bytes]) -> list[int]:
        """Participant bits for the `delivered` signers, by their index in the current round."""
        seen = set(delivered)
        return list(participants_bitmap(i for i, k in enumerate(self.epoch_signers()) if k in seen))

    def witness(self, signer: bytes, delivered: list[bytes], merkle: bytes = bytes(32)):
        self.h.advance(0)
        return self.h.client(self.run, "witness", self.by_key[signer], self.bits(delivered), [0] * 192,
                             list(merkle), self.st().step, 0.0, 0.0, 0.0)

    def play_round(self, posting: list[bytes] | None = None, delivered: list[bytes] | None = None) -> None:
        delivered = self.epoch_signers() if delivered is None else delivered
        for k in self.elected() if posting is None else posting:
            self.ok(self.witness(k, delivered), "witness")
        if self.st().run_state == 3:
            self.h.advance(self.cfg["max_round_train_time"])
            self.tick("tick: RoundTrain -> RoundWitness")
        self.h.advance(self.cfg["round_witness_time"])
        self.tick("tick: RoundWitness -> next")


# ---- 1: every instruction linear, a whole 256-client epoch within 30k CU --------------------------------
def test_a_256_client_epoch_ends_within_the_compute_goal() -> None:
    d = Drive(CoordinatorSvm(), 256, witness_nodes=1, min_clients=1, epoch_time=25)
    d.to_round()
    while d.st().run_state in (3, 4):
        d.play_round()
    assert d.st().run_state == 5
    d.h.advance(d.cfg["cooldown_time"])
    d.tick("tick: Cooldown -> WaitingForMembers (pays 256)")  # was ~479k CU: over the 200k budget
    st = d.st()
    assert st.run_state == 1 and st.epoch == 1
    assert all(st.clients[i].earned == 1000 // 256 for i in range(256))
    assert max(d.cus.values()) <= GOAL, d.cus


# ---- 2: the last witness cannot choose the next election --------------------------------------------------
def test_a_late_witness_cannot_steer_the_next_seed() -> None:
    """Issue 21: the next seed is fixed by the hash of the slot the round began in, so a late witness (which
    may now end the round in its own transaction) posts into a seed everyone already knows."""
    d = Drive(CoordinatorSvm(), 3, witness_nodes=2, min_clients=2)
    d.to_round()
    start = d.st()
    round_slot = start.seed_slot  # the slot the round began in
    first, last = d.elected()
    d.ok(d.witness(first, d.epoch_signers()))  # a later slot: this instruction captures the seed
    assert any(s == round_slot for s, _ in d.h.svm.get_slot_hashes())  # the real hash, not the fallback
    want = next_round_seed(start.rounds[start.rounds_head].random_seed, d.h.svm.get_slot_hashes(), round_slot)
    st = d.st()
    assert st.seed_captured == 1 and st.next_seed == want and st.seed_slot == round_slot
    d.h.advance(d.cfg["max_round_train_time"])
    d.tick()
    d.h.advance(d.cfg["round_witness_time"])  # the round may end now: the next to land ends it
    before = d.st()
    d.ok(d.witness(last, d.epoch_signers(), merkle=b"\xee" * 32))
    st = d.st()
    assert st.step == before.step + 1 and st.run_state == 3  # the late witness's own tick started the round
    assert st.rounds[st.rounds_head].random_seed == want  # its merkle root and timing played no part
    assert st.seed_slot == d.h.slot and st.seed_captured == 0  # the round after: this slot's hash


# ---- 3: 256 sybils cannot lock an open run; points are never dropped ------------------------------------
def test_256_sybils_that_rejoin_every_epoch_cannot_lock_out_newcomers() -> None:
    h = CoordinatorSvm()
    run = h.create_run("sybil", config={**CFG, "global_batch_size_end": 1000})
    assert h.owner(run, "set_paused", False).ok
    sybils = [h.fund(Keypair(), 10**7) for _ in range(256)]
    for s in sybils:
        assert h.join(run, s).ok
    for s in sybils[:8]:  # rejoining for the next epoch protected them before
        assert h.join(run, s).ok
    newcomers = [h.fund(Keypair(), 10**7) for _ in range(3)]
    for n in newcomers:
        res = h.join(run, n)
        assert res.ok and res.cu <= GOAL, (res.error_name, res.cu)
    st = h.state(run)
    registered = {bytes(st.clients[i].signer) for i in range(st.num_clients)}
    assert st.num_clients == 256 and all(bytes(n.pubkey()) in registered for n in newcomers)


def test_full_registry_evicts_dropped_sybils_and_keeps_earners() -> None:
    d = Drive(CoordinatorSvm(), 4, global_batch_size_start=4, global_batch_size_end=4, witness_nodes=0,
              epoch_time=25)
    honest, sybils = d.users[:2], d.users[2:]
    d.to_round()
    good = [bytes(u.pubkey()) for u in honest]
    d.play_round(delivered=good)  # honest witnesses never see the sybils train: the round's end drops them
    st = d.st()
    assert {bytes(st.exited_clients[i].signer) for i in range(st.num_exited_clients)
            if st.exited_clients[i].state == 1} == {bytes(s.pubkey()) for s in sybils}
    while d.st().run_state in (3, 4):
        d.play_round(posting=[k for k in d.elected() if k in good], delivered=good)
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    st = d.st()
    assert st.run_state == 1 and st.epoch == 1
    for u in d.users:  # everybody rejoins for the next epoch; the registry is full
        d.ok(d.h.join(d.run, u))
    newcomer = d.h.fund(Keypair())
    d.ok(d.h.join(d.run, newcomer))  # was MoreClientsThanBatches: the sybils had rejoined
    st = d.st()
    by_key = {bytes(st.clients[i].signer): st.clients[i] for i in range(st.num_clients)}
    assert bytes(newcomer.pubkey()) in by_key
    assert all(by_key[k].earned == 1000 // 4 for k in good)  # earners are never evicted
    assert sum(bytes(s.pubkey()) in by_key for s in sybils) == 1


# ---- 4: a lone witness cannot decide health --------------------------------------------------------------
def test_a_lone_witness_cannot_drop_the_others() -> None:
    d = Drive(CoordinatorSvm(), 4, witness_nodes=0)
    d.to_round()
    d.play_round()
    attacker = d.elected()[0]
    d.ok(d.witness(attacker, [attacker]))  # the other elected witnesses stay silent
    victim = next(i for i, k in enumerate(d.epoch_signers()) if k != attacker)
    expect(d.h, d.run, "ClientIsHealthy",
           lambda: d.h.client(d.run, "health_check", d.by_key[attacker], victim))
    d.play_round(posting=[])  # nor does the round's end: 1 of 4 elected witnesses is under the quorum (2)
    st = d.st()
    assert st.run_state == 3 and st.num_epoch_clients == 4 and st.num_exited_clients == 0


# ---- 5: grants die with the run ---------------------------------------------------------------------------
def _close(h: CoordinatorSvm, run: Run) -> None:
    assert h.send(h.codec.ix("close_run", accounts={"authority": run.owner.pubkey(), "instance": run.instance,
                                                    "coordinator_account": run.account}), [run.owner]).ok


def test_grants_of_a_closed_run_do_not_carry_over() -> None:
    h = CoordinatorSvm()
    first = h.create_run("reborn", open_to_all=True)
    friend = h.fund(Keypair())
    assert h.send(h.codec.authorize("authorize", first.owner.pubkey(), first.instance, friend.pubkey(),
                                    first.account), [first.owner]).ok
    old_anyone = h.codec.authorization_pda(first.instance, ANYONE, first.account)
    old_friend = h.codec.authorization_pda(first.instance, friend.pubkey(), first.account)
    _close(h, first)
    second = h.create_run("reborn", open_to_all=False, config=CFG)  # another owner, same run_id
    assert second.instance == first.instance and second.account != first.account
    stranger = h.fund(Keypair())
    for user, grant in ((stranger, old_anyone), (friend, old_friend)):  # the old grants, passed explicitly
        ix = with_metas(h.codec.join_run(user.pubkey(), second.instance, second.account, user.pubkey(), "h"),
                        lambda m, grant=grant: m.__setitem__(3, AccountMeta(grant, False, False)))
        expect(h, second, "InvalidPda", lambda ix=ix, user=user: h.send(ix, [user]), grant)
    # nor can the new run's join authority collect the old grants' rent
    held = h.raw(old_friend).lamports
    revoke = h.codec.authorize("revoke", second.owner.pubkey(), second.instance, friend.pubkey(), first.account)
    expect(h, second, "InvalidPda", lambda: h.send(revoke, [second.owner]), old_friend)
    assert h.raw(old_friend).lamports == held


# ---- 6: pre-funding a PDA does not squat it ----------------------------------------------------------------
def test_prefunded_pdas_can_still_be_created() -> None:
    h = CoordinatorSvm()
    squatter = h.fund(Keypair())
    instance = h.codec.instance_pda("squatted")
    h.svm.set_account(instance, Account(2_000_000, b"", SYSTEM_PROGRAM, False, 0))  # a transfer would do it
    run = h.create_run("squatted", open_to_all=False)
    assert h.raw(run.instance).owner == h.codec.program_id and len(h.raw(run.instance).data) == 144
    grant = h.codec.authorization_pda(run.instance, ANYONE, run.account)
    for lamports in (1, 10**9):  # below and above the rent-exempt minimum
        h.svm.set_account(grant, Account(lamports, b"", SYSTEM_PROGRAM, False, 0))
        assert h.send(h.codec.authorize("authorize", run.owner.pubkey(), run.instance, ANYONE, run.account),
                      [run.owner]).ok
        acc = h.raw(grant)
        assert acc.owner == h.codec.program_id and len(acc.data) == 80
        assert acc.lamports >= h.svm.minimum_balance_for_rent_exemption(80)
        assert h.send(h.codec.authorize("revoke", run.owner.pubkey(), run.instance, ANYONE, run.account),
                      [run.owner]).ok
    assert h.join(run, squatter).error_name == "NotAuthorized"


# ---- 9: P2P keys are unique ----------------------------------------------------------------------------------
def test_a_p2p_key_cannot_be_claimed_twice() -> None:
    h = CoordinatorSvm()
    run = h.create_run("p2p", config=CFG)
    victim, attacker = h.fund(Keypair()), h.fund(Keypair())
    key = Keypair().pubkey()
    assert h.send(h.codec.join_run(victim.pubkey(), run.instance, run.account, key, "10.0.0.1:1"), [victim]).ok
    expect(h, run, "P2pKeyTaken", lambda: h.send(h.codec.join_run(
        attacker.pubkey(), run.instance, run.account, key, "6.6.6.6:1"), [attacker]))
    assert h.send(h.codec.join_run(victim.pubkey(), run.instance, run.account, key, "10.0.0.2:1"), [victim]).ok


def test_a_squatted_p2p_key_is_taken_back_with_its_signature() -> None:
    """Uniqueness alone would let a wallet that saw a victim's (public) P2P key register it first and lock
    the victim out; a join signed by the P2P key itself takes it back."""
    h = CoordinatorSvm()
    run = h.create_run("p2p-back", config=CFG)
    victim, squatter, node = h.fund(Keypair()), h.fund(Keypair()), Keypair()
    assert h.send(h.codec.join_run(squatter.pubkey(), run.instance, run.account, node.pubkey(), "6.6.6.6:1"),
                  [squatter]).ok
    plain = h.codec.join_run(victim.pubkey(), run.instance, run.account, node.pubkey(), "10.0.0.1:1")
    expect(h, run, "P2pKeyTaken", lambda: h.send(plain, [victim]))
    proven = h.codec.join_run(victim.pubkey(), run.instance, run.account, node.pubkey(), "10.0.0.1:1",
                              prove_p2p=True)
    other = Keypair()  # a signature by another key proves nothing
    forged = with_metas(proven, lambda m: m.__setitem__(5, AccountMeta(other.pubkey(), True, False)))
    expect(h, run, "P2pKeyTaken", lambda: h.send(forged, [victim, other]))
    assert h.send(proven, [victim, node]).ok
    st = h.state(run)
    keys = {bytes(st.clients[i].signer): bytes(st.clients[i].p2p) for i in range(st.num_clients)}
    assert keys[bytes(victim.pubkey())] == bytes(node.pubkey())
    assert keys[bytes(squatter.pubkey())] == bytes(squatter.pubkey())  # falls back to its own wallet key
    expect(h, run, "P2pKeyTaken", lambda: h.send(h.codec.join_run(
        squatter.pubkey(), run.instance, run.account, node.pubkey(), "6.6.6.6:1"), [squatter]))


# ---- 10: withdrawn or dropped clients cannot act -------------------------------------------------------------
def test_a_withdrawn_client_cannot_checkpoint_or_witness() -> None:
    d = Drive(CoordinatorSvm(), 4, witness_nodes=0)
    d.to_round()
    leaver = d.by_key[d.elected()[0]]
    d.ok(d.h.client(d.run, "withdraw", leaver))
    expect(d.h, d.run, "ClientNotHealthy", lambda: d.witness(bytes(leaver.pubkey()), d.epoch_signers()))
    d.ok(d.h.owner(d.run, "set_paused", True))  # the epoch ends after this round: Cooldown, where votes are taken
    d.play_round(posting=[k for k in d.elected() if k != bytes(leaver.pubkey())])
    assert d.st().run_state == 5
    expect(d.h, d.run, "SignerNotAClient", lambda: d.h.client(d.run, "checkpoint", leaver, "hf://evil/weights"))
    late = d.by_key[d.epoch_signers()[0]]
    d.ok(d.h.client(d.run, "withdraw", late))  # withdrawn in Cooldown: still listed, not healthy
    expect(d.h, d.run, "ClientNotHealthy", lambda: d.h.client(d.run, "checkpoint", late, "hf://evil/weights"))


def test_a_dropped_client_cannot_report_others() -> None:
    d = Drive(CoordinatorSvm(), 4, witness_nodes=0)
    d.to_round()
    signers = d.epoch_signers()
    lazy = signers[3]
    for k in signers[:3]:
        d.ok(d.witness(k, signers[:3]))
    d.ok(d.h.client(d.run, "health_check", d.by_key[signers[0]], 3))
    expect(d.h, d.run, "ClientNotHealthy", lambda: d.h.client(d.run, "health_check", d.by_key[lazy], 0))


# ---- 11: warmup votes belong to identities, not positions ----------------------------------------------------
def test_a_withdrawal_in_warmup_neither_doubles_a_vote_nor_refuses_one() -> None:
    d = Drive(CoordinatorSvm(), 4, witness_nodes=0, min_clients=2)
    d.to_warmup()
    d.h.advance(0)
    a, b, c, e = (d.by_key[k] for k in d.epoch_signers())
    d.ok(d.h.client(d.run, "warmup_witness", b))  # b votes at index 1
    d.ok(d.h.client(d.run, "warmup_witness", e))  # e votes at index 3
    d.ok(d.h.client(d.run, "withdraw", a))  # compaction: b -> 0, c -> 1, e -> 2
    d.ok(d.h.client(d.run, "warmup_witness", c))  # index 1 again: was refused as a duplicate of b's vote
    assert d.st().run_state == 3  # b, c, e: the three remaining clients voted, round 0 starts
    d2 = Drive(CoordinatorSvm(), 4, run_id="sec2", witness_nodes=0, min_clients=2)
    d2.to_warmup()
    d2.h.advance(0)
    a, b, c, e = (d2.by_key[k] for k in d2.epoch_signers())
    d2.ok(d2.h.client(d2.run, "warmup_witness", e))
    d2.ok(d2.h.client(d2.run, "withdraw", a))
    d2.ok(d2.h.client(d2.run, "warmup_witness", e))  # one client, two positions: still one vote
    d2.ok(d2.h.client(d2.run, "warmup_witness", b))
    assert d2.st().run_state == 2  # 2 of 3 voted: round 0 waits for c (or the timeout)


def test_a_prefunded_pubkey_sized_account_is_not_an_authorization() -> None:
    """A lamports-only account at an authorization address grants nothing until authorize creates it."""
    h = CoordinatorSvm()
    run = h.create_run("nogrant", open_to_all=False, config=CFG)
    grant = h.codec.authorization_pda(run.instance, ANYONE, run.account)
    h.svm.set_account(grant, Account(10**9, b"", SYSTEM_PROGRAM, False, 0))
    assert h.join(run, h.fund(Keypair())).error_name == "NotAuthorized"
