"""Random instruction sequences for differential testing of the program against the reference model.

An op is a small tuple; `apply` runs it on a DiffRun (program and model side by side), which raises
Divergence when the two disagree on an error or on any decoded field. The same op space feeds the
hypothesis test in CI and bench/fuzz_program.py's long runs."""
from __future__ import annotations

import hashlib
import random
from dataclasses import replace

from solders.keypair import Keypair

from coordinator_sdk.model import Config
from coordinator_sdk.model.state import IN_ROUND, ClientState, RunState
from coordinator_sdk.shuffle import elected_witnesses
from coordinator_sdk.verdicts import eligible
from devtools.differential import DiffRun
from devtools.litesvm_harness import CoordinatorSvm

BASE = Config(warmup_time=6, cooldown_time=4, max_round_train_time=8, round_witness_time=2, epoch_time=40,
              total_steps=8, init_min_clients=2, min_clients=1, witness_nodes=0, global_batch_size_start=4,
              global_batch_size_end=4, waiting_for_members_extra_time=1, max_seq_len=64)
U64, U32, U16, U8 = 2**64 - 1, 2**32 - 1, 2**16 - 1, 2**8 - 1
CONFIGS = [BASE, replace(BASE, witness_nodes=1), replace(BASE, witness_nodes=2, min_clients=2, init_min_clients=3),
           replace(BASE, global_batch_size_start=2, global_batch_size_end=6, global_batch_size_warmup_tokens=64 * 12),
           replace(BASE, global_batch_size_start=2, global_batch_size_end=2),  # 5 users, 2 slots: evictions
           replace(BASE, epoch_time=U64),  # the epoch-end check must not wrap
           replace(BASE, total_steps=U32, epoch_time=10),  # steps near u32::MAX (update_progress edges): last_step
           replace(BASE, verifiers_per_mille=700)]  # a low verifier rate: the epoch's totals convict


def _boundary_configs() -> list[Config]:
    """BASE with one field at an edge of its type or of a rule (most are refused, on both sides alike)."""
    edges = {"warmup_time": (0, 39, 40, U64), "cooldown_time": (0, 1, U64), "max_round_train_time": (0, 1, 39, U64),
             "round_witness_time": (0, 1, U64), "global_batch_size_warmup_tokens": (1, 2**47, 2**47 + 1, U64),
             "epoch_time": (0, 1, U64 - 1, U64), "total_steps": (0, 1, U32), "max_seq_len": (0, 1, U32),
             "init_min_clients": (0, 1, 256, 257, U16), "min_clients": (0, 2, 3), "witness_nodes": (1, 32, 33, U16),
             "global_batch_size_start": (0, 1, 5, U16), "global_batch_size_end": (0, 3, 256, U16),
             "waiting_for_members_extra_time": (0, 1, U8),
             "verifiers_per_mille": (0, 1, 10000, 10001, U16)}
    return [replace(BASE, **{name: v}) for name, values in edges.items() for v in values]


CONFIG_CHOICES = CONFIGS + _boundary_configs()  # what update_config ops pick from (index len: epoch_time 0)
USERS = 5  # user 4 is usually an outsider: it only joins if the sequence says so
OPS = ("join", "withdraw", "tick", "warmup_witness", "witness", "health_check", "pause", "resume", "advance",
       "update_progress", "update_config", "checkpoint", "join_p2p", "play_round", "set_checkpoint", "depart",
       "p2p_squat", "edge", "verdict")
WEIGHTS = (3, 0.5, 4, 3, 8, 1, 0.3, 0.6, 6, 0.3, 0.3, 1.5, 0.6, 1.5, 0.3, 1.5, 0.4, 0.5, 2.5)
# "edge" writes one counter near the top of its type on both sides (state no instruction sequence reaches in a
# test's length): the next nonce bump, epoch start, round or epoch-end data index must then be refused alike,
# and the epoch's last_step (step + 2) must not wrap.
EDGE_FIELDS = {"nonce": U64, "next_active": U64, "epoch_start_data_index": U64, "data_index": U64, "step": U32}
EDGE_GAPS = (0, 1, 2, 64)  # the type's max minus these
Op = tuple
# Checkpoint votes: a few references, so that some win a majority and some do not; the first is what honest
# clients agree on, the others are diverged weights. dt == 12 sends one past the 127-byte limit.
CHECKPOINT_REFS = ("sha256:agreed@p2p", "sha256:diverged@p2p", "hf://run/other")


def checkpoint_ref(mask: int, dt: int) -> str:
    if dt == 12:
        return "x" * 128
    return CHECKPOINT_REFS[0] if mask & 6 != 6 else CHECKPOINT_REFS[1 + (mask >> 3 & 1)]


def random_op(rng: random.Random) -> Op:
    name = rng.choices(OPS, WEIGHTS)[0]
    return (name, rng.randrange(USERS), rng.randrange(2**USERS), rng.choice((0, 0, 0, 0, -1, 1)),
            rng.choice((0, 1, 1, 2, 3, 5, 8, 12)), rng.randrange(len(CONFIG_CHOICES) + 1))


def random_sequence(rng: random.Random, length: int) -> list[Op]:
    return [random_op(rng) for _ in range(length)]


class FuzzWorld:
    """One LiteSVM with the program deployed, reused for many runs (a deploy per example would dominate)."""

    def __init__(self) -> None:
        self.svm: CoordinatorSvm | None = None
        self.runs = 0

    def new_run(self, config: Config) -> tuple[DiffRun, list[Keypair]]:
        if self.svm is None or self.runs % 100 == 0:  # bound the accounts one LiteSVM keeps in memory
            self.svm = CoordinatorSvm()
        self.runs += 1
        d = DiffRun(config, run_id=f"fuzz-{self.runs}", svm=self.svm)
        # wallets from (world, run, index), so a failing sequence's wallets can be rebuilt from its run number
        users = [self.svm.fund(Keypair.from_seed(hashlib.sha256(f"psyche-fuzz/{self.runs}/{i}".encode()).digest()),
                               10**9) for i in range(USERS)]
        d.set_paused(False)
        return d, users


def apply(d: DiffRun, users: list[Keypair], op: Op) -> None:
    name, u, mask, offset, dt, cfg_i = op
    user = users[u]
    if mask & 1 and name in ("witness", "warmup_witness", "checkpoint"):  # mostly aim at someone entitled to act
        st = d.chain_state()
        by_key = {bytes(k.pubkey()): k for k in users}
        if name == "witness" and st.run_state in IN_ROUND:
            r = st.rounds[st.rounds_head]
            chosen = elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes) if r.clients_len else []
            if chosen:
                user = by_key.get(bytes(st.epoch_clients[chosen[u % len(chosen)]].signer), user)
        elif name in ("warmup_witness", "checkpoint") and st.num_epoch_clients:
            user = by_key.get(bytes(st.epoch_clients[u % st.num_epoch_clients].signer), user)
    if name == "join":  # dt == 5: with another wallet's points PDA (refused when the slot taken has points)
        d.join(user, forge_points=users[(u + 1) % USERS].pubkey() if dt == 5 else None)
    elif name == "join_p2p":  # claim a wallet key (mask & 4: a node key) of its own (mask & 8) or the next
        owner = u if mask & 8 else (u + 1) % USERS  # user's; with mask & 2 the key signs too (a proven claim)
        key = d.p2p_keys[owner] if mask & 4 else users[owner]
        d.join(user, p2p_keypair=key) if mask & 2 else d.join(user, p2p=bytes(key.pubkey()))
    elif name == "p2p_squat":
        _p2p_squat(d, users, u, mask)
    elif name == "edge":
        field = list(EDGE_FIELDS)[u % len(EDGE_FIELDS)]
        value = EDGE_FIELDS[field] - EDGE_GAPS[mask % len(EDGE_GAPS)]
        if field == "step":  # as reachable: below total_steps (reaching it ends the epoch, then the run)
            value = max(1, min(value, d.m.state.config.total_steps - 1))
        d.poke(field, value)
    elif name == "checkpoint":
        d.client("checkpoint", user, checkpoint_ref(mask, dt))
    elif name in ("withdraw", "tick", "warmup_witness"):
        d.client(name, user)
    elif name == "witness":  # dt 0 or 12: the mask's users delivered nothing; dt 5: a bit past the round's clients
        delivered = [bytes(k.pubkey()) for i, k in enumerate(users) if dt % 12 or not mask >> (i + 1) & 1]
        d.witness(user, delivered, step=min(U32, max(0, d.chain_state().step + offset)), stray=dt == 5)
    elif name == "health_check":
        d.client("health_check", user, mask % (USERS + 1))
    elif name == "verdict":
        _verdict(d, users, u, mask, offset, dt)
    elif name == "play_round":  # drives runs deep: every healthy elected witness posts, then time runs out
        _play_round(d, users, mask, dt)
    elif name == "depart":  # an elected witness leaves a round in which others posted
        _depart(d, users, u, mask, dt)
    elif name == "pause":
        d.set_paused(True)
    elif name == "resume":
        d.set_paused(False)
    elif name == "advance":
        d.h.advance(dt)
    elif name == "update_progress":  # mask & 8: steps at the top of the u32 range
        d.update_progress(U32 - dt % 4 if mask & 8 else dt)
    elif name == "set_checkpoint":
        d.set_checkpoint("sha256:x@/initial" + "/w" * (dt * 6))  # 17..161 bytes: past the 127-byte limit too
    elif name == "update_config":
        d.update_config(CONFIG_CHOICES[cfg_i] if cfg_i < len(CONFIG_CHOICES) else replace(BASE, epoch_time=0))


def _p2p_squat(d: DiffRun, users: list[Keypair], u: int, mask: int) -> None:
    """The squat chain of issue 21: wallet A registers V's node key, wallet B registers A's wallet key (with
    mask & 1 before A joins), then V proves its node key, so A's entry falls back to its wallet key; with
    mask & 2, A then proves its wallet key. No two registry or epoch entries may end up sharing a key."""
    a, b, v = u, (u + 2) % USERS, (u + 1) % USERS
    steps = [lambda: d.join(users[a], p2p=bytes(d.p2p_keys[v].pubkey())),
             lambda: d.join(users[b], p2p=bytes(users[a].pubkey()))]
    for step in reversed(steps) if mask & 1 else steps:
        step()
    d.join(users[v], p2p_keypair=d.p2p_keys[v])
    if mask & 2:
        d.join(users[a], p2p_keypair=users[a])


def _advance(d: DiffRun, seconds: int) -> None:
    """Clock jumps of a phase's duration, capped: a boundary config (a duration near u64::MAX) is a phase that
    never times out, and the Clock's unix_timestamp is an i64."""
    d.h.advance(min(seconds, 2**31))


def _play_round(d: DiffRun, users: list[Keypair], mask: int, dt: int) -> None:
    """Move the run one phase the way honest clients would (joins, warmup votes, witnesses, timeouts)."""
    st = d.chain_state()
    if st.run_state == RunState.WaitingForMembers:
        for k in users[:4]:
            d.join(k)
        d.h.advance(st.config.waiting_for_members_extra_time)
        d.client("tick", users[0])
        return
    if st.run_state == RunState.Warmup:
        d.h.advance(0)
        for i in range(st.num_epoch_clients):
            if st.epoch_clients[i].state == ClientState.Healthy:
                d.client("warmup_witness", {bytes(k.pubkey()): k for k in users}[bytes(st.epoch_clients[i].signer)])
        return
    if st.run_state == RunState.Cooldown:
        _vote_checkpoints(d, users, mask >> 2, dt)
        _advance(d, st.config.cooldown_time)
        d.client("tick", users[0])
        return
    if st.run_state not in IN_ROUND:
        return
    r = st.rounds[st.rounds_head]
    by_key = {bytes(k.pubkey()): k for k in users}
    # with dt % 4 == 0 the mask's users delivered nothing: the round's end (or a report first) drops them
    delivered = [bytes(k.pubkey()) for i, k in enumerate(users) if dt % 4 or not mask >> (i + 1) & 1]
    for i in elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes) if r.clients_len else []:
        c = st.epoch_clients[i]
        if c.state == ClientState.Healthy and not mask & 1:  # mask & 1: the elected witnesses stay silent this round
            d.h.advance(0)
            d.witness(by_key[bytes(c.signer)], delivered)
    st = d.chain_state()
    signers = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
    missed = [signers.index(k) for k in by_key if k not in delivered and k in signers]
    if missed and st.run_state in IN_ROUND:  # report the first client the witnesses did not see
        d.client("health_check", users[dt % len(users)], missed[0])
    _advance(d, dt + st.config.round_witness_time + (0 if mask & 1 == 0 else st.config.max_round_train_time))
    d.client("tick", users[0])
    if d.chain_state().run_state == RunState.Cooldown:  # the epoch ended: its clients vote at once
        _vote_checkpoints(d, users, mask, dt)


def _verdict(d: DiffRun, users: list[Keypair], u: int, mask: int, offset: int, dt: int) -> None:
    """Verdicts on round current - 1 - dt % 4 (+ offset: a round not kept, or without a successor). Without
    mask & 1, one verdict of user u on trainer index mask % (n + 2) (often not drawn, or no such client); with
    it, every drawn verifier of trainer u % n posts, verifier k passing when mask bit k + 2 is set (fails
    convict, passes vindicate and penalise the first accuser). dt == 12: an outcome that is neither."""
    st = d.chain_state()
    n = int(st.num_epoch_clients)
    height = max(0, int(st.rounds[st.rounds_head].height) - 1 - dt % 4 + offset)
    outcome = 2 if dt == 12 else (mask >> 1) & 1
    if not mask & 1 or n == 0:  # its key: the one at that index, or (mask bit 3) another client's: WrongTrainer
        index = mask % (n + 2)
        named = (index + (mask >> 3 & 1)) % n if n and index < n else None
        key = list(bytes(st.epoch_clients[named].p2p)) if named is not None else [u] * 32
        d.client("verdict", users[u], index, key, height, outcome, [u] * 32, [mask % 256] * 32)
        return
    by_key = {bytes(k.pubkey()): k for k in users}
    j, trainer = height % 4, u % n
    seed, clients_len = st.rounds[(j + 1) % 4].random_seed, int(st.rounds[j].clients_len)
    t_p2p = bytes(st.epoch_clients[trainer].p2p)
    drawn = [i for i in range(n) if eligible(seed, bytes(st.epoch_clients[i].p2p), t_p2p, clients_len,
                                                 int(st.config.verifiers_per_mille))]
    for k, i in enumerate(drawn):
        signer = by_key.get(bytes(st.epoch_clients[i].signer))
        if signer is not None:
            d.h.advance(0)
            d.client("verdict", signer, trainer, list(t_p2p), height, outcome if dt == 12 else (mask >> (k + 2)) & 1,
                     [k] * 32, [trainer] * 32)


def _pending_witnesses(st) -> list[int]:
    """Healthy elected witnesses of the current round that have not posted."""
    r = st.rounds[st.rounds_head]
    posted = {w.client_index for w in r.witnesses[:r.num_witnesses]}
    chosen = elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes) if r.clients_len else []
    return [i for i in chosen if i not in posted and i < st.num_epoch_clients
            and st.epoch_clients[i].state == ClientState.Healthy]


def _depart(d: DiffRun, users: list[Keypair], u: int, mask: int, dt: int) -> None:
    """In RoundTrain, one healthy elected witness that has not posted leaves: it withdraws (mask & 1), or a
    healthy client reports it once the others posted (the others' participant bits leave it out, so the
    report drops it when they make a quorum of the round's elected witnesses). Before, some of the other
    pending witnesses post (all with mask & 2, else dt of them); with mask & 4 the rest post after. The
    round may move to RoundWitness at the leave or at the last post."""
    st = d.chain_state()
    pending = _pending_witnesses(st) if st.run_state == RunState.RoundTrain else []
    if not pending:
        return
    by_key = {bytes(k.pubkey()): k for k in users}
    leaver = pending[u % len(pending)]
    others = [i for i in pending if i != leaver]
    k = len(others) if mask & 2 else dt % (len(others) + 1)
    gone = bytes(st.epoch_clients[leaver].signer)
    delivered = [bytes(key.pubkey()) for key in users if mask & 1 or bytes(key.pubkey()) != gone]
    signer = {i: by_key[bytes(st.epoch_clients[i].signer)] for i in pending}
    for i in others[:k]:
        d.h.advance(0)
        d.witness(signer[i], delivered)
    if mask & 1:
        d.client("withdraw", signer[leaver])
    else:
        healthy = [i for i in range(st.num_epoch_clients)
                   if st.epoch_clients[i].state == ClientState.Healthy and i != leaver]
        reporter = healthy[dt % len(healthy)] if healthy else leaver
        d.client("health_check", by_key[bytes(st.epoch_clients[reporter].signer)], leaver)
    if mask & 4:
        for i in others[k:]:
            d.h.advance(0)
            d.witness(signer[i], delivered)


def _vote_checkpoints(d: DiffRun, users: list[Keypair], mask: int, dt: int) -> None:
    """The epoch's clients vote for a checkpoint in Cooldown: those with their mask bit set abstain, and with
    mask & 1 one of them (chosen by dt) votes for diverged weights."""
    st = d.chain_state()
    by_key = {bytes(k.pubkey()): k for k in users}
    odd = dt % st.num_epoch_clients if st.num_epoch_clients else -1
    for i in range(st.num_epoch_clients):
        if mask >> (i % USERS) & 1 and i != odd:
            continue
        d.h.advance(0)
        ref = CHECKPOINT_REFS[1] if mask & 1 and i == odd else CHECKPOINT_REFS[0]
        d.client("checkpoint", by_key[bytes(st.epoch_clients[i].signer)], ref)


class Coverage:
    """What the sequences reached: phases seen, epochs completed, instructions accepted vs refused."""

    def __init__(self) -> None:
        self.phases: dict[int, int] = {}
        self.max_epoch = 0
        self.accepted: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        # sequences where a client was dropped / evicted / slashed / ejected by a verdict quorum
        self.drops = self.evictions = self.slashed = self.convictions = 0
        self.votes = [0, 0, 0]  # checkpoint votes accepted, refused, and those that gave their reference a majority
        self.adopted = 0  # checkpoint votes that changed the run's checkpoint
        self.leaves_after_posts = 0  # withdraw / health_check accepted in RoundTrain after a witness posted
        self.early_moves: dict[str, int] = {}  # RoundTrain -> RoundWitness early because the rest had left, by ix
        self.banked = 0  # sequences that ended with some wallet's points banked (its slot given to a newcomer)

    def record(self, name: str, ok: bool, state) -> None:
        (self.accepted if ok else self.refused)[name] = (self.accepted if ok else self.refused).get(name, 0) + 1
        self.phases[state.run_state] = self.phases.get(state.run_state, 0) + 1
        self.max_epoch = max(self.max_epoch, state.epoch)

    def record_sequence(self, state, votes: list[int] = (0, 0, 0), d: DiffRun | None = None) -> None:
        self.votes = [a + b for a, b in zip(self.votes, votes, strict=True)]
        if d is not None:
            self.leaves_after_posts += d.leaves_after_posts
            self.banked += bool(d.m.state.banked)
            for name, n in d.early_moves.items():
                self.early_moves[name] = self.early_moves.get(name, 0) + n
        exited = [state.exited_clients[i].state for i in range(state.num_exited_clients)]
        now = [state.epoch_clients[i].state for i in range(state.num_epoch_clients)]
        self.drops += 1 in exited + now
        self.convictions += 3 in exited + now
        self.evictions += state.evict_cursor != 0
        self.slashed += any(state.clients[i].slashed for i in range(state.num_clients))


def run_sequence(world: FuzzWorld, config_index: int, ops: list[Op], coverage: Coverage | None = None) -> int:
    """Apply a whole sequence; returns how many instructions ran. Raises Divergence on a disagreement."""
    d, users = world.new_run(CONFIGS[config_index])
    for op in ops:
        st = d.chain_state()
        before, checkpoint = st.nonce, d.m.state.checkpoint
        apply(d, users, op)
        if coverage is not None and op[0] not in ("advance", "edge"):  # no instruction: nothing to count
            state = d.chain_state()
            coverage.record(op[0], state.nonce != before, state)
            coverage.adopted += op[0] in ("checkpoint", "play_round") and d.m.state.checkpoint != checkpoint
    if coverage is not None:
        coverage.record_sequence(d.chain_state(), d.checkpoint_votes, d)
    return len(ops)
