"""Issue 20 on the reference model: `checkpoint` is a vote taken in Cooldown only, one per epoch client
(sha256(reference)[:8]), and the reference is stored once votes * 2 > healthy epoch clients. The same scenarios
as tests/program/test_coordinator_checkpoint_quorum.py (the program); the differential fuzz checks they agree."""
from __future__ import annotations

import hashlib

import pytest
from test_model_scenarios import CFG, KEYS, Run, seed_at

from coordinator_sdk.model import Config, RunState, checkpoint_vote
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import ClientState

GOOD, EVIL, OTHER = b"sha256:agreed@p2p", b"sha256:diverged@p2p", b"hf://org/model@rev2"
INITIAL = b"sha256:initial@/srv/init"


def config(n: int, **over: int) -> Config:
    return Config(**{**CFG.__dict__, "init_min_clients": n, "min_clients": min(n, 2), **over})


def start_epoch(run: Run, n: int) -> None:
    run.join_all(KEYS[:n])
    run.tick(2)
    assert run.s.run_state == RunState.Warmup
    for c in run.s.epoch_state.clients:
        run.m.warmup_witness(c.signer, run.at(0), seed_at(run.now))
    assert run.s.run_state == RunState.RoundTrain


def end_epoch_round(run: Run) -> None:
    """A pending pause, then one witnessed round: the run is in Cooldown."""
    run.m.set_paused(True, run.at(0), seed_at(run.now))
    run.witness_round()
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown


def in_cooldown(n: int = 3, **over: int) -> Run:
    run = Run(config(n, **over))
    run.s.checkpoint = INITIAL  # as if the owner had named it before starting the run
    start_epoch(run, n)
    run.witness_round()
    run.tick(CFG.round_witness_time)
    end_epoch_round(run)
    assert len(run.s.epoch_state.clients) == n
    return run


def vote(run: Run, signer: bytes, reference: bytes) -> None:
    run.m.checkpoint(signer, reference, run.at(0), seed_at(run.now))


def refused(run: Run, exc: type, signer: bytes, reference: bytes = GOOD) -> None:
    before = (run.s.nonce, repr(run.s))
    with pytest.raises(exc):
        vote(run, signer, reference)
    assert (run.s.nonce, repr(run.s)) == before


def test_the_vote_is_the_first_8_bytes_of_the_sha256_and_never_0() -> None:
    assert checkpoint_vote(GOOD) == int.from_bytes(hashlib.sha256(GOOD).digest()[:8], "little") != 0
    assert checkpoint_vote(b"") == int.from_bytes(hashlib.sha256(b"").digest()[:8], "little")


def test_checkpoint_outside_cooldown_is_refused_and_changes_nothing() -> None:
    run = Run(config(3, total_steps=2))
    run.join_all(KEYS[:3])
    refused(run, E.WrongState, KEYS[0])  # WaitingForMembers
    refused(run, E.WrongState, KEYS[4])  # the state is checked before the signer
    run.tick(2)
    refused(run, E.WrongState, KEYS[0])  # Warmup
    for c in run.s.epoch_state.clients:
        run.m.warmup_witness(c.signer, run.at(0), seed_at(run.now))
    refused(run, E.WrongState, KEYS[0])  # RoundTrain
    run.witness_round()
    assert run.s.run_state == RunState.RoundWitness
    refused(run, E.WrongState, KEYS[0])
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Finished
    refused(run, E.WrongState, KEYS[0])
    assert run.s.checkpoint == b"" and run.s.checkpoint_votes == [0] * 256


def test_a_minority_does_not_change_the_checkpoint_a_majority_does() -> None:
    run = in_cooldown(3)
    a, b, c = (x.signer for x in run.s.epoch_state.clients)
    vote(run, a, GOOD)
    assert run.s.checkpoint == INITIAL and run.s.checkpoint_votes[:3] == [checkpoint_vote(GOOD), 0, 0]
    vote(run, b, GOOD)
    assert run.s.checkpoint == GOOD
    vote(run, c, EVIL)  # diverged, after the majority
    assert run.s.checkpoint == GOOD
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Paused and run.s.checkpoint == GOOD


def test_a_split_vote_adopts_nothing() -> None:
    run = in_cooldown(4)
    a, b, c, d = (x.signer for x in run.s.epoch_state.clients)
    for k, ref in ((a, GOOD), (b, GOOD), (c, EVIL), (d, OTHER)):
        vote(run, k, ref)
    assert run.s.checkpoint == INITIAL  # 2 of 4
    vote(run, c, GOOD)
    assert run.s.checkpoint == GOOD


def test_a_diverged_client_alone_cannot_name_the_checkpoint() -> None:
    run = in_cooldown(3)
    a, b, c = (x.signer for x in run.s.epoch_state.clients)
    vote(run, c, EVIL)
    vote(run, a, GOOD)
    vote(run, c, EVIL)
    assert run.s.checkpoint == INITIAL
    vote(run, b, GOOD)
    assert run.s.checkpoint == GOOD


def test_a_revote_is_accepted_and_a_retry_is_idempotent() -> None:
    run = in_cooldown(3)
    a, b, _ = (x.signer for x in run.s.epoch_state.clients)
    vote(run, a, EVIL)
    vote(run, a, GOOD)
    vote(run, a, GOOD)
    assert run.s.checkpoint_votes[0] == checkpoint_vote(GOOD) and run.s.checkpoint == INITIAL
    nonce = run.s.nonce
    vote(run, b, GOOD)
    vote(run, b, GOOD)
    assert run.s.checkpoint == GOOD and run.s.nonce == nonce + 2


def test_a_withdrawn_clients_vote_does_not_count() -> None:
    run = in_cooldown(3)
    a, b, c = (x.signer for x in run.s.epoch_state.clients)
    vote(run, a, EVIL)
    run.m.withdraw(a, run.at(0), seed_at(run.now))
    refused(run, E.ClientNotHealthy, a, EVIL)
    vote(run, c, EVIL)
    assert run.s.checkpoint == INITIAL  # 1 of the 2 healthy
    vote(run, b, GOOD)
    vote(run, c, GOOD)
    assert run.s.checkpoint == GOOD


def test_a_dropped_client_cannot_vote() -> None:
    run = Run(config(4))
    run.s.checkpoint = INITIAL
    start_epoch(run, 4)
    clients = [c.signer for c in run.s.epoch_state.clients]
    lazy = clients[3]
    run.witness_round()
    run.tick(CFG.round_witness_time)
    run.m.set_paused(True, run.at(0), seed_at(run.now))
    run.witness_round(delivered=clients[:3], skip=(3,))
    run.m.health_check(clients[0], 3, run.at(0), seed_at(run.now))
    assert run.s.epoch_state.clients[3].state == ClientState.Dropped
    assert run.s.run_state == RunState.RoundWitness  # the dropped client was elected: the round does not wait
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown and len(run.s.epoch_state.clients) == 3
    refused(run, E.SignerNotAClient, lazy, EVIL)
    vote(run, clients[0], GOOD)
    assert run.s.checkpoint == INITIAL
    vote(run, clients[1], GOOD)
    assert run.s.checkpoint == GOOD


def test_a_non_client_signer_is_refused() -> None:
    run = in_cooldown(3)
    refused(run, E.SignerNotAClient, KEYS[4])
    run.m.join_run(KEYS[4], KEYS[4], b"", run.now, seed_at(run.now))  # registered for the next epoch only
    refused(run, E.SignerNotAClient, KEYS[4])
    with pytest.raises(E.StringTooLong):
        vote(run, KEYS[0], b"x" * 128)


def test_votes_of_the_previous_epoch_do_not_count() -> None:
    run = in_cooldown(3)
    a, b, _ = (x.signer for x in run.s.epoch_state.clients)
    vote(run, a, OTHER)
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Paused and run.s.checkpoint_votes[0] == checkpoint_vote(OTHER)
    run.m.set_paused(False, run.at(0), seed_at(run.now))
    start_epoch(run, 3)
    assert run.s.checkpoint_votes == [0] * 256 and run.s.epoch_state.clients[0].signer == a
    end_epoch_round(run)
    vote(run, b, OTHER)
    assert run.s.checkpoint == INITIAL
    vote(run, a, OTHER)
    assert run.s.checkpoint == OTHER


def test_a_single_healthy_client_is_its_own_majority() -> None:
    run = in_cooldown(2, min_clients=1)
    a, b = (x.signer for x in run.s.epoch_state.clients)
    run.m.withdraw(b, run.at(0), seed_at(run.now))
    vote(run, a, GOOD)
    assert run.s.checkpoint == GOOD
