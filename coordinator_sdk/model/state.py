"""The coordinator's state, as plain data. Field names follow the on-chain layout (IDL names snake_cased)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

MAX_CLIENTS = 256
MAX_WITNESSES = 32
MAX_VERIFIERS_PER_MILLE = 10000
NUM_ROUNDS = 4
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


class RunState(IntEnum):
    Uninitialized = 0
    WaitingForMembers = 1
    Warmup = 2
    RoundTrain = 3
    RoundWitness = 4
    Cooldown = 5
    Finished = 6
    Paused = 7


class ClientState(IntEnum):
    Healthy = 0
    Dropped = 1
    Withdrawn = 2
    Ejected = 3


# run states grouped as the program reads them (plain tuples: decoded accounts give ints or numpy scalars)
IN_ROUND = (RunState.RoundTrain, RunState.RoundWitness)
IN_EPOCH = (RunState.Warmup, RunState.RoundTrain, RunState.RoundWitness, RunState.Cooldown)
NO_EPOCH = (RunState.Uninitialized, RunState.WaitingForMembers, RunState.Finished, RunState.Paused)


@dataclass
class Config:
    warmup_time: int = 30
    cooldown_time: int = 30
    max_round_train_time: int = 30
    round_witness_time: int = 5
    global_batch_size_warmup_tokens: int = 0
    epoch_time: int = 600
    total_steps: int = 1000
    init_min_clients: int = 1
    min_clients: int = 1
    witness_nodes: int = 0
    global_batch_size_start: int = 8
    global_batch_size_end: int = 8
    waiting_for_members_extra_time: int = 3
    max_seq_len: int = 512
    verifiers_per_mille: int = 3000  # issue 25: expected verifiers per trainer and round x 1000; 0: no verdicts

    def violations(self) -> list[str]:
        """Every sanity rule the config breaks (psyche-facts §2.1), empty when it is sound."""
        rules = [
            (self.epoch_time > 0, "epoch_time must be > 0"),
            (self.warmup_time < self.epoch_time, "warmup_time must be < epoch_time"),
            (0 < self.max_round_train_time < self.epoch_time, "max_round_train_time must be in (0, epoch_time)"),
            (self.round_witness_time > 0, "round_witness_time must be > 0"),
            (self.min_clients > 0, "min_clients must be > 0"),
            (self.min_clients <= self.init_min_clients <= MAX_CLIENTS, "need min_clients <= init_min_clients <= 256"),
            (0 < self.global_batch_size_start <= self.global_batch_size_end,
             "need 0 < global_batch_size_start <= global_batch_size_end"),
            (self.total_steps > 0, "total_steps must be > 0"),
            (self.witness_nodes <= self.min_clients, "witness_nodes must be <= min_clients"),
            (self.witness_nodes <= MAX_WITNESSES, "witness_nodes must be <= 32"),
            (self.cooldown_time > 0, "cooldown_time must be > 0"),
            (self.waiting_for_members_extra_time > 0, "waiting_for_members_extra_time must be > 0"),
            (self.max_seq_len > 0, "max_seq_len must be > 0"),
            (self.global_batch_size_warmup_tokens <= 2**47, "global_batch_size_warmup_tokens must be <= 2^47"),
            (self.verifiers_per_mille <= MAX_VERIFIERS_PER_MILLE, "verifiers_per_mille must be <= 10000"),
        ]
        return [msg for ok, msg in rules if not ok]


@dataclass
class Witness:
    """participants: one bit per epoch client of the round (coordinator_sdk.participation); b"" for a
    warmup vote, which stores only its index."""
    client_index: int
    participants: bytes
    broadcast_bloom: bytes
    broadcast_merkle: bytes


@dataclass
class Round:
    witnesses: list[Witness] = field(default_factory=list)
    data_index: int = 0
    random_seed: int = 0
    height: int = 0
    clients_len: int = 0


@dataclass
class EpochClient:
    """A member of the current epoch; registry_index is its slot in State.clients (checked against the
    signer before use, since an evicted client's slot may hold someone else)."""
    signer: bytes
    p2p: bytes
    state: ClientState = ClientState.Healthy
    exited_height: int = 0
    registry_index: int = 0
    # verdicts (coordinator_sdk.model.verdicts): as a verifier, (1 + height, trainer key) of its last verdict;
    # as a trainer, per ring slot of a kept round: fail / pass counts and 1 + the first accuser's registry slot
    verdict_height: int = 0
    verdict_key: int = 0
    fails: list[int] = field(default_factory=lambda: [0] * NUM_ROUNDS)
    passes: list[int] = field(default_factory=lambda: [0] * NUM_ROUNDS)
    accuser: list[int] = field(default_factory=lambda: [0] * NUM_ROUNDS)
    # as a trainer, over the whole epoch (all its results, saturating at 255): what convicts at a low rate
    epoch_fails: int = 0
    epoch_passes: int = 0
    epoch_accuser: int = 0  # 1 + the registry slot of the epoch's first fail verdict; its later fails don't count


@dataclass
class RegisteredClient:
    """A wallet that joined the run at some point: its keys, when it last joined, and its points."""
    signer: bytes
    p2p: bytes
    addr_hint: bytes = b""
    active: int = 0
    earned: int = 0
    slashed: int = 0


@dataclass
class EpochState:
    rounds: list[Round] = field(default_factory=lambda: [Round() for _ in range(NUM_ROUNDS)])
    clients: list[EpochClient] = field(default_factory=list)
    exited_clients: list[EpochClient] = field(default_factory=list)
    rounds_head: int = 0
    start_step: int = 0
    last_step: int = 0
    start_timestamp: int = 0
    first_round: bool = False  # zeroed until an epoch starts, as on chain
    cold_start_epoch: bool = False
    clients_at_start: int = 0


@dataclass
class State:
    run_state: RunState = RunState.Uninitialized
    config: Config = field(default_factory=Config)
    epoch: int = 0
    step: int = 1
    epoch_start_data_index: int = 0
    epoch_state: EpochState = field(default_factory=EpochState)
    run_state_start_unix_timestamp: int = 0
    pending_pause: bool = False
    clients: list[RegisteredClient] = field(default_factory=list)
    next_active: int = 1
    earning_rate: int = 0
    slashing_rate: int = 0
    future_earning_rate: int = 0
    future_slashing_rate: int = 0
    nonce: int = 0
    checkpoint: bytes = b""
    evict_cursor: int = 0  # ties between evictable registry slots go round-robin from here
    seed_slot: int = 0  # where the current round (or the Warmup) began: the next seed is this slot's hash
    # checkpoint votes by epoch-client index (checkpoint_vote of the reference; 0: no vote), cleared when an
    # epoch starts; only Cooldown takes votes
    checkpoint_votes: list[int] = field(default_factory=lambda: [0] * MAX_CLIENTS)
    # (earned, slashed) banked per wallet when its registry slot was given to a newcomer (the program's
    # ClientPoints PDAs); a wallet's points are its slot's plus these
    banked: dict[bytes, tuple[int, int]] = field(default_factory=dict)

    @property
    def current_round(self) -> Round:
        return self.epoch_state.rounds[self.epoch_state.rounds_head]

    def previous_round(self, back: int = 1) -> Round | None:
        """The round `back` steps before the current one in this epoch, or None before the epoch had it."""
        if self.epoch_state.first_round or self.current_round.height < back:
            return None
        return self.epoch_state.rounds[(self.epoch_state.rounds_head - back) % NUM_ROUNDS]

    def registry_entry(self, c: EpochClient) -> RegisteredClient | None:
        """The registry entry of an epoch client, or None when its slot was given to someone else."""
        if c.registry_index < len(self.clients) and self.clients[c.registry_index].signer == c.signer:
            return self.clients[c.registry_index]
        return None

    def halted(self) -> bool:
        return self.run_state in (RunState.Uninitialized, RunState.Finished, RunState.Paused)
