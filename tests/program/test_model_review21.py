"""Issue 21 (adversarial review) on the reference model: the same rules as tests/program/test_coordinator_review21.py
(the program); the differential fuzz (devtools/fuzz.py: the squat chain, u32/u64 edges, the P2P
uniqueness invariant after every op) checks both agree."""
from __future__ import annotations

import pytest
from test_model_checkpoint_quorum import GOOD, config, in_cooldown, start_epoch, vote
from test_model_scenarios import CFG, KEYS, NO_BROADCAST, Run, seed_at

from coordinator_sdk.model import Config, Machine, RunState
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import U32_MAX, U64_MAX
from coordinator_sdk.participation import participants_bitmap

EVIL = b"sha256:mine@6.6.6.6"
A, B, V, NODE = KEYS[0], KEYS[1], KEYS[2], b"\xee" * 32


def refused(run: Run, exc: type, call) -> None:
    before = (run.s.nonce, repr(run.s))
    with pytest.raises(exc):
        call()
    assert (run.s.nonce, repr(run.s)) == before


# ---- item 3 -------------------------------------------------------------------------------------------------
def test_a_finished_runs_checkpoint_cannot_be_rewritten_by_its_last_epoch() -> None:
    run = in_cooldown(3, total_steps=3)  # the pending pause is cleared below: this Cooldown ends the run
    run.s.pending_pause = False
    for c in run.s.epoch_state.clients:
        vote(run, c.signer, GOOD)
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Finished and run.s.checkpoint == GOOD
    for c in run.s.epoch_state.clients:
        refused(run, E.WrongState, lambda c=c: vote(run, c.signer, EVIL))
    refused(run, E.RunFinished, lambda: run.m.set_checkpoint(EVIL))


def test_a_previous_epochs_client_cannot_repoint_the_next_epoch() -> None:
    run = in_cooldown(3)
    run.s.pending_pause = False  # the epoch ends into WaitingForMembers
    for c in run.s.epoch_state.clients:
        vote(run, c.signer, GOOD)
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.WaitingForMembers
    for k in KEYS[:3]:
        refused(run, E.WrongState, lambda k=k: vote(run, k, EVIL))
    run.join_all(KEYS[:2])
    assert run.s.run_state == RunState.WaitingForMembers
    for k in KEYS[:3]:
        refused(run, E.WrongState, lambda k=k: vote(run, k, EVIL))
    assert run.s.checkpoint == GOOD


# ---- item 4 -------------------------------------------------------------------------------------------------
def join(run: Run, signer: bytes, p2p: bytes, proven: bool = False) -> None:
    run.m.join_run(signer, p2p, b"10.0.0.1:1", run.now, seed_at(run.now), p2p_proven=proven)


def keys(run: Run) -> dict[bytes, bytes]:
    found = [c.p2p for c in run.s.clients]
    assert len(set(found)) == len(found)
    return {c.signer: c.p2p for c in run.s.clients}


def test_the_squat_chain_cannot_make_two_entries_share_a_key() -> None:
    run = Run(config(3))
    join(run, A, NODE)  # squats V's node key
    refused(run, E.P2pKeyTaken, lambda: join(run, B, A))  # a wallet key belongs to its wallet
    refused(run, E.P2pKeyTaken, lambda: join(run, B, A, proven=True))  # even with its signature
    join(run, B, B)
    join(run, V, NODE, proven=True)
    assert keys(run) == {A: A, B: B, V: NODE}
    run.tick(1)
    assert run.s.run_state == RunState.Warmup
    epoch = [c.p2p for c in run.s.epoch_state.clients]
    assert len(epoch) == 3 and len(set(epoch)) == 3


def test_a_wallet_takes_its_own_key_back_when_it_joins() -> None:
    run = Run(config(3))
    join(run, B, A)  # A is not registered yet: first come
    join(run, A, NODE)  # its join is signed by its wallet key: B falls back to its own
    assert keys(run) == {A: NODE, B: B}
    join(run, V, NODE, proven=True)
    assert keys(run) == {A: A, B: B, V: NODE}
    refused(run, E.P2pKeyTaken, lambda: join(run, B, A))


# ---- item 8 -------------------------------------------------------------------------------------------------
def test_a_witness_post_does_not_move_seed_slot_and_round_0_waits_for_a_later_slot() -> None:
    run = Run(config(2))
    for k in KEYS[:2]:
        run.m.join_run(k, k, b"x", run.now, 0, slot=10)
    run.m.tick(run.at(1), 0, slot=11)
    assert run.s.run_state == RunState.Warmup and run.s.seed_slot == 11
    for c in run.s.epoch_state.clients:  # both vote in the warmup's own slot: its hash does not exist yet
        run.m.warmup_witness(c.signer, run.at(0), 0, slot=11)
    assert run.s.run_state == RunState.Warmup
    run.m.tick(run.at(0), seed_at(run.now), slot=12)
    assert run.s.run_state == RunState.RoundTrain and run.s.seed_slot == 12
    r = run.s.current_round
    for c in run.s.epoch_state.clients:
        run.m.witness(c.signer, participants_bitmap(range(r.clients_len)), NO_BROADCAST, bytes(32), run.at(1), 0,
                      slot=13 + r.height)
    assert run.s.run_state == RunState.RoundWitness and run.s.seed_slot == 12  # the posts did not move it


# ---- item 9 -------------------------------------------------------------------------------------------------
def test_last_step_saturates_at_u32_max() -> None:
    run = Run(Config(**{**CFG.__dict__, "total_steps": U32_MAX, "epoch_time": 30, "init_min_clients": 2}))
    run.m.set_paused(True, run.now, 0)
    run.m.update_progress(U32_MAX - 2)
    run.m.set_paused(False, run.now, 0)
    start_epoch(run, 2)
    run.witness_round()
    run.tick(30)  # past epoch_time: last_step = step + 2 = u32::MAX + 1, saturated (the chain's u32 would wrap)
    assert run.s.step == U32_MAX - 1 and run.s.epoch_state.last_step == U32_MAX
    assert run.s.run_state == RunState.RoundTrain
    run.witness_round()
    run.tick(CFG.round_witness_time)
    assert run.s.step == U32_MAX and run.s.run_state == RunState.Cooldown


def test_a_nonce_at_u64_max_refuses_every_instruction() -> None:
    run = Run(config(2))
    run.s.nonce = U64_MAX
    refused(run, E.ArithmeticOverflow, lambda: join(run, A, A))
    refused(run, E.ArithmeticOverflow, lambda: run.tick(1))
    refused(run, E.WrongState, lambda: vote(run, A, GOOD))  # other refusals come first, as on chain


def test_next_active_at_u64_max_refuses_the_first_round_and_a_resume() -> None:
    run = Run(config(2))
    run.join_all(KEYS[:2])
    run.tick(1)
    assert run.s.run_state == RunState.Warmup
    run.s.next_active = U64_MAX
    run.m.warmup_witness(KEYS[0], run.at(0), 0)
    refused(run, E.ArithmeticOverflow, lambda: run.m.warmup_witness(KEYS[1], run.at(0), 0))
    run.m.set_paused(True, run.now, 0)
    refused(run, E.ArithmeticOverflow, lambda: run.m.set_paused(False, run.now, 0))


def test_a_data_index_at_u64_max_refuses_the_next_round_and_the_epoch_end() -> None:
    run = Run(config(2))
    start_epoch(run, 2)
    run.witness_round()
    run.s.current_round.data_index = U64_MAX - 2  # + a batch of 8 overflows
    refused(run, E.ArithmeticOverflow, lambda: run.tick(CFG.round_witness_time))
    run.m.set_paused(True, run.now, 0)
    run.tick(0)
    assert run.s.run_state == RunState.Cooldown
    refused(run, E.ArithmeticOverflow, lambda: run.tick(CFG.cooldown_time))


def test_the_model_still_accepts_just_below_the_edges() -> None:
    m = Machine()
    m.update_config(Config(**{**CFG.__dict__, "init_min_clients": 1, "min_clients": 1}))
    m.state.nonce = U64_MAX - 1
    m.set_future_epoch_rates(1, 1)
    assert m.state.nonce == U64_MAX
