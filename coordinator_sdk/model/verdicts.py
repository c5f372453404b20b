"""The model of the `verdict` instruction (programs/coordinator/verdict_ix.c; the rule: coordinator_sdk.verdicts).

A healthy epoch client posts what its recomputation of one trainer's result of a kept round found. The trainer's
result of round H is convicted by fails ≥ 2 and fails > passes, and so is a trainer whose results of the epoch
together drew epoch_fails ≥ 2 and epoch_fails > epoch_passes (the epoch's first accuser counted once, so two
distinct verifiers are needed; a low config.verifiers_per_mille still convicts a
persistent cheater within a few rounds): it is Ejected at once (only healthy clients are
paid when the epoch ends, so it loses the epoch's points) and slashed `slashing_rate`. A pass that vindicates
the result (passes ≥ 2 and passes > fails, trainer not convicted) slashes the first verifier that said fail for
it, once: per result only, so an honest accuser is never penalised for a cheater's honest rounds."""
from __future__ import annotations

from coordinator_sdk.model import errors as E
from coordinator_sdk.model.state import (
    IN_ROUND,
    NUM_ROUNDS,
    U64_MAX,
    ClientState,
    RegisteredClient,
    RunState,
    State,
)
from coordinator_sdk.model.transitions import _epoch_index, _require_healthy
from coordinator_sdk.verdicts import PASS, SETTLED, convicted, eligible, order_key, vindicated


def _accuser_entry(s: State, slot: int) -> RegisteredClient | None:
    """The accuser's registry entry, only while slot `slot` still holds a wallet that this epoch's lists (in the
    epoch or exited) name at that slot: a newcomer that took a leaver's slot is not the accuser."""
    if slot >= len(s.clients):
        return None
    reg = s.clients[slot]
    es = s.epoch_state
    return reg if any(c.registry_index == slot and c.signer == reg.signer
                      for c in es.clients + es.exited_clients) else None


def apply_verdict(s: State, signer: bytes, trainer_index: int, trainer_p2p: bytes, height: int, outcome: int) -> None:
    """Everything but the tick and the nonce (machine.Machine.verdict); raises before changing anything.
    `trainer_p2p` must be the P2P key at `trainer_index` (WrongTrainer): compaction at each round's end moves
    indices, and a verdict must not land on whoever took the index it was read at."""
    if outcome not in (0, PASS):
        raise E.InvalidArgument(f"outcome {outcome} is neither 0 (fail) nor 1 (pass)")
    if s.halted():
        raise E.Halted(f"the run is {s.run_state.name}")
    if s.run_state not in (*IN_ROUND, RunState.Cooldown):
        raise E.WrongState(f"verdicts only in a round or Cooldown, the run is {s.run_state.name}")
    vi = _require_healthy(s, _epoch_index(s, signer))
    clients = s.epoch_state.clients
    if not 0 <= trainer_index < len(clients):
        raise E.NotAnEpochClient(f"no epoch client at index {trainer_index}")
    if bytes(trainer_p2p) != bytes(clients[trainer_index].p2p):
        raise E.WrongTrainer(f"epoch client {trainer_index} is not the trainer {bytes(trainer_p2p).hex()[:16]}")
    current = s.current_round.height
    if height >= current or current - height >= NUM_ROUNDS:
        raise E.StaleRound(f"round {height} is not a kept round with a successor (current {current})")
    j = height % NUM_ROUNDS
    r = s.epoch_state.rounds[j]
    if r.height != height:
        raise E.StaleRound(f"ring slot {j} holds round {r.height}, not {height}")
    v, t = clients[vi], clients[trainer_index]
    seed = s.epoch_state.rounds[(j + 1) % NUM_ROUNDS].random_seed
    if vi == trainer_index or not eligible(seed, v.p2p, t.p2p, r.clients_len, s.config.verifiers_per_mille):
        raise E.NotAVerifier(f"client {vi} is not drawn to verify client {trainer_index} in round {height}")
    key = order_key(height, t.p2p)
    if key <= (v.verdict_height, v.verdict_key):
        raise E.DuplicateVerdict("a verdict must order after the verifier's last one (height, trainer key)")
    counts = t.passes if outcome == PASS else t.fails
    if counts[j] >= 255:
        raise E.ArithmeticOverflow("a verdict count is at u8::MAX")
    v.verdict_height, v.verdict_key = key
    counts[j] += 1
    if outcome != PASS and t.accuser[j] == 0:
        t.accuser[j] = v.registry_index + 1
    me = v.registry_index + 1
    if outcome == PASS:
        t.epoch_passes = min(255, t.epoch_passes + 1)
    elif t.epoch_accuser != me:  # the epoch's first accuser counts once: one verifier alone never convicts
        if t.epoch_accuser == 0:
            t.epoch_accuser = me
        t.epoch_fails = min(255, t.epoch_fails + 1)
    fails, passes = t.fails[j], t.passes[j]
    if (convicted(fails, passes) or convicted(t.epoch_fails, t.epoch_passes)) and t.state != ClientState.Ejected:
        t.state = ClientState.Ejected
        reg = s.registry_entry(t)
        if reg is not None:
            reg.slashed = min(U64_MAX, reg.slashed + s.slashing_rate)
    elif outcome == PASS and vindicated(fails, passes) and t.state != ClientState.Ejected \
            and t.accuser[j] not in (0, SETTLED):
        reg = _accuser_entry(s, t.accuser[j] - 1)
        if reg is not None:
            reg.slashed = min(U64_MAX, reg.slashed + s.slashing_rate)
        t.accuser[j] = SETTLED
