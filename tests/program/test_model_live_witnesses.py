"""Issue 20 on the reference model: during RoundTrain the run moves to RoundWitness as soon as one witness posted
and every elected witness of the round posted or withdrew or was dropped (witness, withdraw, health_check and
tick all check it). The same scenarios as tests/program/test_coordinator_live_witnesses.py (the program); the
differential fuzz checks they agree."""
from __future__ import annotations

from test_model_checkpoint_quorum import config, start_epoch
from test_model_scenarios import CFG, NO_BROADCAST, Run, seed_at

from coordinator_sdk.model import RunState
from coordinator_sdk.model.state import ClientState
from coordinator_sdk.shuffle import elected_witnesses

SLASH = 7  # Run's slashing rate


def live_run(n: int = 3, **over: int) -> Run:
    run = Run(config(n, **over))
    start_epoch(run, n)
    return run


def elected(run: Run) -> list[bytes]:
    r = run.s.current_round
    clients = run.s.epoch_state.clients
    return [clients[i].signer for i in elected_witnesses(r.clients_len, r.random_seed, run.s.config.witness_nodes)]


def signers(run: Run) -> list[bytes]:
    return [c.signer for c in run.s.epoch_state.clients]


def witness(run: Run, signer: bytes, delivered: list[bytes] | None = None) -> None:
    delivered = signers(run) if delivered is None else delivered
    run.m.witness(signer, run.bits_of(delivered), NO_BROADCAST, bytes(32), run.at(1), seed_at(run.now))


def withdraw(run: Run, signer: bytes) -> None:
    run.m.withdraw(signer, run.at(1), seed_at(run.now))


def health_check(run: Run, reporter: bytes, target: int) -> None:
    run.m.health_check(reporter, target, run.at(1), seed_at(run.now))


def moved_now(run: Run) -> bool:
    return run.s.run_state == RunState.RoundWitness and run.s.run_state_start_unix_timestamp == run.now


def slashed(run: Run, signer: bytes) -> int:
    return next(c.slashed for c in run.s.clients if c.signer == signer)


def end_round(run: Run) -> None:
    run.tick(CFG.round_witness_time - 1)
    assert run.s.run_state == RunState.RoundWitness  # the timer restarted at the early move
    run.tick(1)


def test_two_posted_the_third_withdraws_round_witness_at_once() -> None:
    run = live_run()
    a, b, c = elected(run)
    witness(run, a)
    witness(run, b)
    assert run.s.run_state == RunState.RoundTrain
    withdraw(run, c)
    assert moved_now(run)
    end_round(run)
    assert run.s.run_state == RunState.RoundTrain and run.s.current_round.height == 1
    assert len(run.s.epoch_state.clients) == 2
    assert [slashed(run, k) for k in (a, b, c)] == [0, 0, 0]  # the withdrawn witness is not penalised


def test_two_posted_the_third_is_dropped_round_witness_at_once() -> None:
    run = live_run()
    keys = signers(run)
    witness(run, keys[0], keys[:2])
    witness(run, keys[1], keys[:2])
    assert run.s.run_state == RunState.RoundTrain
    health_check(run, keys[0], 2)
    assert run.s.epoch_state.clients[2].state == ClientState.Dropped
    assert moved_now(run)
    end_round(run)
    assert run.s.run_state == RunState.RoundTrain and len(run.s.epoch_state.clients) == 2
    assert [slashed(run, k) for k in keys] == [0, 0, 0]  # the dropped witness is not penalised


def test_the_third_withdraws_first_round_witness_at_the_second_post() -> None:
    run = live_run()
    a, b, c = elected(run)
    withdraw(run, c)
    assert run.s.run_state == RunState.RoundTrain
    witness(run, a)
    assert run.s.run_state == RunState.RoundTrain
    witness(run, b)
    assert moved_now(run)
    end_round(run)
    assert [slashed(run, k) for k in (a, b, c)] == [0, 0, 0]


def test_one_is_dropped_first_round_witness_at_the_last_post() -> None:
    """Four elected (quorum 2): two post without the fourth and a report drops it; the round still waits for
    the third, and moves at its post."""
    run = live_run(4)
    keys = signers(run)
    witness(run, keys[0], keys[:3])
    witness(run, keys[1], keys[:3])
    health_check(run, keys[1], 3)
    assert run.s.epoch_state.clients[3].state == ClientState.Dropped
    assert run.s.run_state == RunState.RoundTrain  # the third has not posted
    witness(run, keys[2], keys[:3])
    assert moved_now(run)


def test_nobody_posted_and_one_withdraws_still_round_train() -> None:
    run = live_run()
    _, b, c = elected(run)
    withdraw(run, c)
    withdraw(run, b)
    run.tick(0)
    assert run.s.run_state == RunState.RoundTrain
    run.tick(CFG.max_round_train_time)
    assert run.s.run_state == RunState.RoundWitness


def test_all_healthy_two_of_three_posted_still_round_train_and_the_silent_one_pays() -> None:
    run = live_run()
    a, b, c = elected(run)
    witness(run, a)
    witness(run, b)
    run.tick(CFG.max_round_train_time - 3)  # the round started 2 s ago
    assert run.s.run_state == RunState.RoundTrain
    run.tick(1)
    assert moved_now(run)
    run.tick(CFG.round_witness_time)
    assert [slashed(run, k) for k in (a, b, c)] == [0, 0, SLASH]


def test_only_elected_witnesses_count() -> None:
    run = live_run(witness_nodes=2)
    first, second = elected(run)
    other = next(k for k in signers(run) if k not in (first, second))
    witness(run, first)
    withdraw(run, other)
    assert run.s.run_state == RunState.RoundTrain
    withdraw(run, second)
    assert moved_now(run)
