"""The coordinator model's shared transition steps: the tick's phase changes and the helpers the
instructions of machine.Machine share (split from machine.py, which keeps the instructions themselves)."""
from __future__ import annotations

import hashlib

from coordinator_sdk.assignment import batch_size
from coordinator_sdk.consensus import witness_quorum
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.deadline import due_at
from coordinator_sdk.model.state import (
    MAX_CLIENTS,
    NUM_ROUNDS,
    U32_MAX,
    U64_MAX,
    ClientState,
    EpochClient,
    EpochState,
    Round,
    RunState,
    State,
    Witness,
)
from coordinator_sdk.participation import absentees
from coordinator_sdk.shuffle import witness_order, witness_slots


def checkpoint_vote(reference: bytes) -> int:
    """What the chain records for a checkpoint vote: sha256(reference)[:8] as a little-endian u64; 0 means
    "no vote", so a reference whose hash begins with 8 zero bytes votes 1."""
    return int.from_bytes(hashlib.sha256(reference).digest()[:8], "little") or 1


# ---- internals (operate on the draft state) ---------------------------------------------------------
def _epoch_index(s: State, signer: bytes) -> int:
    for i, c in enumerate(s.epoch_state.clients):
        if c.signer == signer:
            return i
    raise E.SignerNotAClient("the signer is not a client of the current epoch")


def _require_healthy(s: State, index: int) -> int:
    if s.epoch_state.clients[index].state != ClientState.Healthy:
        raise E.ClientNotHealthy(f"epoch client {index} withdrew or was dropped")
    return index


def _ready(s: State, slot: int | None) -> bool:
    """A round may start only in a slot after seed_slot (where the current round or the Warmup began): the
    next round's seed is that slot's hash, which exists from the next slot on."""
    return slot is None or slot > s.seed_slot


def _add_u64(a: int, b: int) -> int:
    """a + b as the chain's checked u64 add: ArithmeticOverflow past u64::MAX."""
    if a + b > U64_MAX:
        raise E.ArithmeticOverflow(f"{a} + {b} overflows a u64")
    return a + b


def _change(s: State, new: RunState, now: int) -> None:
    s.run_state = new
    s.run_state_start_unix_timestamp = now


def _timed_out(s: State, now: int, duration: int) -> bool:
    start = s.run_state_start_unix_timestamp
    return now != start and now >= start + duration


def _withdraw_all(s: State) -> None:
    for c in s.epoch_state.clients:
        if c.state == ClientState.Healthy:
            c.state = ClientState.Withdrawn


def _move_to_exited(s: State, height: int) -> None:
    """Non-healthy clients leave for the exited list; in Warmup the warmup votes follow their client to its
    new index and those of leavers are dropped (a vote belongs to an identity, not a position)."""
    keep, remap = [], {}
    for i, c in enumerate(s.epoch_state.clients):
        if c.state == ClientState.Healthy:
            remap[i] = len(keep)
            keep.append(c)
        else:
            if len(s.epoch_state.exited_clients) < MAX_CLIENTS:
                c.exited_height = height
                s.epoch_state.exited_clients.append(c)
    if len(keep) == len(s.epoch_state.clients):
        return
    s.epoch_state.clients = keep
    if s.run_state == RunState.Warmup:
        r = s.current_round
        r.witnesses = [Witness(remap[w.client_index], w.participants, w.broadcast_bloom, w.broadcast_merkle)
                       for w in r.witnesses if w.client_index in remap]


def _target_batch(s: State, r: Round) -> int:
    c = s.config
    return batch_size(r.data_index, c.max_seq_len, c.global_batch_size_start, c.global_batch_size_end,
                      c.global_batch_size_warmup_tokens)


def _start_round_train(s: State, now: int, seed: int, slot: int | None) -> None:
    es = s.epoch_state
    if es.first_round:
        es.rounds_head, height, data_index = 0, 0, s.epoch_start_data_index
        s.next_active = _add_u64(s.next_active, 1)  # the next epoch's members must join again
    else:
        prev = s.current_round
        es.rounds_head = (es.rounds_head + 1) % NUM_ROUNDS
        height, data_index = prev.height + 1, _add_u64(prev.data_index, _target_batch(s, prev))
    es.rounds[es.rounds_head] = Round([], data_index, seed, height, len(es.clients))
    for c in es.clients:  # the slot's verdicts were of height - 4, no longer kept
        c.fails[es.rounds_head] = c.passes[es.rounds_head] = c.accuser[es.rounds_head] = 0
    if slot is not None:
        s.seed_slot = slot  # the round after this one: this slot's hash, unknown to all yet
    _change(s, RunState.RoundTrain, now)


def _penalize_idle_witnesses(s: State) -> None:
    r = s.current_round
    posted = {w.client_index for w in r.witnesses}
    for i in witness_order(r.clients_len, r.random_seed)[:witness_slots(s.config.witness_nodes, r.clients_len)]:
        if i in posted or i >= len(s.epoch_state.clients) \
                or s.epoch_state.clients[i].state != ClientState.Healthy:  # may not post: not penalised
            continue
        reg = s.registry_entry(s.epoch_state.clients[i])
        if reg is not None:  # a silent witness whose slot went to a newcomer is skipped
            reg.slashed = min(U64_MAX, reg.slashed + s.slashing_rate)


def _round_witnessed(s: State) -> bool:
    """RoundTrain may end before its timeout once a witness posted and every elected witness of the round either
    posted or can no longer post (withdrew or was dropped; an index past the epoch's list counts as gone)."""
    r = s.current_round
    if not r.witnesses:
        return False
    posted = {w.client_index for w in r.witnesses}
    clients = s.epoch_state.clients
    return all(i in posted or i >= len(clients) or clients[i].state != ClientState.Healthy
               for i in witness_order(r.clients_len, r.random_seed)[:witness_slots(s.config.witness_nodes,
                                                                                   r.clients_len)])


def _round_quorum(s: State, r: Round) -> int:
    """Absences that drop a client: a quorum of the round's elected witnesses, posted or not."""
    return witness_quorum(witness_slots(s.config.witness_nodes, r.clients_len), s.config.witness_nodes)


def _drop_absent(s: State) -> None:
    """Every round counts, the epoch's first and last included: when a round's witnessing ends, each healthy
    client of the round that a quorum of its elected witnesses left out is Dropped (so not paid), before
    compaction moves the indices the bits are keyed by."""
    r, clients = s.current_round, s.epoch_state.clients
    for i in absentees([w.participants for w in r.witnesses], r.clients_len, _round_quorum(s, r)):
        if i < len(clients) and clients[i].state == ClientState.Healthy:
            clients[i].state = ClientState.Dropped


def _end_epoch_rewards(s: State) -> None:
    n = s.epoch_state.clients_at_start
    if n == 0:
        return
    share = s.earning_rate // n
    for c in s.epoch_state.clients:
        reg = s.registry_entry(c)
        if c.state == ClientState.Healthy and reg is not None:
            reg.earned = min(U64_MAX, reg.earned + share)


def _tick(s: State, now: int, seed: int, slot: int | None = None) -> None:
    es, cfg = s.epoch_state, s.config
    if s.run_state == RunState.WaitingForMembers:
        pending = [(i, c) for i, c in enumerate(s.clients) if c.active == s.next_active]
        if len(pending) >= cfg.init_min_clients and _timed_out(s, now, cfg.waiting_for_members_extra_time):
            cold = es.cold_start_epoch
            s.epoch_state = EpochState(clients=[EpochClient(c.signer, c.p2p, registry_index=i)
                                                for i, c in pending[:MAX_CLIENTS]],
                                       start_step=s.step, start_timestamp=now, first_round=True,
                                       cold_start_epoch=cold)
            s.epoch_state.clients_at_start = len(s.epoch_state.clients)
            s.earning_rate, s.slashing_rate = s.future_earning_rate, s.future_slashing_rate
            s.checkpoint_votes = [0] * MAX_CLIENTS  # no vote of an older epoch counts
            if slot is not None:
                s.seed_slot = slot  # round 0's seed: the hash of this slot, unknown to whoever sent this
            _change(s, RunState.Warmup, now)
    elif s.run_state == RunState.Warmup:
        _move_to_exited(s, 0)
        slots = witness_slots(cfg.witness_nodes, len(s.epoch_state.clients))
        voted = slots > 0 and len(s.current_round.witnesses) >= slots
        if (_timed_out(s, now, cfg.warmup_time) or voted) and _ready(s, slot):  # round 0: the warmup slot's hash
            _start_round_train(s, now, seed, slot)
        if len(s.epoch_state.clients) < cfg.min_clients:
            _change(s, RunState.Finished if s.step >= cfg.total_steps else RunState.WaitingForMembers, now)
    elif s.run_state == RunState.RoundTrain:
        if _timed_out(s, now, cfg.max_round_train_time) or _round_witnessed(s):
            _change(s, RunState.RoundWitness, now)
    elif s.run_state == RunState.RoundWitness:
        if not _timed_out(s, now, cfg.round_witness_time) or not _ready(s, slot):
            return
        r = s.current_round
        _penalize_idle_witnesses(s)
        _drop_absent(s)
        es.first_round = False
        s.step += 1
        _move_to_exited(s, r.height)
        n_witnesses = len(r.witnesses)
        if n_witnesses == 0:
            _withdraw_all(s)
            _change(s, RunState.Cooldown, now)
            return
        if now != es.start_timestamp and now >= es.start_timestamp + cfg.epoch_time and es.last_step == 0:
            es.last_step = min(s.step + 2, U32_MAX)  # saturating (a u32); total_steps ends the run first
        if (es.last_step and s.step >= es.last_step) or len(es.clients) < cfg.min_clients \
                or n_witnesses < witness_quorum(n_witnesses, cfg.witness_nodes) \
                or s.step >= cfg.total_steps or s.pending_pause:
            _change(s, RunState.Cooldown, now)
        else:
            _start_round_train(s, now, seed, slot)
    elif s.run_state == RunState.Cooldown:
        if not _timed_out(s, now, cfg.cooldown_time):
            return
        r = s.current_round
        s.epoch_start_data_index = _add_u64(r.data_index, _target_batch(s, r))
        s.epoch += 1
        _end_epoch_rewards(s)
        _move_to_exited(s, r.height)
        if s.pending_pause:
            _withdraw_all(s)
            s.pending_pause = False
            _change(s, RunState.Paused, now)
            es.cold_start_epoch = True
        else:
            _change(s, RunState.Finished if s.step >= cfg.total_steps else RunState.WaitingForMembers, now)
            es.cold_start_epoch = False


def tick_due_at(s: State) -> int | None:
    """The earliest chain time at which a `tick` changes the model's state (coordinator_sdk.model.deadline)."""
    rs, cfg = s.run_state, s.config
    pending = sum(c.active == s.next_active for c in s.clients) if rs == RunState.WaitingForMembers else 0
    voted = False
    if rs == RunState.Warmup:
        slots = witness_slots(cfg.witness_nodes, len(s.epoch_state.clients))
        voted = slots > 0 and len(s.current_round.witnesses) >= slots
    return due_at(rs, s.run_state_start_unix_timestamp, cfg, pending, voted)
