"""The reference model through whole runs: joins, warmup (both exits), rounds with elected witnesses,
health checks, pause/resume, epochs, rewards, the idle-witness penalty, finishing at total_steps."""
from __future__ import annotations

import hashlib

import pytest

from coordinator_sdk.model import Config, Machine, ModelError, RunState
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import ClientState
from coordinator_sdk.participation import participants_bitmap
from coordinator_sdk.shuffle import elected_witnesses

CFG = Config(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2, epoch_time=200,
             total_steps=12, init_min_clients=4, min_clients=2, witness_nodes=0, global_batch_size_start=8,
             global_batch_size_end=8, waiting_for_members_extra_time=1)
KEYS = [bytes([i]) * 32 for i in range(1, 6)]
NO_BROADCAST = bytes(192)  # the chain stores the broadcast bloom without reading it


def seed_at(now: int) -> int:
    return int.from_bytes(hashlib.sha256(now.to_bytes(8, "little")).digest()[:8], "little")


class Run:
    def __init__(self, cfg: Config = CFG) -> None:
        self.m, self.now = Machine(), 1000
        self.m.update_config(cfg)
        self.m.set_future_epoch_rates(1000, 7)
        self.m.set_paused(False, self.now, seed_at(self.now))

    @property
    def s(self):
        return self.m.state

    def at(self, dt: int) -> int:
        self.now += dt
        return self.now

    def join_all(self, keys=KEYS[:4]) -> None:
        for k in keys:
            self.m.join_run(k, k[::-1], b"127.0.0.1:1", self.now, seed_at(self.now))

    def tick(self, dt: int) -> None:
        self.m.tick(self.at(dt), seed_at(self.now))

    def bits_of(self, signers) -> bytes:
        """Participant bits for `signers`, by their index in the current round."""
        seen = set(signers)
        return participants_bitmap(i for i, c in enumerate(self.s.epoch_state.clients) if c.signer in seen)

    def witness_round(self, delivered=None, skip=()) -> list[int]:
        r = self.s.current_round
        chosen = elected_witnesses(r.clients_len, r.random_seed, self.s.config.witness_nodes)
        clients = self.s.epoch_state.clients
        delivered = [c.signer for c in clients] if delivered is None else delivered
        for i in chosen:
            if i in skip or clients[i].state != ClientState.Healthy:  # dropped clients may not witness
                continue
            self.m.witness(clients[i].signer, self.bits_of(delivered), NO_BROADCAST, bytes(32),
                           self.at(1), seed_at(self.now))
        return chosen


def to_first_round(run: Run) -> None:
    run.join_all()
    run.tick(2)
    assert run.s.run_state == RunState.Warmup
    for c in run.s.epoch_state.clients:
        run.m.warmup_witness(c.signer, run.at(0), seed_at(run.now))
    assert run.s.run_state == RunState.RoundTrain and run.s.current_round.height == 0


def test_waiting_for_members_needs_init_min_clients_and_extra_time() -> None:
    run = Run()
    run.join_all(KEYS[:3])
    run.tick(5)
    assert run.s.run_state == RunState.WaitingForMembers
    run.join_all(KEYS[3:4])  # the extra wait counts from when WaitingForMembers began: it has passed
    assert run.s.run_state == RunState.Warmup and len(run.s.epoch_state.clients) == 4
    fresh = Run()
    fresh.join_all()  # in the very second WaitingForMembers began: no transition yet
    assert fresh.s.run_state == RunState.WaitingForMembers
    fresh.tick(1)
    assert fresh.s.run_state == RunState.Warmup


def test_warmup_exits_by_witnesses_or_by_timeout() -> None:
    run = Run()
    to_first_round(run)
    run2 = Run()
    run2.join_all()
    run2.tick(2)
    run2.tick(CFG.warmup_time)
    assert run2.s.run_state == RunState.RoundTrain


def test_full_epoch_rewards_and_data_index() -> None:
    run = Run()
    to_first_round(run)
    start_nonce = run.s.nonce
    for step in range(3):
        height = run.s.current_round.height
        run.witness_round()
        assert run.s.run_state == RunState.RoundWitness
        run.tick(CFG.round_witness_time)
        assert run.s.current_round.height == height + 1 and run.s.current_round.data_index == 8 * (step + 1)
    assert run.s.nonce > start_nonce
    run.m.set_paused(True, run.at(0), seed_at(run.now))
    assert run.s.pending_pause
    run.witness_round()
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Paused and run.s.epoch == 1
    assert run.s.epoch_start_data_index == 8 * 4
    # The epoch completed before the pause took effect: its clients keep their points (Psyche burns them).
    assert [c.earned for c in run.s.clients] == [250, 250, 250, 250]
    assert all(c.slashed == 0 for c in run.s.clients)


def test_points_at_epoch_end_and_the_idle_witness_penalty() -> None:
    cfg = Config(**{**CFG.__dict__, "witness_nodes": 2, "min_clients": 2})
    run = Run(cfg)
    to_first_round(run)
    run.witness_round()
    run.tick(CFG.round_witness_time)
    r = run.s.current_round
    idle = elected_witnesses(r.clients_len, r.random_seed, 2)[0]
    idle_signer = run.s.epoch_state.clients[idle].signer
    run.witness_round(skip=(idle,))
    assert run.s.run_state == RunState.RoundTrain  # one elected witness is missing
    run.tick(CFG.max_round_train_time)
    assert run.s.run_state == RunState.RoundWitness
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown  # 1 witness < quorum of 2: the epoch ends
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.WaitingForMembers and run.s.epoch == 1
    by_signer = {c.signer: c for c in run.s.clients}
    assert all(c.earned == 1000 // 4 for c in run.s.clients)
    assert by_signer[idle_signer].slashed == 7 and sum(c.slashed for c in run.s.clients) == 7


def test_run_finishes_at_total_steps() -> None:
    run = Run(Config(**{**CFG.__dict__, "total_steps": 3}))
    to_first_round(run)
    for _ in range(2):
        run.witness_round()
        run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown and run.s.step == 3
    run.tick(CFG.cooldown_time)
    assert run.s.run_state == RunState.Finished
    with pytest.raises(E.Halted):
        run.tick(100)
    with pytest.raises(E.RunFinished):
        run.m.join_run(KEYS[4], KEYS[4], b"", run.now, 1)


def test_health_check_drops_now_a_client_the_rounds_witnesses_left_out() -> None:
    run = Run()
    to_first_round(run)
    clients = [c.signer for c in run.s.epoch_state.clients]
    lazy = clients[2]
    run.witness_round(delivered=[k for k in clients if k != lazy], skip=(2,))
    reporter = clients[0]
    with pytest.raises(E.ClientIsHealthy):
        run.m.health_check(reporter, 1, run.at(0), seed_at(run.now))
    run.m.health_check(reporter, 2, run.at(0), seed_at(run.now))  # in round 0: no round is too early
    assert run.s.epoch_state.clients[2].state == ClientState.Dropped
    assert run.s.run_state == RunState.RoundWitness  # the dropped client was elected: the round does not wait
    run.tick(CFG.round_witness_time)
    assert lazy not in [c.signer for c in run.s.epoch_state.clients]
    assert lazy in [c.signer for c in run.s.epoch_state.exited_clients]


def test_the_round_end_drops_whoever_a_quorum_left_out_without_any_report() -> None:
    run = Run()
    to_first_round(run)
    clients = [c.signer for c in run.s.epoch_state.clients]
    run.witness_round(delivered=clients[:3])
    assert all(c.state == ClientState.Healthy for c in run.s.epoch_state.clients)
    run.tick(CFG.round_witness_time)
    assert [c.signer for c in run.s.epoch_state.exited_clients] == [clients[3]]
    assert run.s.epoch_state.exited_clients[0].state == ClientState.Dropped


@pytest.mark.parametrize("skipped", [(0, 2), (0,), (2,), (1,)])
def test_every_round_counts_first_and_last_included(skipped: tuple[int, ...]) -> None:
    """Issue 21, item 6: a 3-round epoch whose witnesses left client 3 out of the rounds in `skipped` (the
    first and the last among them): it is not paid; the honest clients are paid in full."""
    run = Run(Config(**{**CFG.__dict__, "total_steps": 4}))
    to_first_round(run)
    clients = [c.signer for c in run.s.epoch_state.clients]
    for height in range(3):
        assert run.s.current_round.height == height
        run.witness_round(delivered=clients[:3] if height in skipped else clients)
        run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown
    run.tick(CFG.cooldown_time)
    earned = {c.signer: c.earned for c in run.s.clients}
    assert [earned[k] for k in clients] == [250, 250, 250, 0]


def test_a_witness_may_not_mark_a_client_past_the_rounds_count() -> None:
    run = Run()
    to_first_round(run)
    r = run.s.current_round
    i = elected_witnesses(r.clients_len, r.random_seed, 0)[0]
    before = (run.s.nonce, repr(run.s))
    with pytest.raises(E.ParticipantOutOfRange):
        run.m.witness(run.s.epoch_state.clients[i].signer, participants_bitmap([0, r.clients_len]), NO_BROADCAST,
                      bytes(32), run.now, 1)
    assert (run.s.nonce, repr(run.s)) == before
    run.m.witness(run.s.epoch_state.clients[i].signer, participants_bitmap(range(r.clients_len)), NO_BROADCAST,
                  bytes(32), run.now, 1)


def test_health_checks_only_while_a_round_is_in_progress() -> None:
    run = Run()
    run.join_all()
    run.tick(2)
    assert run.s.run_state == RunState.Warmup
    with pytest.raises(E.HealthCheckTooEarly):
        run.m.health_check(KEYS[0], 1, run.now, 1)


def test_refusals_change_nothing() -> None:
    run = Run()
    to_first_round(run)
    before = (run.s.nonce, repr(run.s))
    outsider = KEYS[4]
    r = run.s.current_round
    chosen = elected_witnesses(r.clients_len, r.random_seed, 0)
    not_chosen = [i for i in range(r.clients_len) if i not in chosen]
    cases = [
        (E.SignerNotAClient, lambda: run.m.witness(outsider, b"", b"", bytes(32), run.now, 1)),
        (E.NotHalted, lambda: run.m.update_config(CFG)),
        (E.ClientIsHealthy, lambda: run.m.health_check(KEYS[0], 1, run.now, 1)),  # nobody posted yet
        (E.NotAnEpochClient, lambda: run.m.health_check(KEYS[0], 4, run.now, 1)),
        (E.NotPaused, lambda: run.m.set_paused(False, run.now, 1)),
    ]
    if not_chosen:
        signer = run.s.epoch_state.clients[not_chosen[0]].signer
        cases.append((E.WitnessNotElected, lambda: run.m.witness(signer, b"", b"", bytes(32), run.now, 1)))
    for exc, call in cases:
        with pytest.raises(exc):
            call()
        assert (run.s.nonce, repr(run.s)) == before
    i = chosen[0]
    run.m.witness(run.s.epoch_state.clients[i].signer, run.bits_of([]), NO_BROADCAST, bytes(32),
                  run.now, 1)
    with pytest.raises(E.DuplicateWitness):
        run.m.witness(run.s.epoch_state.clients[i].signer, run.bits_of([]), NO_BROADCAST, bytes(32),
                      run.now, 1)


@pytest.mark.parametrize("field,value", [("epoch_time", 0), ("warmup_time", 10**6), ("max_round_train_time", 0),
                                         ("round_witness_time", 0), ("min_clients", 0), ("init_min_clients", 300),
                                         ("global_batch_size_start", 0), ("total_steps", 0), ("witness_nodes", 33),
                                         ("cooldown_time", 0), ("waiting_for_members_extra_time", 0)])
def test_each_config_rule(field: str, value: int) -> None:
    m = Machine()
    with pytest.raises(E.InvalidConfig):
        m.update_config(Config(**{**CFG.__dict__, field: value}))
    assert m.state.nonce == 0


def test_more_clients_than_batches_and_finished_runs() -> None:
    run = Run(Config(**{**CFG.__dict__, "global_batch_size_start": 2, "global_batch_size_end": 2,
                        "init_min_clients": 2, "min_clients": 2}))
    run.join_all(KEYS[:2])
    run.tick(2)
    assert run.s.run_state == RunState.Warmup  # both are healthy clients of the epoch: neither can be evicted
    with pytest.raises(E.MoreClientsThanBatches):
        run.m.join_run(KEYS[2], KEYS[2], b"", run.now, 1)
    assert isinstance(E.MoreClientsThanBatches(), ModelError)


def test_tick_due_at_predicts_the_next_transition() -> None:
    from coordinator_sdk.model.transitions import tick_due_at

    run = Run()
    assert tick_due_at(run.s) is None  # nobody joined yet
    run.join_all()
    due = tick_due_at(run.s)
    assert due == run.now + CFG.waiting_for_members_extra_time
    run.m.tick(due - 1 if due - 1 > run.s.run_state_start_unix_timestamp else due, 1)
    for _ in range(6):
        due = tick_due_at(run.s)
        before = run.s.run_state
        if due is None:
            break
        if due - 1 > run.s.run_state_start_unix_timestamp:
            run.m.tick(due - 1, 1)
            assert run.s.run_state == before  # one second early: nothing happens
        run.m.tick(due, seed_at(due))
        assert run.s.run_state != before  # exactly on time: the transition happens


def test_tick_due_at_after_every_warmup_vote_is_the_next_second() -> None:
    """Every witness slot voted in the Warmup's own slot: round 0 waits only for a later slot, so a tick is due
    one second on (the rule the clients apply to the chain's account, coordinator_sdk.model.deadline)."""
    from coordinator_sdk.model.transitions import tick_due_at

    run = Run()
    run.join_all()
    run.m.tick(run.at(2), seed_at(run.now), 5)
    assert run.s.run_state == RunState.Warmup
    start = run.s.run_state_start_unix_timestamp
    assert tick_due_at(run.s) == start + CFG.warmup_time
    for c in run.s.epoch_state.clients:
        run.m.warmup_witness(c.signer, run.now, seed_at(run.now), 5)  # same slot: the seed is not known yet
    assert run.s.run_state == RunState.Warmup
    assert tick_due_at(run.s) == start + 1
    run.m.tick(start + 1, seed_at(start + 1), 6)
    assert run.s.run_state == RunState.RoundTrain
