"""Drive the on-chain program (LiteSVM) and the reference model with the same instructions and compare the
decoded account with the model's state after every step. Used by the program tests and the fuzz bench.

The round seed is chain-only entropy (a SlotHashes entry), so the model is given the seed the chain chose for
a round that started in that step, and the chain's slot; `next_round_seed` is the chain's seed formula."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import SLOT_HASHES

from coordinator_sdk.bloom import Bloom
from coordinator_sdk.events import decode_logs
from coordinator_sdk.model import Config, Machine, ModelError
from coordinator_sdk.model.state import IN_ROUND, RunState, State
from coordinator_sdk.participation import MAX_CLIENTS, participants_bitmap
from coordinator_sdk.points import evictee
from coordinator_sdk.shuffle import witness_order, witness_slots
from devtools.litesvm_harness import CoordinatorSvm, Run, TxResult


def next_round_seed(prev_seed: int, slot_hashes: list[tuple[int, bytes]], seed_slot: int) -> int:
    """The program's round seed: sha256(prev seed || seed_slot u64 || hash of seed_slot)[:8], the hash taken
    from SlotHashes (32 zero bytes when seed_slot's entry is not there). Nothing else enters it: not who
    posted during the round, nor when the round's last tick landed."""
    h = next((bytes(h) for s, h in slot_hashes if s == seed_slot), bytes(32))
    data = prev_seed.to_bytes(8, "little") + seed_slot.to_bytes(8, "little") + h
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


class Divergence(AssertionError):
    """The program and the model disagree; the message lists every differing field."""


class InvariantBroken(Divergence):
    """Program and model agree on a state that breaks an invariant (e.g. two entries share a P2P key)."""


def shared_p2p_keys(chain: Any) -> list[str]:
    """Invariant: no two registry entries and no two epoch entries share a P2P key (off-chain lookups are
    keyed by it: a second holder hijacks the first one's address and batch)."""
    out = []
    for name, n, entries in (("clients", chain.num_clients, chain.clients),
                             ("epoch_clients", chain.num_epoch_clients, chain.epoch_clients)):
        keys = [bytes(entries[i].p2p) for i in range(min(n, 256))]
        dup = {k for k in keys if keys.count(k) > 1}
        out += [f"{name}[{i}] shares its P2P key" for i, k in enumerate(keys) if k in dup]
    return out


def _cfg_dict(cfg: Config) -> dict[str, int]:
    return dict(cfg.__dict__)


def compare(model: State, chain: Any) -> list[str]:
    diffs: list[str] = []

    def eq(name: str, m: object, c: object) -> None:
        if m != c:
            diffs.append(f"{name}: model {m!r} != chain {c!r}")

    eq("run_state", int(model.run_state), chain.run_state)
    for f in ("step", "epoch", "epoch_start_data_index", "run_state_start_unix_timestamp", "next_active", "nonce",
              "seed_slot", "evict_cursor"):
        eq(f, getattr(model, f), getattr(chain, f))
    eq("checkpoint", model.checkpoint, bytes(chain.checkpoint[:chain.checkpoint_len]))
    eq("checkpoint_votes", model.checkpoint_votes, list(chain.checkpoint_votes))
    eq("pending_pause", int(model.pending_pause), chain.pending_pause)
    for mf, cf in (("earning_rate", "earning_rate"), ("slashing_rate", "slashing_rate"),
                   ("future_earning_rate", "future_earning_rate"), ("future_slashing_rate", "future_slashing_rate")):
        eq(cf, getattr(model, mf), getattr(chain, cf))
    for k, v in _cfg_dict(model.config).items():
        eq(f"config.{k}", v, getattr(chain.config, k))
    es = model.epoch_state
    eq("first_round", int(es.first_round), chain.first_round)
    eq("cold_start_epoch", int(es.cold_start_epoch), chain.cold_start_epoch)
    for f in ("rounds_head", "start_step", "last_step", "start_timestamp", "clients_at_start"):
        eq(f, getattr(es, f), getattr(chain, f))
    eq("num_clients", len(model.clients), chain.num_clients)
    for i, c in enumerate(model.clients[:chain.num_clients]):
        cc = chain.clients[i]
        eq(f"clients[{i}]", (c.signer, c.p2p, c.active, c.earned, c.slashed),
           (bytes(cc.signer), bytes(cc.p2p), cc.active, cc.earned, cc.slashed))
    eq("num_epoch_clients", len(es.clients), chain.num_epoch_clients)
    for i, c in enumerate(es.clients[:chain.num_epoch_clients]):
        cc = chain.epoch_clients[i]
        eq(f"epoch_clients[{i}]", (c.signer, c.p2p, int(c.state), c.registry_index),
           (bytes(cc.signer), bytes(cc.p2p), cc.state, cc.registry_index))
        eq(f"epoch_clients[{i}].verdicts", (c.verdict_height, c.verdict_key, c.fails, c.passes, c.accuser,
                                            c.epoch_fails, c.epoch_passes, c.epoch_accuser),
           (cc.verdict_height, cc.verdict_key, list(cc.fails), list(cc.passes), list(cc.accuser),
            int(cc.epoch_fails), int(cc.epoch_passes), int(cc.epoch_accuser)))
    eq("num_exited_clients", len(es.exited_clients), chain.num_exited_clients)
    for i, c in enumerate(es.exited_clients[:chain.num_exited_clients]):
        cc = chain.exited_clients[i]
        eq(f"exited_clients[{i}]", (c.signer, int(c.state), c.exited_height),
           (bytes(cc.signer), cc.state, cc.exited_height))
    if model.run_state in IN_ROUND:  # the stored election is the SDK's witness_order of the current round
        r = model.current_round
        eq("elected", witness_order(r.clients_len, r.random_seed), list(chain.elected[:chain.elected_count]))
    if model.run_state not in (RunState.Uninitialized, RunState.WaitingForMembers):  # rounds: once an epoch began
        for i, (mr, cr) in enumerate(zip(es.rounds, chain.rounds, strict=True)):
            eq(f"rounds[{i}]", (mr.height, mr.data_index, mr.random_seed, mr.clients_len,
                                [w.client_index for w in mr.witnesses]),
               (cr.height, cr.data_index, cr.random_seed, cr.clients_len,
                [w.client_index for w in cr.witnesses[:cr.num_witnesses]]))
    return diffs


@dataclass
class Step:
    name: str
    chain: TxResult
    model_error: str | None


class DiffRun:
    """One run on both sides. Every method returns a Step; `check()` raises Divergence on any mismatch."""

    def __init__(self, config: Config, rates: tuple[int, int] = (1000, 7), run_id: str = "diff",
                 now: int = 1_700_000_000, svm: CoordinatorSvm | None = None) -> None:
        self.h = svm or CoordinatorSvm(now)
        self.run: Run = self.h.create_run(run_id, config={k: v for k, v in _cfg_dict(config).items()},
                                          rates=rates)
        self.m = Machine()
        self.m.update_config(config)
        self.m.set_future_epoch_rates(*rates)
        self.checkpoint_votes = [0, 0, 0]  # checkpoint instructions accepted, refused, and adopting a reference
        # withdraw / health_check accepted in RoundTrain after a witness posted; instructions (by name) that moved
        # RoundTrain -> RoundWitness before the timeout with elected witnesses unposted (they had left)
        self.leaves_after_posts = 0
        self.early_moves: dict[str, int] = {}
        self.wallets: set[bytes] = set()  # every wallet that tried to join: their points PDAs are compared
        self.banks = 0  # joins that banked an evicted slot's points
        self.p2p_keys = [Keypair() for _ in range(8)]  # node keys distinct from the wallets (fuzz P2P claims)
        self.check()

    @property
    def now(self) -> int:
        return self.h.now

    def chain_state(self) -> Any:
        return self.h.state(self.run)

    def _round_key(self, st: Any) -> tuple:
        r = st.rounds[st.rounds_head]
        return (st.epoch, st.rounds_head, r.height, r.random_seed, st.run_state)

    def _apply(self, name: str, send, model_call) -> Step:
        before_state = self.chain_state()
        before = self._round_key(before_state)
        slot = self.h.slot
        res = send()
        after_state = self.chain_state()
        seed = after_state.rounds[after_state.rounds_head].random_seed if self._round_key(after_state) != before else 0
        model_error = None
        try:
            model_call(seed, slot)
        except ModelError as e:
            model_error = e.name
        chain_error = res.error_name if not res.ok else None
        if (model_error or None) != chain_error:
            raise Divergence(f"{name}: model error {model_error!r}, chain error {chain_error!r} ({res.error})")
        self.check(name)
        if res.ok and before_state.run_state == RunState.RoundTrain:
            self._count_live_witnesses(name, before_state, after_state)
        if name == "checkpoint":
            self.checkpoint_votes[0 if res.ok else 1] += 1
            self.checkpoint_votes[2] += res.ok and any(e.kind == "checkpoint_adopted" for e in
                                                       decode_logs(res.logs, self.h.codec.program_id))
        return Step(name, res, model_error)

    def _count_live_witnesses(self, name: str, before: Any, after: Any) -> None:
        r = before.rounds[before.rounds_head]
        self.leaves_after_posts += name in ("withdraw", "health_check") and r.num_witnesses > 0
        start, limit = before.run_state_start_unix_timestamp, before.config.max_round_train_time
        timed_out = self.now != start and self.now >= start + limit
        r = after.rounds[after.rounds_head]
        if after.run_state == RunState.RoundWitness and not timed_out and \
                r.num_witnesses < witness_slots(after.config.witness_nodes, r.clients_len):
            self.early_moves[name] = self.early_moves.get(name, 0) + 1

    def check(self, where: str = "") -> None:
        chain = self.chain_state()
        diffs = compare(self.m.state, chain)
        for w in sorted(self.wallets | set(self.m.state.banked)):
            m, c = self.m.state.banked.get(w, (0, 0)), self.h.banked(self.run, Pubkey.from_bytes(w))
            if m != c:
                diffs.append(f"banked[{w.hex()[:8]}]: model {m!r} != chain {c!r}")
        if diffs:
            raise Divergence(f"after {where or 'setup'}:\n  " + "\n  ".join(diffs))
        broken = shared_p2p_keys(chain)
        if broken:
            raise InvariantBroken(f"after {where or 'setup'}:\n  " + "\n  ".join(broken))

    def poke(self, field: str, value: int) -> None:
        """Write a counter on both sides alike (the account's bytes and the model's state): the edges of
        the integer types, which no sequence of a test's length reaches, get the same refusals on both.
        `data_index` is the current round's."""
        acc = self.h.svm.get_account(self.run.account)
        raw = bytearray(bytes(acc.data))
        arr = np.frombuffer(raw, dtype=self.h.codec._compiler.struct("CoordinatorAccount"), offset=8, count=1)
        s = self.m.state
        if field == "data_index":
            arr["rounds"]["data_index"][0, int(arr["rounds_head"][0])] = value
            s.current_round.data_index = value
        else:
            arr[field][0] = value
            setattr(s, field, value)
        self.h.svm.set_account(self.run.account, Account(acc.lamports, bytes(raw), acc.owner, acc.executable,
                                                         acc.rent_epoch))
        self.check(f"poke {field}={value}")

    # ---- instructions -------------------------------------------------------------------------------
    def update_progress(self, step: int) -> Step:
        return self._apply("update_progress", lambda: self.h.owner(self.run, "update_progress", step),
                           lambda seed, slot: self.m.update_progress(step))

    def set_checkpoint(self, reference: str) -> Step:
        return self._apply("set_checkpoint", lambda: self.h.owner(self.run, "set_checkpoint", reference),
                           lambda seed, slot: self.m.set_checkpoint(reference.encode()))

    def update_config(self, config: Config) -> Step:
        fields = _cfg_dict(config)
        return self._apply("update_config", lambda: self.h.owner(self.run, "update_config",
                                                                 self.h.codec.config(**fields)),
                           lambda seed, slot: self.m.update_config(config))

    def set_paused(self, paused: bool) -> Step:
        return self._apply("set_paused", lambda: self.h.owner(self.run, "set_paused", paused),
                           lambda seed, slot: self.m.set_paused(paused, self.now, seed, slot))

    def join(self, user: Keypair, p2p: bytes | None = None, p2p_keypair: Keypair | None = None,
             forge_points: Pubkey | None = None) -> Step:
        """Join with P2P key `p2p` (default: the wallet's key); `p2p_keypair` signs too, proving the claim.
        `forge_points`: pass this wallet's points PDA instead of the evictee's (refused when the slot has points)."""
        key = bytes(p2p_keypair.pubkey()) if p2p_keypair else p2p or bytes(user.pubkey())
        self.wallets.add(bytes(user.pubkey()))
        out = evictee(self.chain_state(), user.pubkey())  # the SDK's prediction of the slot the join takes
        predicted = out
        if forge_points is not None:
            out = forge_points
        ix = self.h.codec.join_run(user.pubkey(), self.run.instance, self.run.account, Pubkey.from_bytes(key),
                                   "127.0.0.1:4000", prove_p2p=p2p_keypair is not None, evictee=out)
        step = self._apply("join_run", lambda: self.h.send(ix, [user, *([p2p_keypair] if p2p_keypair else [])]),
                           lambda seed, slot: self.m.join_run(bytes(user.pubkey()), key, b"127.0.0.1:4000", self.now,
                                                              seed, slot, p2p_proven=p2p_keypair is not None,
                                                              points_for=forge_points and bytes(forge_points)))
        self.banks += predicted is not None and step.chain.ok
        return step

    def client(self, name: str, user: Keypair, *args: Any) -> Step:
        signer = bytes(user.pubkey())
        model = {"tick": lambda seed, slot: self.m.tick(self.now, seed, slot),
                 "withdraw": lambda seed, slot: self.m.withdraw(signer, self.now, seed, slot),
                 "warmup_witness": lambda seed, slot: self.m.warmup_witness(signer, self.now, seed, slot),
                 "health_check": lambda seed, slot: self.m.health_check(signer, args[0], self.now, seed, slot),
                 "checkpoint": lambda seed, slot: self.m.checkpoint(signer, args[0].encode(), self.now, seed, slot),
                 "verdict": lambda seed, slot: self.m.verdict(signer, args[0], bytes(args[1]), args[2], args[3],
                                                              self.now, seed, slot),
                 "witness": lambda seed, slot: self.m.witness(signer, bytes(args[0]), bytes(args[1]), bytes(args[2]),
                                                              self.now, seed, args[3], slot)}[name]
        return self._apply(name, lambda: self.h.client(self.run, name, user, *args), model)

    def witness(self, user: Keypair, delivered: list[bytes], step: int | None = None, stray: bool = False) -> Step:
        """Post participant bits for the `delivered` signers, by their index in the current round; `stray`
        also sets the bit just past the round's clients (the program refuses it: ParticipantOutOfRange)."""
        st = self.chain_state()
        seen = set(delivered)
        indices = [i for i in range(min(int(st.num_epoch_clients), MAX_CLIENTS))
                   if bytes(st.epoch_clients[i].signer) in seen]
        if stray:
            indices.append(min(int(st.rounds[st.rounds_head].clients_len), MAX_CLIENTS - 1))
        merkle = hashlib.sha256(bytes(user.pubkey()) + self.now.to_bytes(8, "little")).digest()
        return self.client("witness", user, list(participants_bitmap(indices)), list(Bloom([0] * 8).to_bytes()),
                           list(merkle), st.step if step is None else step, 0.0, 0.0, 0.0)

    def slot_hashes(self) -> bytes:
        acc = self.h.svm.get_account(SLOT_HASHES)
        return bytes(acc.data) if acc else b""
