"""The transitions of the coordinator state machine (psyche-facts §2.3–§3.5 plus this project's changes:
points only for epochs that complete, an idle-witness penalty, exact-integer batch ramp, and the hardening
rules of issue 14: seeds from a later slot, healthy-only actions, unique P2P keys, eviction of the least
useful registry slot, health quorum over the elected witnesses; a round that stops waiting for elected
witnesses that withdrew or were dropped; and, issue 21, exact participant bits and every round counting:
the tick that ends a round's witnessing drops whoever a quorum of its elected witnesses left out).

Every public method is one instruction: it either raises a ModelError and leaves the state untouched,
or applies fully and bumps `nonce`. Time is the chain's `unix_timestamp`; `seed` is the round seed the
chain derives for a round started by this instruction; `slot` is the chain's slot (None: a slot later than
any seen, so a round is never held back for want of a fresh slot hash)."""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable

from coordinator_sdk.assignment import batch_size
from coordinator_sdk.consensus import witness_quorum
from coordinator_sdk.model import errors as E
from coordinator_sdk.model.registry import bank, evictable_slot
from coordinator_sdk.model.state import (
    MAX_CLIENTS,
    MAX_WITNESSES,
    NUM_ROUNDS,
    U32_MAX,
    U64_MAX,
    ClientState,
    Config,
    EpochClient,
    EpochState,
    RegisteredClient,
    Round,
    RunState,
    State,
    Witness,
)
from coordinator_sdk.participation import absent_count, absentees, in_range
from coordinator_sdk.shuffle import is_witness, witness_order, witness_slots

ACTIVE = (RunState.RoundTrain, RunState.RoundWitness, RunState.Cooldown)
IN_EPOCH = (RunState.Warmup, *ACTIVE)


def _instruction(fn: Callable) -> Callable:
    """All-or-nothing: work on a copy, commit it and bump the nonce only when nothing was refused."""
    def run(self: Machine, *args, **kwargs):
        draft = copy.deepcopy(self.state)
        result = fn(self, draft, *args, **kwargs)
        if draft.nonce >= U64_MAX:  # the chain bumps the nonce last, with a checked add
            raise E.ArithmeticOverflow("the nonce is at u64::MAX")
        draft.nonce += 1
        self.state = draft
        return result
    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


class Machine:
    def __init__(self, state: State | None = None) -> None:
        self.state = state or State()

    # ---- owner --------------------------------------------------------------------------------------
    @_instruction
    def update_config(self, s: State, config: Config) -> None:
        if s.run_state == RunState.Finished:
            raise E.RunFinished("the run is finished")
        if not s.halted():
            raise E.NotHalted("config changes only while the run is paused or not started")
        bad = config.violations()
        if bad:
            raise E.InvalidConfig("; ".join(bad))
        s.config = copy.deepcopy(config)

    @_instruction
    def set_checkpoint(self, s: State, reference: bytes) -> None:
        """The owner names the weights the run starts from (only while halted)."""
        if len(reference) > 127:
            raise E.StringTooLong("a checkpoint reference is at most 127 bytes")
        if s.run_state == RunState.Finished:
            raise E.RunFinished("the run is finished")
        if not s.halted():
            raise E.NotHalted("the checkpoint is set by the owner only while the run is paused or not started")
        s.checkpoint = reference

    @_instruction
    def update_progress(self, s: State, step: int) -> None:
        if s.run_state == RunState.Finished:
            raise E.RunFinished("the run is finished")
        if not s.halted():
            raise E.NotHalted("progress changes only while the run is paused or not started")
        if step <= 0:
            raise E.InvalidProgress("step must be > 0")
        s.step = step

    @_instruction
    def set_future_epoch_rates(self, s: State, earning: int | None, slashing: int | None) -> None:
        for v in (earning, slashing):
            if v is not None and not 0 <= v <= U64_MAX:
                raise E.ArithmeticOverflow(f"rate {v} is not a u64")
        if earning is not None:
            s.future_earning_rate = earning
        if slashing is not None:
            s.future_slashing_rate = slashing

    @_instruction
    def set_paused(self, s: State, paused: bool, now: int, seed: int, slot: int | None = None) -> None:
        if paused:
            if s.run_state in ACTIVE:
                s.pending_pause = True
            elif s.run_state in (RunState.WaitingForMembers, RunState.Warmup):
                _withdraw_all(s)
                _change(s, RunState.Paused, now)
                s.epoch_state.cold_start_epoch = True
            else:
                raise E.WrongState(f"cannot pause a run in state {s.run_state.name}")
            return
        if s.run_state == RunState.Uninitialized:
            bad = s.config.violations()
            if bad:
                raise E.InvalidConfig("; ".join(bad))
            s.step = max(s.step, 1)
            _change(s, RunState.Paused, now)
        if s.run_state != RunState.Paused:
            raise E.NotPaused(f"the run is {s.run_state.name}, not paused")
        _change(s, RunState.Finished if s.step >= s.config.total_steps else RunState.WaitingForMembers, now)
        s.next_active = _add_u64(s.next_active, 1)  # everyone joins again after a pause
        _tick(s, now, seed, slot)

    # ---- clients ------------------------------------------------------------------------------------
    @_instruction
    def join_run(self, s: State, signer: bytes, p2p: bytes, addr_hint: bytes, now: int, seed: int,
                 slot: int | None = None, p2p_proven: bool = False, points_for: bytes | None = None) -> None:
        """`p2p_proven`: the P2P key signed the transaction (the wallet's own key always does); such a claim
        takes the key from registry entries that hold it without the proof, and a wallet's join takes its own
        wallet key back from entries that registered it as their P2P key (they fall back to their signer key).
        Another registered wallet's key is never taken: so the key an entry falls back to is nobody else's, and
        no two registry entries (hence no two epoch entries, copied from them) share a P2P key.
        `points_for`: the wallet whose points PDA the join passed, None for the evicted wallet's own (what the
        SDK passes); a slot with points is only taken with its own wallet's PDA."""
        if s.run_state == RunState.Finished:
            raise E.RunFinished("the run is finished")
        others = [c for c in s.clients if c.signer != signer]
        proven = p2p_proven or p2p == signer
        held = any(c.p2p == p2p for c in others) or \
            any(c.p2p == p2p and c.signer != signer for c in s.epoch_state.clients)
        if any(c.signer == p2p for c in others) or (held and not proven):
            raise E.P2pKeyTaken("another client already holds this P2P key, or it is another wallet's key")
        for c in others:
            if c.p2p in (p2p, signer):
                c.p2p = c.signer
        known = next((c for c in s.clients if c.signer == signer), None)
        if known is None:
            known = RegisteredClient(signer, p2p)
            if len(s.clients) < min(s.config.global_batch_size_end, MAX_CLIENTS):
                s.clients.append(known)
            else:
                slot_i = evictable_slot(s)
                if slot_i is None:
                    if len(s.clients) >= MAX_CLIENTS:
                        raise E.ClientsFull(f"{MAX_CLIENTS} clients are registered")
                    raise E.MoreClientsThanBatches(f"only {s.config.global_batch_size_end} samples per round")
                bank(s, s.clients[slot_i], points_for)
                s.clients[slot_i] = known
        known.p2p, known.addr_hint, known.active = p2p, addr_hint, s.next_active
        if not s.halted():
            _tick(s, now, seed, slot)

    @_instruction
    def withdraw(self, s: State, signer: bytes, now: int, seed: int, slot: int | None = None) -> None:
        known = next((c for c in s.clients if c.signer == signer), None)
        if known is None:
            raise E.SignerNotAClient("this wallet never joined the run")
        known.active = 0
        for c in s.epoch_state.clients:
            if c.signer == signer and c.state == ClientState.Healthy:
                c.state = ClientState.Withdrawn
        if not s.halted():  # then the tick: in RoundTrain, a withdrawn elected witness no longer holds the round
            _tick(s, now, seed, slot)

    @_instruction
    def tick(self, s: State, now: int, seed: int, slot: int | None = None) -> None:
        if s.halted():
            raise E.Halted(f"the run is {s.run_state.name}")
        _tick(s, now, seed, slot)

    @_instruction
    def warmup_witness(self, s: State, signer: bytes, now: int, seed: int, slot: int | None = None) -> None:
        if s.halted():
            raise E.Halted(f"the run is {s.run_state.name}")
        index = _epoch_index(s, signer)
        if s.run_state != RunState.Warmup:
            if s.run_state == RunState.RoundTrain and s.current_round.height == 0:
                return  # a late warmup witness after the switch is accepted and ignored
            raise E.WrongState(f"warmup witnesses only in Warmup, the run is {s.run_state.name}")
        _require_healthy(s, index)
        round_ = s.current_round
        # a repeated vote only ticks, and so does one past 32 (round 0 may wait for a later slot)
        if all(w.client_index != index for w in round_.witnesses) and len(round_.witnesses) < MAX_WITNESSES:
            round_.witnesses.append(Witness(index, b"", b"", bytes(32)))
        _tick(s, now, seed, slot)  # starts round 0 once every slot voted and the seed is ready

    @_instruction
    def witness(self, s: State, signer: bytes, participants: bytes, broadcast: bytes, merkle: bytes,
                now: int, seed: int, step: int | None = None, slot: int | None = None) -> None:
        """`participants`: one bit per epoch client of the round (coordinator_sdk.participation)."""
        if s.halted():
            raise E.Halted(f"the run is {s.run_state.name}")
        if s.run_state not in (RunState.RoundTrain, RunState.RoundWitness):
            raise E.WrongState(f"witnesses only in RoundTrain/RoundWitness, the run is {s.run_state.name}")
        index = _require_healthy(s, _epoch_index(s, signer))
        if step is not None and step != s.step:
            raise E.StaleRound(f"the witness is for step {step}, the current round is step {s.step}")
        round_ = s.current_round
        if not in_range(participants, round_.clients_len):
            raise E.ParticipantOutOfRange(f"participant bits past the round's {round_.clients_len} clients")
        if not is_witness(index, round_.clients_len, round_.random_seed, s.config.witness_nodes):
            raise E.WitnessNotElected(f"client {index} is not a witness of round {round_.height}")
        if any(w.client_index == index for w in round_.witnesses):
            raise E.DuplicateWitness(f"client {index} already witnessed round {round_.height}")
        if len(round_.witnesses) >= MAX_WITNESSES:
            raise E.WitnessesFull("32 witnesses already")
        round_.witnesses.append(Witness(index, participants, broadcast, merkle))  # seed_slot stays: no re-roll
        _tick(s, now, seed, slot)  # RoundTrain moves on once every elected witness posted or left

    @_instruction
    def health_check(self, s: State, reporter: bytes, target_index: int, now: int, seed: int,
                     slot: int | None = None) -> None:
        """Drops now, in any round, a client a quorum of the current round's elected witnesses (posted or not)
        left out of their participant bits: the round-ending tick would drop it anyway (_drop_absent); this
        only stops the round waiting for an elected witness that is gone."""
        if s.halted():
            raise E.Halted(f"the run is {s.run_state.name}")
        _require_healthy(s, _epoch_index(s, reporter))
        if s.run_state not in (RunState.RoundTrain, RunState.RoundWitness):
            raise E.HealthCheckTooEarly("health checks only while a round is in progress")
        r = s.current_round
        if not 0 <= target_index < min(len(s.epoch_state.clients), r.clients_len):
            raise E.NotAnEpochClient(f"no epoch client at index {target_index}")
        target = s.epoch_state.clients[target_index]
        absent = absent_count([w.participants for w in r.witnesses], target_index)
        if absent < _round_quorum(s, r):
            raise E.ClientIsHealthy(f"too few of the round's elected witnesses missed client {target_index}")
        if target.state == ClientState.Healthy:
            target.state = ClientState.Dropped
        _tick(s, now, seed, slot)  # then the tick: in RoundTrain, a dropped elected witness no longer holds the round

    @_instruction
    def checkpoint(self, s: State, signer: bytes, reference: bytes, now: int, seed: int,
                   slot: int | None = None) -> None:
        """A vote, in Cooldown only, for the weights the next epoch starts from: one vote per healthy epoch
        client (a new one replaces it); the reference becomes the run's checkpoint when a strict majority of
        the healthy epoch clients voted for it."""
        if len(reference) > 127:
            raise E.StringTooLong("a checkpoint reference is at most 127 bytes")
        if s.run_state != RunState.Cooldown:
            raise E.WrongState(f"checkpoint votes only in Cooldown, the run is {s.run_state.name}")
        index = _require_healthy(s, _epoch_index(s, signer))
        vote = checkpoint_vote(reference)
        s.checkpoint_votes[index] = vote
        healthy = [i for i, c in enumerate(s.epoch_state.clients) if c.state == ClientState.Healthy]
        votes = sum(s.checkpoint_votes[i] == vote for i in healthy)
        if votes * 2 > len(healthy):
            s.checkpoint = reference
        _tick(s, now, seed, slot)


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
    """The earliest chain time at which a `tick` changes the state (clients use it to know when to send one),
    or None when only an instruction other than tick can move the run (halted, or waiting for members)."""
    cfg = s.config
    durations = {RunState.Warmup: cfg.warmup_time, RunState.RoundTrain: cfg.max_round_train_time,
                 RunState.RoundWitness: cfg.round_witness_time, RunState.Cooldown: cfg.cooldown_time}
    if s.run_state == RunState.WaitingForMembers:
        pending = sum(c.active == s.next_active for c in s.clients)
        if pending < cfg.init_min_clients:
            return None
        duration = cfg.waiting_for_members_extra_time
    elif s.run_state in durations:
        duration = durations[s.run_state]
    else:
        return None
    start = s.run_state_start_unix_timestamp
    return max(start + duration, start + 1)
