"""Random instruction sequences for differential testing of the program against the reference model.

An op is a small tuple; `apply` runs it on a DiffRun (program and model side by side), which raises
Divergence when the two disagree on an error or on any decoded field. The same op space feeds the
hypothesis test in CI and bench/fuzz_program.py's long runs."""
from __future__ import annotations

import random
from dataclasses import replace

from solders.keypair import Keypair

from coordinator_sdk.differential import DiffRun
from coordinator_sdk.litesvm_harness import CoordinatorSvm
from coordinator_sdk.model import Config

BASE = Config(warmup_time=6, cooldown_time=4, max_round_train_time=8, round_witness_time=2, epoch_time=40,
              total_steps=8, init_min_clients=2, min_clients=1, witness_nodes=0, global_batch_size_start=4,
              global_batch_size_end=4, waiting_for_members_extra_time=1, max_seq_len=64)
CONFIGS = [BASE, replace(BASE, witness_nodes=1), replace(BASE, witness_nodes=2, min_clients=2, init_min_clients=3),
           replace(BASE, global_batch_size_start=2, global_batch_size_end=6, global_batch_size_warmup_tokens=64 * 12)]
USERS = 5  # user 4 is usually an outsider: it only joins if the sequence says so
OPS = ("join", "withdraw", "tick", "warmup_witness", "witness", "health_check", "pause", "resume", "advance",
       "update_progress", "update_config")
WEIGHTS = (3, 1, 4, 3, 6, 1, 1, 1, 6, 1, 1)
Op = tuple


def random_op(rng: random.Random) -> Op:
    name = rng.choices(OPS, WEIGHTS)[0]
    return (name, rng.randrange(USERS), rng.randrange(2**USERS), rng.choice((0, 0, 0, 0, -1, 1)),
            rng.choice((0, 1, 1, 2, 3, 5, 8, 12)), rng.randrange(len(CONFIGS) + 1))


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
        users = [self.svm.fund(Keypair(), 10**9) for _ in range(USERS)]
        d.set_paused(False)
        return d, users


def apply(d: DiffRun, users: list[Keypair], op: Op) -> None:
    name, u, mask, offset, dt, cfg_i = op
    user = users[u]
    if name == "join":
        d.join(user)
    elif name in ("withdraw", "tick", "warmup_witness"):
        d.client(name, user)
    elif name == "witness":
        delivered = [bytes(k.pubkey()) for i, k in enumerate(users) if mask >> i & 1]
        d.witness(user, delivered, step=max(0, d.chain_state().step + offset))
    elif name == "health_check":
        d.client("health_check", user, mask % (USERS + 1))
    elif name == "pause":
        d.set_paused(True)
    elif name == "resume":
        d.set_paused(False)
    elif name == "advance":
        d.h.advance(dt)
    elif name == "update_progress":
        d.update_progress(dt)
    elif name == "update_config":
        d.update_config(CONFIGS[cfg_i] if cfg_i < len(CONFIGS) else replace(BASE, epoch_time=0))


def run_sequence(world: FuzzWorld, config_index: int, ops: list[Op]) -> int:
    """Apply a whole sequence; returns how many instructions ran. Raises Divergence on a disagreement."""
    d, users = world.new_run(CONFIGS[config_index])
    for op in ops:
        apply(d, users, op)
    return len(ops)
