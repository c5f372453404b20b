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
    clients = m.state.epoch_state.clients
    m.verdict(clients[verifier].signer, trainer, clients[trainer].p2p, height, outcome, 100, 0)


def test_the_draw_is_the_programs_hash() -> None:
    seed, v, t = 99, b"v" * 32, b"t" * 32
    x = int.from_bytes(hashlib.sha256(seed.to_bytes(8, "little") + v + t).digest()[:8], "little")
    assert eligible(seed, v, t, 7) == (x % 7000 < 3000)
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
    ("wrong trainer", "WrongTrainer"),
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
    clients = m.state.epoch_state.clients
    named = clients[trainer].p2p if trainer < len(clients) else bytes(32)
    if case == "wrong trainer":  # the key of another client than the one at the index (a compacted list)
        named = clients[(t + 1) % len(clients)].p2p
    before = copy.deepcopy(m.state)
    with pytest.raises(ModelError) as e:
        m.verdict(signer, trainer, named, height, outcome, 100, 0)
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


def test_the_rate_is_a_run_setting() -> None:
    """config.verifiers_per_mille: the draw is hash % (clients_len × 1000) < it; 0 draws nobody (every verdict
    is NotAVerifier); above 10000 the config is refused."""
    seed, v, t = 99, b"v" * 32, b"t" * 32
    x = int.from_bytes(hashlib.sha256(seed.to_bytes(8, "little") + v + t).digest()[:8], "little")
    for per_mille in (0, 1, 100, 2500, 10000):
        assert eligible(seed, v, t, 7, per_mille) == (x % 7000 < per_mille)
    pairs = [(bytes([a]) * 32, bytes([b]) * 32) for a in range(40) for b in range(40) if a != b]
    share = sum(eligible(5, a, b, 10, 100) for a, b in pairs) / len(pairs)
    assert 0.0 < share < 0.03  # ~1%: 0.1 verifiers per trainer among 10 clients
    m = world()
    m.state.config.verifiers_per_mille = 0
    before = copy.deepcopy(m.state)
    for i in range(1, len(m.state.epoch_state.clients)):
        with pytest.raises(ModelError) as e:
            post(m, i, 0, 1, 0)
        assert e.value.name == "NotAVerifier"
    assert m.state == before
    cfg = m.state.config
    cfg.verifiers_per_mille = 10000
    assert cfg.violations() == []
    cfg.verifiers_per_mille = 10001
    assert cfg.violations() == ["verifiers_per_mille must be <= 10000"]


def _across_rounds(m: Machine, same: bool) -> tuple[int, int, int]:
    """(trainer, verifier drawn for its round 0, verifier drawn for its round 1): the same verifier or two."""
    for t in range(len(m.state.epoch_state.clients)):
        for a in drawn(m, t, 0):
            for b in drawn(m, t, 1):
                if (a == b) == same:
                    return t, a, b
    raise AssertionError("no such draw")


def test_fails_add_up_over_the_epoch() -> None:
    """One fail on round 0 and one by another verifier on round 1: no result drew two, but the epoch did, and
    nothing passed: the trainer is convicted (a low verifiers_per_mille still catches a persistent cheater)."""
    m = world(n=8)
    t, a, b = _across_rounds(m, same=False)
    post(m, a, t, 0, 0)
    assert m.state.epoch_state.clients[t].state == ClientState.Healthy
    post(m, b, t, 1, 0)
    c = m.state.epoch_state.clients[t]
    assert (c.epoch_fails, c.epoch_passes, c.epoch_accuser) == (2, 0, a + 1)
    assert c.state == ClientState.Ejected and m.state.clients[t].slashed == 7


def test_one_verifier_alone_never_convicts_across_rounds() -> None:
    m = world(n=8)
    t, a, _ = _across_rounds(m, same=True)
    post(m, a, t, 0, 0)
    post(m, a, t, 1, 0)
    c = m.state.epoch_state.clients[t]
    assert c.epoch_fails == 1 and c.state == ClientState.Healthy and m.state.clients[t].slashed == 0


def test_passes_over_the_epoch_outweigh_fails() -> None:
    """Two passes on round 0, then a fail on round 1: over the epoch 1 fail against 2 passes, still healthy."""
    m = world(n=12)
    for t in range(12):
        p, f = drawn(m, t, 0), drawn(m, t, 1)
        if len(p) >= 2 and len(f) >= 1:
            break
    else:
        raise AssertionError("no such draw")
    post(m, p[0], t, 0, 1)
    post(m, p[1], t, 0, 1)
    post(m, f[0], t, 1, 0)
    c = m.state.epoch_state.clients[t]
    assert (c.epoch_fails, c.epoch_passes) == (1, 2) and c.state == ClientState.Healthy
