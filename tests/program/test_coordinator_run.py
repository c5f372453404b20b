"""A whole training run on the real program (LiteSVM, deployed through the loader), checked against the
reference model after every instruction: joins, both warmup exits, rounds with elected witnesses, a
health check, pause/resume mid-epoch, several epochs, the idle-witness penalty, exact points, Finished."""
from __future__ import annotations

from solders.keypair import Keypair

from coordinator_sdk.model import Config
from coordinator_sdk.shuffle import elected_witnesses
from devtools.differential import DiffRun, next_round_seed

CFG = Config(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2, epoch_time=30,
             total_steps=20, init_min_clients=4, min_clients=2, witness_nodes=0, global_batch_size_start=8,
             global_batch_size_end=8, waiting_for_members_extra_time=1, max_seq_len=512)


def play_round(d: DiffRun, users: dict[bytes, Keypair], lazy: bytes | None = None, idle: bool = False) -> list[int]:
    """Elected witnesses post (all but the first one when `idle`); the round then ends by timeout or count."""
    st = d.chain_state()
    r = st.rounds[st.rounds_head]
    chosen = elected_witnesses(r.clients_len, r.random_seed, CFG.witness_nodes)
    epoch = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
    delivered = [k for k in epoch if k != lazy]
    for i in chosen[1:] if idle else chosen:
        d.h.advance(1)
        d.witness(users[epoch[i]], delivered)
    if lazy is not None:
        reporter = next(k for k in epoch if k != lazy)
        d.client("health_check", users[reporter], epoch.index(lazy))
        assert d.chain_state().epoch_clients[epoch.index(lazy)].state == 1  # Dropped
    if idle:
        d.h.advance(CFG.max_round_train_time)
        d.client("tick", users[epoch[0]])
    d.h.advance(CFG.round_witness_time)
    d.client("tick", users[epoch[0]])
    return chosen


def test_full_run_matches_the_model() -> None:
    d = DiffRun(CFG)
    users = {bytes(k.pubkey()): k for k in (d.h.fund(Keypair()) for _ in range(4))}
    keys = list(users.values())
    d.set_paused(False)
    for u in keys:
        d.join(u)
    d.h.advance(2)
    d.client("tick", keys[0])
    assert d.chain_state().run_state == 2  # Warmup
    d.h.advance(0)  # round 0 needs a slot after the warmup began (that slot's hash seeds it)
    for u in keys:  # warmup exit 1: every client witnesses the warmup
        d.client("warmup_witness", u)
    assert d.chain_state().run_state == 3  # RoundTrain

    lazy = bytes(keys[3].pubkey())
    play_round(d, users, lazy=lazy)  # the witnesses leave it out; a report drops it before the round ends
    st = d.chain_state()
    assert st.rounds[st.rounds_head].height == 1 and st.num_epoch_clients == 3
    assert [(bytes(c.signer), c.state) for c in st.exited_clients[:st.num_exited_clients]] == [(lazy, 1)]

    play_round(d, users, idle=True)  # one elected witness stays silent: it is penalised
    d.set_paused(True)  # mid-epoch: takes effect at the end of this round
    play_round(d, users)
    assert d.chain_state().run_state == 5  # Cooldown
    d.h.advance(CFG.cooldown_time)
    d.client("tick", keys[0])
    st = d.chain_state()
    assert st.run_state == 7 and st.epoch == 1  # Paused
    slashed = {bytes(c.signer): c.slashed for c in st.clients[:st.num_clients]}
    assert sorted(slashed.values()) == [0, 0, 0, 7]
    earned = {bytes(c.signer): c.earned for c in st.clients[:st.num_clients]}
    assert earned[lazy] == 0 and sorted(earned.values()) == [0, 250, 250, 250]

    d.set_paused(False)  # resume: everybody joins again (the dropped client too: it gets a new chance)
    for u in keys:
        d.join(u)
    d.h.advance(2)
    d.client("tick", keys[0])
    assert d.chain_state().run_state == 2
    d.h.advance(CFG.warmup_time)  # warmup exit 2: timeout
    d.client("tick", keys[0])
    assert d.chain_state().run_state == 3
    while d.chain_state().run_state in (3, 4):
        play_round(d, users)
    d.h.advance(CFG.cooldown_time)
    d.client("tick", keys[0])
    st = d.chain_state()
    assert st.epoch == 2
    while st.run_state != 6:  # epochs until total_steps
        if st.run_state == 1:
            for u in keys:
                d.join(u)
            d.h.advance(2)
            d.client("tick", keys[0])
            d.h.advance(0)
            for u in keys:
                d.client("warmup_witness", u)
        while d.chain_state().run_state in (3, 4):
            play_round(d, users)
        d.h.advance(CFG.cooldown_time)
        d.client("tick", keys[0])
        st = d.chain_state()
    assert st.step >= CFG.total_steps
    assert st.epoch >= 3
    earned = {bytes(c.signer): c.earned for c in st.clients[:st.num_clients]}
    later = (st.epoch - 1) * (1000 // 4)  # every epoch after the first: 4 healthy clients share 1000 points
    assert earned[lazy] == later
    for k in keys[:3]:
        assert earned[bytes(k.pubkey())] == 250 + later


def test_round_seed_is_the_hash_of_a_slot_after_the_last_input() -> None:
    d = DiffRun(Config(**{**CFG.__dict__, "init_min_clients": 2}))
    keys = [d.h.fund(Keypair()) for _ in range(2)]
    d.set_paused(False)
    for u in keys:
        d.join(u)
    d.h.advance(2)
    d.client("tick", keys[0])
    before = d.chain_state()
    warmup_slot = before.seed_slot
    assert warmup_slot == d.h.slot
    d.h.advance(0)
    for u in keys:  # the votes complete in a later slot: round 0 is seeded by the warmup's slot hash
        d.client("warmup_witness", u)
    st = d.chain_state()
    assert st.run_state == 3
    want = next_round_seed(before.rounds[before.rounds_head].random_seed, d.h.svm.get_slot_hashes(), warmup_slot)
    assert st.rounds[0].random_seed == want
