"""Issue 14, item 12: where the program and the reference model disagreed, and the model rules added with the
hardening (each failed before: a divergence, a model crash, or a rule only the program had)."""
from __future__ import annotations

import pytest
from solders.keypair import Keypair
from test_model_scenarios import CFG, KEYS, Run, seed_at, to_first_round

from coordinator_sdk.model import Config, Machine, RunState
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import RegisteredClient
from coordinator_sdk.shuffle import elected_witnesses
from devtools.differential import DiffRun

U64 = 2**64 - 1


def test_the_model_refuses_warmup_tokens_above_2_pow_47() -> None:
    m = Machine()
    with pytest.raises(E.InvalidConfig, match="2\\^47"):
        m.update_config(Config(**{**CFG.__dict__, "global_batch_size_warmup_tokens": 2**47 + 1}))
    m.update_config(Config(**{**CFG.__dict__, "global_batch_size_warmup_tokens": 2**47}))


def test_an_epoch_time_near_u64_max_never_ends_the_epoch_on_either_side() -> None:
    cfg = Config(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2, epoch_time=U64,
                 total_steps=50, init_min_clients=2, min_clients=1, witness_nodes=0, global_batch_size_start=4,
                 global_batch_size_end=4, waiting_for_members_extra_time=1, max_seq_len=64)
    d = DiffRun(cfg, run_id="u64-epoch")
    users = [d.h.fund(Keypair()) for _ in range(2)]
    by_key = {bytes(u.pubkey()): u for u in users}
    d.set_paused(False)
    for u in users:
        d.join(u)
    d.h.advance(2)
    d.client("tick", users[0])
    d.h.advance(0)
    for u in users:
        d.client("warmup_witness", u)
    for _ in range(6):  # the program used to wrap start + epoch_time and end the epoch after three rounds
        st = d.chain_state()
        r = st.rounds[st.rounds_head]
        signers = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
        for i in elected_witnesses(r.clients_len, r.random_seed, 0):
            d.h.advance(1)
            d.witness(by_key[signers[i]], signers)
        d.h.advance(cfg.round_witness_time)
        d.client("tick", users[0])
    st = d.chain_state()
    assert st.run_state == 3 and st.last_step == 0 and st.step == 7


def test_a_silent_witness_whose_registry_slot_was_reused_is_skipped() -> None:
    cfg = Config(**{**CFG.__dict__, "witness_nodes": 2, "min_clients": 2})
    run = Run(cfg)
    to_first_round(run)
    r = run.s.current_round
    idle = elected_witnesses(r.clients_len, r.random_seed, 2)[0]
    slot = run.s.epoch_state.clients[idle].registry_index
    newcomer = RegisteredClient(KEYS[4], KEYS[4])
    run.s.clients[slot] = newcomer  # the slot changed hands (the model used to raise StopIteration here)
    run.witness_round(skip=(idle,))
    run.tick(cfg.max_round_train_time)
    run.tick(cfg.round_witness_time)
    assert run.s.run_state == RunState.Cooldown and newcomer.slashed == 0


def test_model_keeps_p2p_keys_unique_and_acts_only_for_healthy_clients() -> None:
    run = Run()
    run.m.join_run(KEYS[0], b"P" * 32, b"", run.now, seed_at(run.now))
    with pytest.raises(E.P2pKeyTaken):
        run.m.join_run(KEYS[1], b"P" * 32, b"", run.now, seed_at(run.now))
    run2 = Run(Config(**{**CFG.__dict__, "total_steps": 2}))
    to_first_round(run2)
    run2.witness_round()
    run2.tick(CFG.round_witness_time)
    assert run2.s.run_state == RunState.Cooldown  # checkpoint votes are taken in Cooldown only
    run2.m.withdraw(KEYS[0], run2.at(0), 1)
    with pytest.raises(E.ClientNotHealthy):
        run2.m.checkpoint(KEYS[0], b"hf://x", run2.now, 1)
    for k in KEYS[1:3]:  # 2 of the 3 healthy clients: a majority
        run2.m.checkpoint(k, b"hf://ok", run2.now, 1)
    assert run2.s.checkpoint == b"hf://ok"
