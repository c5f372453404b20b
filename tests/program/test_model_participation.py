"""Issue 21, item 5, on the reference model: participant bits are exact, so at 256 clients every one of 32
clients that delivered nothing is dropped when the round ends and none is paid (the 1024-bit blooms let ~1 in
5 through). The program's twin is tests/program/test_coordinator_participation.py; the differential fuzz checks the
two agree."""
from __future__ import annotations

import hashlib

from test_model_scenarios import CFG, KEYS, Run, seed_at

from coordinator_sdk.model import Config, RunState
from coordinator_sdk.model.state import ClientState
from coordinator_sdk.shuffle import elected_witnesses

N = 256


def test_256_clients_32_absent_all_dropped_none_paid() -> None:
    cfg = Config(**{**CFG.__dict__, "init_min_clients": N, "min_clients": 1, "global_batch_size_start": N,
                    "global_batch_size_end": N, "max_round_train_time": 100})  # a witness per second
    run = Run(cfg)
    keys = [hashlib.sha256(i.to_bytes(2, "little")).digest() for i in range(1, N + 1)]  # reversed: nobody's key
    assert not set(keys) & set(KEYS)
    run.join_all(keys)
    run.tick(2)
    for c in run.s.epoch_state.clients[:32]:
        run.m.warmup_witness(c.signer, run.at(0), seed_at(run.now))
    assert run.s.run_state == RunState.RoundTrain and run.s.current_round.clients_len == N
    absent = set(keys[7::8])
    present = [k for k in keys if k not in absent]
    run.m.set_paused(True, run.at(0), seed_at(run.now))  # a one-round epoch
    r = run.s.current_round
    clients = run.s.epoch_state.clients
    skip = tuple(i for i in elected_witnesses(N, r.random_seed, 0) if clients[i].signer in absent)
    run.witness_round(delivered=present, skip=skip)
    run.tick(100)
    run.tick(CFG.round_witness_time)
    assert run.s.run_state == RunState.Cooldown
    exited = run.s.epoch_state.exited_clients
    assert {c.signer for c in exited} == absent and all(c.state == ClientState.Dropped for c in exited)
    run.tick(CFG.cooldown_time)
    earned = {c.signer: c.earned for c in run.s.clients}
    assert all(earned[k] == 0 for k in absent) and all(earned[k] == 1000 // N for k in present)
