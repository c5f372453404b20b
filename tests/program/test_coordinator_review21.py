"""Issue 21 (adversarial review) on the program, in LiteSVM: the checkpoint cannot be rewritten after the epoch
that voted it, P2P keys stay unique through the squat fallback, the next round's seed is nobody's choice, and
the integer edges (u32 last_step, u64 nonce / next_active / data index) behave as the model says. Every
refusal is named and leaves the accounts byte-identical; tests driven through DiffRun also compare the model."""
from __future__ import annotations

from solders.keypair import Keypair
from test_coordinator_negative import expect
from test_coordinator_security import Drive

from coordinator_sdk.deadlines import tick_due_at
from coordinator_sdk.model import Config
from coordinator_sdk.participation import participants_bitmap
from devtools.differential import DiffRun, next_round_seed, shared_p2p_keys
from devtools.fuzz import BASE
from devtools.litesvm_harness import CoordinatorSvm, Run

GOOD, EVIL = "sha256:agreed@p2p", "sha256:mine@6.6.6.6"
U32, U64 = 2**32 - 1, 2**64 - 1


def checkpoint(d: Drive) -> str:
    st = d.st()
    return bytes(st.checkpoint[:st.checkpoint_len]).decode()


def vote_good(d: Drive) -> None:
    for k in d.epoch_signers():
        d.ok(d.h.client(d.run, "checkpoint", d.by_key[k], GOOD))
    assert checkpoint(d) == GOOD


# ---- item 3: a checkpoint outlives its epoch unchanged --------------------------------------------------------
def test_a_finished_runs_checkpoint_cannot_be_rewritten_by_its_last_epoch() -> None:
    d = Drive(CoordinatorSvm(), 3, run_id="fin-ckpt", total_steps=2)
    d.to_round()
    d.play_round()
    assert d.st().run_state == 5  # total_steps reached: this Cooldown ends the run
    vote_good(d)
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    assert d.st().run_state == 6
    for u in d.users:  # healthy clients of the last epoch
        expect(d.h, d.run, "WrongState", lambda u=u: d.h.client(d.run, "checkpoint", u, EVIL))
    expect(d.h, d.run, "RunFinished", lambda: d.h.owner(d.run, "set_checkpoint", EVIL))
    assert checkpoint(d) == GOOD


def test_a_previous_epochs_client_cannot_repoint_the_next_epoch() -> None:
    d = Drive(CoordinatorSvm(), 3, run_id="next-ckpt", min_clients=3)
    d.to_round()
    leaver = d.users[2]
    d.ok(d.h.client(d.run, "withdraw", leaver))
    d.play_round(posting=[k for k in d.elected() if k != bytes(leaver.pubkey())])
    assert d.st().run_state == 5 and d.st().num_epoch_clients == 2  # too few for another round
    vote_good(d)
    d.h.advance(d.cfg["cooldown_time"])
    d.tick()
    assert d.st().run_state == 1  # WaitingForMembers: the next epoch starts from GOOD
    for u in d.users:
        expect(d.h, d.run, "WrongState", lambda u=u: d.h.client(d.run, "checkpoint", u, EVIL))
    for u in d.users:  # rejoined for the next epoch, still before it began
        d.ok(d.h.join(d.run, u))
    assert d.st().run_state == 1
    for u in d.users:
        expect(d.h, d.run, "WrongState", lambda u=u: d.h.client(d.run, "checkpoint", u, EVIL + "/2"))
    assert checkpoint(d) == GOOD


# ---- item 4: the squat fallback never duplicates a P2P key ----------------------------------------------------
def _join(h: CoordinatorSvm, run: Run, user: Keypair, key, prove: Keypair | None = None):
    ix = h.codec.join_run(user.pubkey(), run.instance, run.account, key, "10.0.0.1:1", prove_p2p=prove is not None)
    return h.send(ix, [user, *([prove] if prove else [])])


def _keys(h: CoordinatorSvm, run: Run) -> dict[bytes, bytes]:
    st = h.state(run)
    assert shared_p2p_keys(st) == []
    return {bytes(st.clients[i].signer): bytes(st.clients[i].p2p) for i in range(st.num_clients)}


def test_the_squat_chain_cannot_make_two_entries_share_a_key() -> None:
    """A squats V's node key; B tries A's wallet key (refused: a wallet key belongs to its wallet, even with A's
    signature); V proves its node key and A falls back to its own wallet key, which nobody else holds."""
    h = CoordinatorSvm()
    run = h.create_run("p2p-chain", config={**BASE.__dict__, "init_min_clients": 3})
    assert h.owner(run, "set_paused", False).ok
    a, b, v, node = h.fund(Keypair()), h.fund(Keypair()), h.fund(Keypair()), Keypair()
    assert _join(h, run, a, node.pubkey()).ok
    expect(h, run, "P2pKeyTaken", lambda: _join(h, run, b, a.pubkey()))
    expect(h, run, "P2pKeyTaken", lambda: _join(h, run, b, a.pubkey(), prove=a))
    assert _join(h, run, b, b.pubkey()).ok
    assert _join(h, run, v, node.pubkey(), prove=node).ok
    assert _keys(h, run) == {bytes(a.pubkey()): bytes(a.pubkey()), bytes(b.pubkey()): bytes(b.pubkey()),
                             bytes(v.pubkey()): bytes(node.pubkey())}
    h.advance(BASE.waiting_for_members_extra_time)
    assert h.client(run, "tick", a).ok
    st = h.state(run)
    assert st.run_state == 2 and st.num_epoch_clients == 3 and shared_p2p_keys(st) == []


def test_a_wallet_takes_its_own_key_back_when_it_joins() -> None:
    """B registers A's wallet key before A ever joined; A's join (signed by that key) takes it back, so the
    fallback of the squat chain lands on a key nobody else holds."""
    h = CoordinatorSvm()
    run = h.create_run("p2p-back21", config=BASE.__dict__)
    a, b, v, node = h.fund(Keypair()), h.fund(Keypair()), h.fund(Keypair()), Keypair()
    assert _join(h, run, b, a.pubkey()).ok  # A is not registered yet: first come
    assert _join(h, run, a, node.pubkey()).ok  # squats V's node key, and takes its wallet key back from B
    assert _keys(h, run) == {bytes(a.pubkey()): bytes(node.pubkey()), bytes(b.pubkey()): bytes(b.pubkey())}
    assert _join(h, run, v, node.pubkey(), prove=node).ok
    keys = _keys(h, run)
    assert keys[bytes(a.pubkey())] == bytes(a.pubkey()) and keys[bytes(v.pubkey())] == bytes(node.pubkey())
    expect(h, run, "P2pKeyTaken", lambda: _join(h, run, b, a.pubkey()))  # nor may B take it again


# ---- item 8: the next round's seed is nobody's choice ---------------------------------------------------------
def _two_runs_in_one_round(h: CoordinatorSvm) -> tuple[Drive, Drive]:
    """Two runs in one LiteSVM (same slot hashes) whose Warmups and first rounds begin in the same slots."""
    runs = [Drive(h, 4, run_id=f"seed-{x}", witness_nodes=0, min_clients=2) for x in "ab"]
    for d in runs:
        d.ok(d.h.owner(d.run, "set_paused", False))
        for u in d.users:
            d.ok(d.h.join(d.run, u))
    h.advance(2)
    for d in runs:
        d.tick()
    h.advance(0)
    for d in runs:
        for k in d.epoch_signers():
            d.ok(d.h.client(d.run, "warmup_witness", d.by_key[k]))
    a, b = (d.st() for d in runs)
    assert a.run_state == b.run_state == 3 and a.seed_slot == b.seed_slot
    assert a.rounds[0].random_seed == b.rounds[0].random_seed
    return runs[0], runs[1]


def test_the_next_seed_is_the_same_whether_the_last_witness_posts_and_whenever_the_tick_lands() -> None:
    h = CoordinatorSvm()
    posts, silent = _two_runs_in_one_round(h)
    elected = posts.elected()
    assert len(elected) == 4 and [posts.epoch_signers().index(k) for k in elected] == \
        [silent.epoch_signers().index(k) for k in silent.elected()]
    for k in elected:  # every elected witness posts
        posts.ok(posts.witness(k, posts.epoch_signers()))
    for k in silent.elected()[:3]:  # the last elected witness stays silent
        silent.ok(silent.witness(k, silent.epoch_signers()))
    h.advance(posts.cfg["round_witness_time"])
    posts.tick()  # a prompt tick
    silent.h.advance(silent.cfg["max_round_train_time"])
    silent.tick()
    assert silent.st().run_state == 4
    for _ in range(600):  # the round's start slot leaves SlotHashes (512 entries) before this tick lands
        h.advance(0)
    h.advance(silent.cfg["round_witness_time"])
    silent.tick()
    a, b = posts.st(), silent.st()
    assert a.run_state == b.run_state == 3 and a.rounds[a.rounds_head].height == b.rounds[b.rounds_head].height == 1
    assert a.rounds[a.rounds_head].random_seed == b.rounds[b.rounds_head].random_seed


def test_a_seed_never_captured_falls_back_to_a_fixed_value() -> None:
    """When no instruction lands in a later slot while the round's start slot is in SlotHashes, the seed uses
    32 zero bytes for its hash: deterministic, and still no party's choice."""
    d = Drive(CoordinatorSvm(), 3, run_id="seed-fallback", witness_nodes=0)
    d.to_round()
    start = d.st()
    for k in d.elected():  # all in the round's own slot: nothing can capture the seed yet
        d.ok(d.h.client(d.run, "witness", d.by_key[k], list(participants_bitmap(range(start.rounds[0].clients_len))),
                        [0] * 192, [0] * 32, start.step, 0.0, 0.0, 0.0))
    assert d.st().run_state == 4 and d.st().seed_captured == 0
    for _ in range(520):
        d.h.advance(0)
    d.h.advance(d.cfg["round_witness_time"])
    d.tick()
    st = d.st()
    assert all(s != start.seed_slot for s, _ in d.h.svm.get_slot_hashes())
    assert st.rounds[st.rounds_head].random_seed == next_round_seed(start.rounds[0].random_seed, [], start.seed_slot)


# ---- item 9: integer edges, program and model alike -----------------------------------------------------------
def _diff(**over: int) -> tuple[DiffRun, list[Keypair]]:
    d = DiffRun(Config(**{**BASE.__dict__, **over}), run_id="edges")
    users = [d.h.fund(Keypair()) for _ in range(3)]
    return d, users


def _two_in_warmup(d: DiffRun, users: list[Keypair]) -> None:
    """Two clients join and the tick starts the Warmup; then one slot passes (round 0 starts in a later slot)."""
    for u in users[:2]:
        d.join(u)
    d.h.advance(1)
    d.client("tick", users[0])
    d.h.advance(0)


def _refused_alike(d: DiffRun, name: str, step) -> None:
    before = bytes(d.h.svm.get_account(d.run.account).data)
    res = step()
    assert res.chain.error_name == name and res.model_error == name
    assert bytes(d.h.svm.get_account(d.run.account).data) == before


def test_last_step_saturates_at_u32_max_and_the_run_ends_at_total_steps() -> None:
    d, users = _diff(total_steps=U32, epoch_time=10)
    d.update_progress(U32 - 2)
    d.set_paused(False)
    _two_in_warmup(d, users)
    for u in users[:2]:
        d.client("warmup_witness", u)
    assert d.chain_state().run_state == 3
    for _ in range(2):  # both clients are elected: both post, then epoch_time has passed
        st = d.chain_state()
        for i in range(st.num_epoch_clients):
            d.witness(users[[bytes(u.pubkey()) for u in users].index(bytes(st.epoch_clients[i].signer))],
                      [bytes(u.pubkey()) for u in users])
        d.h.advance(10)
        d.client("tick", users[0])
        st = d.chain_state()
        if st.step == U32 - 1:  # step + 2 would wrap to 0 as a u32: the chain (and the model) store u32::MAX
            assert st.last_step == U32 and d.m.state.epoch_state.last_step == U32 and st.run_state == 3
    st = d.chain_state()
    assert st.step == U32 and st.run_state == 5  # total_steps ended the epoch, and Cooldown then the run
    d.h.advance(BASE.cooldown_time)
    d.client("tick", users[0])
    assert d.chain_state().run_state == 6


def test_a_nonce_at_u64_max_refuses_every_instruction() -> None:
    d, users = _diff()
    d.set_paused(False)
    d.join(users[0])
    d.poke("nonce", U64)
    _refused_alike(d, "ArithmeticOverflow", lambda: d.join(users[1]))
    _refused_alike(d, "ArithmeticOverflow", lambda: d.client("tick", users[0]))
    _refused_alike(d, "WrongState", lambda: d.client("checkpoint", users[0], GOOD))  # other refusals first


def test_next_active_at_u64_max_refuses_the_epochs_first_round_and_a_resume() -> None:
    d, users = _diff()
    d.set_paused(False)
    _two_in_warmup(d, users)
    assert d.chain_state().run_state == 2
    d.poke("next_active", U64)
    d.client("warmup_witness", users[0])  # one vote: no round yet, accepted
    _refused_alike(d, "ArithmeticOverflow", lambda: d.client("warmup_witness", users[1]))
    d.set_paused(True)
    assert d.chain_state().run_state == 7
    _refused_alike(d, "ArithmeticOverflow", lambda: d.set_paused(False))


def test_a_data_index_at_u64_max_refuses_the_next_round_and_the_epoch_end() -> None:
    d, users = _diff()
    d.set_paused(False)
    _two_in_warmup(d, users)
    for u in users[:2]:
        d.client("warmup_witness", u)
    st = d.chain_state()
    for i in range(st.num_epoch_clients):
        d.witness(users[[bytes(u.pubkey()) for u in users].index(bytes(st.epoch_clients[i].signer))],
                  [bytes(u.pubkey()) for u in users])
    d.poke("data_index", U64 - 2)  # + a batch of 4 overflows
    d.h.advance(BASE.round_witness_time)
    _refused_alike(d, "ArithmeticOverflow", lambda: d.client("tick", users[0]))
    d.set_paused(True)  # pending: the round ends in Cooldown instead, whose end adds the batch too
    d.h.advance(0)
    d.client("tick", users[0])
    assert d.chain_state().run_state == 5
    d.h.advance(BASE.cooldown_time)
    _refused_alike(d, "ArithmeticOverflow", lambda: d.client("tick", users[1]))


def test_round_0_waits_for_a_slot_after_the_warmups_and_votes_past_32_only_tick() -> None:
    """Votes completing in the Warmup's own slot cannot start round 0 (its seed is that slot's hash, which does
    not exist yet); further votes in that slot are accepted and ignored; the next tick in a later slot starts it."""
    d = Drive(CoordinatorSvm(), 40, run_id="warm-slot", witness_nodes=0)
    d.to_warmup()
    warmup_slot = d.st().seed_slot
    for k in d.epoch_signers():  # all 40, in the Warmup's slot
        d.ok(d.h.client(d.run, "warmup_witness", d.by_key[k]))
    st = d.st()
    assert st.run_state == 2 and st.rounds[0].num_witnesses == 32 and d.h.slot == warmup_slot
    assert tick_due_at(st) == st.run_state_start_unix_timestamp + 1  # clients tick at once, not at the timeout
    d.h.advance(0)
    d.tick()
    st = d.st()
    assert st.run_state == 3 and st.rounds[0].height == 0
    assert st.rounds[0].random_seed == next_round_seed(0, d.h.svm.get_slot_hashes(), warmup_slot)
