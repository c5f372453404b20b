"""Issue 20: a round does not wait for elected witnesses that can no longer post. During RoundTrain the run moves
to RoundWitness (its timer restarting) as soon as one witness posted and every elected witness of the round has
posted or withdrew or was dropped; witness, withdraw and health_check make the move in the same instruction.
Before, a withdrawn or dropped elected witness held every round to max_round_train_time."""
from __future__ import annotations

from test_coordinator_security import Drive

from devtools.litesvm_harness import CoordinatorSvm

TRAIN, WITNESS = 3, 4
SLASH = 7  # Drive's slashing rate: an elected witness silent while healthy loses it when the round ends


def live_run(n: int = 3, run_id: str = "live", **cfg: int) -> Drive:
    """n clients in round 0's RoundTrain; witness_nodes = 0: every client is an elected witness."""
    d = Drive(CoordinatorSvm(), n, run_id=run_id, **cfg)
    d.to_round()
    return d


def state_and_start(d: Drive) -> tuple[int, int]:
    st = d.st()
    return st.run_state, st.run_state_start_unix_timestamp


def slashed(d: Drive, signer: bytes) -> int:
    st = d.st()
    return next(st.clients[i].slashed for i in range(st.num_clients) if bytes(st.clients[i].signer) == signer)


def end_round(d: Drive) -> None:
    """RoundWitness runs its full time and the next round starts (the timer restarted at the early move)."""
    d.h.advance(d.cfg["round_witness_time"] - 1)
    d.tick()
    assert d.st().run_state == WITNESS  # not before round_witness_time from the early move
    d.h.advance(1)
    d.tick()


def test_two_posted_the_third_withdraws_round_witness_at_once() -> None:
    d = live_run()
    a, b, c = d.elected()
    assert len(d.elected()) == 3
    d.ok(d.witness(a, d.epoch_signers()))
    d.ok(d.witness(b, d.epoch_signers()))
    assert d.st().run_state == TRAIN  # c is healthy and elected: the round waits for it
    d.h.advance(1)
    d.ok(d.h.client(d.run, "withdraw", d.by_key[c]))
    assert state_and_start(d) == (WITNESS, d.h.now)  # at once, not max_round_train_time (20 s) later
    end_round(d)
    st = d.st()
    assert st.run_state == TRAIN and st.rounds[st.rounds_head].height == 1 and st.num_epoch_clients == 2
    assert [slashed(d, k) for k in (a, b, c)] == [0, 0, 0]  # the withdrawn witness is not penalised


def test_two_posted_the_third_is_dropped_round_witness_at_once() -> None:
    d = live_run(run_id="live-drop")
    signers = d.epoch_signers()
    seen = signers[:2]
    for k in seen:
        d.ok(d.witness(k, seen))
    assert d.st().run_state == TRAIN
    d.h.advance(1)
    d.ok(d.h.client(d.run, "health_check", d.by_key[seen[0]], 2))
    st = d.st()
    assert st.epoch_clients[2].state == 1  # Dropped
    assert state_and_start(d) == (WITNESS, d.h.now)
    end_round(d)
    st = d.st()
    assert st.run_state == TRAIN and st.num_epoch_clients == 2 and st.num_exited_clients == 1
    assert [slashed(d, k) for k in signers] == [0, 0, 0]  # the dropped witness is not penalised


def test_the_third_withdraws_first_round_witness_at_the_second_post() -> None:
    d = live_run(run_id="live-first")
    a, b, c = d.elected()
    d.ok(d.h.client(d.run, "withdraw", d.by_key[c]))
    assert d.st().run_state == TRAIN  # nobody posted yet
    d.ok(d.witness(a, d.epoch_signers()))
    assert d.st().run_state == TRAIN  # b has not posted
    d.h.advance(1)
    d.ok(d.witness(b, d.epoch_signers()))
    assert state_and_start(d) == (WITNESS, d.h.now)
    end_round(d)
    assert d.st().run_state == TRAIN
    assert [slashed(d, k) for k in (a, b, c)] == [0, 0, 0]


def test_one_is_dropped_first_round_witness_at_the_last_post() -> None:
    """Four elected (quorum 2): two post without the fourth and a report drops it; the round still waits for
    the third, and moves at its post."""
    d = live_run(4, run_id="live-drop-first")
    signers = d.epoch_signers()
    d.ok(d.witness(signers[0], signers[:3]))
    d.ok(d.witness(signers[1], signers[:3]))
    d.ok(d.h.client(d.run, "health_check", d.by_key[signers[1]], 3))
    assert d.st().epoch_clients[3].state == 1 and d.st().run_state == TRAIN  # the third has not posted
    d.h.advance(1)
    d.ok(d.witness(signers[2], signers[:3]))
    assert state_and_start(d) == (WITNESS, d.h.now)


def test_nobody_posted_and_one_withdraws_still_round_train() -> None:
    d = live_run(run_id="live-none")
    a, b, c = d.elected()
    d.ok(d.h.client(d.run, "withdraw", d.by_key[c]))
    d.ok(d.h.client(d.run, "withdraw", d.by_key[b]))
    d.tick()
    assert d.st().run_state == TRAIN  # an early move needs at least one witness
    d.h.advance(d.cfg["max_round_train_time"])
    d.tick()
    assert d.st().run_state == WITNESS  # the timeout still ends the round


def test_all_healthy_two_of_three_posted_still_round_train_and_the_silent_one_pays() -> None:
    d = live_run(run_id="live-healthy")
    a, b, c = d.elected()
    d.ok(d.witness(a, d.epoch_signers()))
    d.ok(d.witness(b, d.epoch_signers()))
    d.h.advance(d.cfg["max_round_train_time"] - 1)
    d.tick()
    assert d.st().run_state == TRAIN  # c is healthy: the round waits until its timeout
    d.h.advance(1)
    d.tick()
    assert state_and_start(d) == (WITNESS, d.h.now)
    d.h.advance(d.cfg["round_witness_time"])
    d.tick()
    assert [slashed(d, k) for k in (a, b, c)] == [0, 0, SLASH]


def test_only_elected_witnesses_count() -> None:
    """witness_nodes = 2 of 3 clients: the client not elected leaving changes nothing; the other elected one
    leaving after the first posted ends the round."""
    d = live_run(run_id="live-slots", witness_nodes=2)
    first, second = d.elected()
    other = next(k for k in d.epoch_signers() if k not in (first, second))
    d.ok(d.witness(first, d.epoch_signers()))
    d.ok(d.h.client(d.run, "withdraw", d.by_key[other]))
    assert d.st().run_state == TRAIN
    d.ok(d.h.client(d.run, "withdraw", d.by_key[second]))
    assert state_and_start(d) == (WITNESS, d.h.now)
