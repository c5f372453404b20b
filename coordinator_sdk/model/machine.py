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
from collections.abc import Callable

from coordinator_sdk.model import errors as E
from coordinator_sdk.model.registry import bank, evictable_slot
from coordinator_sdk.model.state import (
    MAX_CLIENTS,
    MAX_WITNESSES,
    U64_MAX,
    ClientState,
    Config,
    RegisteredClient,
    RunState,
    State,
    Witness,
)
from coordinator_sdk.model.transitions import (  # noqa: F401 (checkpoint_vote, tick_due_at re-exported)
    _add_u64,
    _change,
    _drop_absent,
    _epoch_index,
    _require_healthy,
    _round_quorum,
    _tick,
    _withdraw_all,
    checkpoint_vote,
    tick_due_at,
)
from coordinator_sdk.model.verdicts import apply_verdict
from coordinator_sdk.participation import absent_count, in_range
from coordinator_sdk.shuffle import is_witness

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

    @_instruction
    def verdict(self, s: State, signer: bytes, trainer_index: int, trainer_p2p: bytes, height: int, outcome: int,
                now: int, seed: int, slot: int | None = None) -> None:
        """A verifier's finding on trainer `trainer_index`'s (P2P key `trainer_p2p`) result of round `height`
        (model.verdicts)."""
        apply_verdict(s, signer, trainer_index, trainer_p2p, height, outcome)
        _tick(s, now, seed, slot)
