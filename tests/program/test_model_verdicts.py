"""The reference model's verdict rule alone (coordinator_sdk.model.verdicts; the program side by side is
test_coordinator_verdict.py): the seeded draw, one verdict per (verifier, trainer, round), conviction,
vindication, and that a refusal leaves the state as it was."""
from __future__ import annotations

import copy
import hashlib

import pytest

from coordinator_sdk.model import Machine, ModelError
from coordinator_sdk.model.state import ClientState, EpochClient, RegisteredClient, Round, RunState, State
from coordinator_sdk.verdicts import convicted, eligible, order_key, vindicated


def world(n: int = 6, seed: int = 12345) -> Machine:
    """RoundTrain of height 2 with n clients (p2p keys distinct from wallets), rounds 0..2 in the ring."""
    s = State(run_state=RunState.RoundTrain, slashing_rate=7)
    s.clients = [RegisteredClient(bytes([1, i]) * 16, bytes([2, i]) * 16) for i in range(n)]
    s.epoch_state.clients = [EpochClient(c.signer, c.p2p, registry_index=i) for i, c in enumerate(s.clients)]
    s.epoch_state.rounds = [Round([], 0, seed + h, h, n) for h in range(3)] + [Round()]
    s.epoch_state.rounds_head = 2
    return Machine(s)


def drawn(m: Machine, trainer: int, height: int) -> list[int]:
    es = m.state.epoch_state
    seed, n = es.rounds[height + 1].random_seed, es.rounds[height].clients_len
    return [i for i, c in enumerate(es.clients) if eligible(seed, c.p2p, es.clients[trainer].p2p, n)]


def pick(m: Machine, want: int) -> tuple[int, list[int]]:
    for t in range(len(m.state.epoch_state.clients)):
        v = drawn(m, t, 1)
        if len(v) >= want:
            return t, v
    raise AssertionError("no trainer with enough verifiers")


def post(m: Machine, verifier: int, trainer: int, height: int, outcome: int) -> None:
    m.verdict(m.state.epoch_state.clients[verifier].signer, trainer, height, outcome, 100, 0)


def test_the_draw_is_the_programs_hash() -> None:
    seed, v, t = 99, b"v" * 32, b"t" * 32
    x = int.from_bytes(hashlib.sha256(seed.to_bytes(8, "little") + v + t).digest()[:8], "little")
    assert eligible(seed, v, t, 7) == (x % 7 < 3)
    assert not eligible(seed, v, v, 7) and not eligible(seed, v, t, 0)
    assert all(eligible(seed, v, t, n) for n in (1, 2, 3))  # at most 3 clients: everyone else verifies
    assert order_key(4, b"\x01" + bytes(31)) == (5, 1)
    assert convicted(2, 1) and not convicted(1, 0) and not convicted(2, 2)
    assert vindicated(1, 2) and not vindicated(0, 1) and not vindicated(2, 2)  # (fails, passes)


def test_two_fails_convict_and_slash() -> None:
    m = world()
    t, v = pick(m, 2)
    post(m, v[0], t, 1, 0)
    assert m.state.epoch_state.clients[t].state == ClientState.Healthy
    post(m, v[1], t, 1, 0)
    assert m.state.epoch_state.clients[t].state == ClientState.Ejected
    assert m.state.clients[t].slashed == 7 and sum(c.slashed for c in m.state.clients) == 7


def test_a_pass_majority_slashes_the_first_accuser_once() -> None:
    m = world(n=8)
    t, v = pick(m, 4)
    post(m, v[0], t, 1, 0)
    post(m, v[1], t, 1, 1)
    post(m, v[2], t, 1, 1)
    assert m.state.clients[v[0]].slashed == 7
    post(m, v[3], t, 1, 1)
    assert m.state.clients[v[0]].slashed == 7 and m.state.epoch_state.clients[t].state == ClientState.Healthy


@pytest.mark.parametrize("case, name", [
    ("self", "NotAVerifier"), ("current", "StaleRound"), ("outcome", "InvalidArgument"),
    ("index", "NotAnEpochClient"), ("twice", "DuplicateVerdict"), ("outsider", "SignerNotAClient"),
    ("warmup", "WrongState"), ("paused", "Halted"), ("unhealthy", "ClientNotHealthy"), ("full", "ArithmeticOverflow"),
])
def test_refusals_leave_the_state_unchanged(case: str, name: str) -> None:
    m = world()
    t, v = pick(m, 1)
    signer, trainer, height, outcome = m.state.epoch_state.clients[v[0]].signer, t, 1, 1
    if case == "self":
        trainer = v[0]
    elif case == "current":
        height = 2
    elif case == "outcome":
        outcome = 2
    elif case == "index":
        trainer = len(m.state.epoch_state.clients)
    elif case == "twice":
        post(m, v[0], t, 1, 1)
    elif case == "outsider":
        signer = b"x" * 32
    elif case == "warmup":
        m.state.run_state = RunState.Warmup
    elif case == "paused":
        m.state.run_state = RunState.Paused
    elif case == "unhealthy":
        m.state.epoch_state.clients[v[0]].state = ClientState.Withdrawn
    elif case == "full":
        m.state.epoch_state.clients[t].passes[1] = 255
    before = copy.deepcopy(m.state)
    with pytest.raises(ModelError) as e:
        m.verdict(signer, trainer, height, outcome, 100, 0)
    assert e.value.name == name and m.state == before


def test_a_newcomer_in_the_accusers_slot_is_not_penalised() -> None:
    m = world(n=8)
    t, v = pick(m, 3)
    post(m, v[0], t, 1, 0)
    m.state.epoch_state.clients[v[0]].state = ClientState.Withdrawn  # it left; a newcomer takes its slot
    m.state.clients[v[0]] = RegisteredClient(b"n" * 32, b"m" * 32)
    post(m, v[1], t, 1, 1)
    post(m, v[2], t, 1, 1)
    assert m.state.clients[v[0]].slashed == 0
    assert m.state.epoch_state.clients[t].accuser[1] == 0xFFFF
