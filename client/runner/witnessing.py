"""What a client decides from the chain's view of a round, as pure functions of decoded state.

Why pure: every client must reach the same answers (who is elected, which results count, who is unhealthy)
from the same account bytes; keeping chain reads and P2P out of these functions is what lets the tests check
them against the program without a network.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coordinator_sdk.bloom import Bloom
from coordinator_sdk.consensus import consensus_commitment, trainer_healthy
from coordinator_sdk.merkle import merkle_root
from coordinator_sdk.model.state import NUM_ROUNDS, ClientState
from coordinator_sdk.shuffle import elected_witnesses, sha256


def round_at(state: Any, back: int) -> Any:
    """The round `back` rounds before the current one in the 4-slot ring."""
    return state.rounds[(state.rounds_head + NUM_ROUNDS - back) % NUM_ROUNDS]


def epoch_index(state: Any, signer: bytes) -> int | None:
    for i in range(state.num_epoch_clients):
        if bytes(state.epoch_clients[i].signer) == signer:
            return i
    return None


def round_trainers(state: Any) -> list[tuple[bytes, bytes]]:
    """(p2p key, signer) of the current round's trainers, in epoch order."""
    r = state.rounds[state.rounds_head]
    n = min(int(r.clients_len), int(state.num_epoch_clients))
    return [(bytes(state.epoch_clients[i].p2p), bytes(state.epoch_clients[i].signer)) for i in range(n)]


def is_elected(state: Any, signer: bytes) -> bool:
    """Whether `signer` is an elected witness of the current round (the program's swap-or-not election)."""
    idx = epoch_index(state, signer)
    r = state.rounds[state.rounds_head]
    if idx is None or idx >= r.clients_len:
        return False
    return idx in elected_witnesses(int(r.clients_len), int(r.random_seed), int(state.config.witness_nodes))


def healthy_signers(state: Any) -> set[bytes]:
    """Signers of the epoch's clients the chain still lists as healthy (not dropped or withdrawn)."""
    return {bytes(state.epoch_clients[i].signer) for i in range(int(state.num_epoch_clients))
            if int(state.epoch_clients[i].state) == ClientState.Healthy}


def elected_unposted(state: Any) -> list[int]:
    """Epoch indices of the current round's elected witnesses that are healthy and have not posted yet."""
    r = state.rounds[state.rounds_head]
    n = int(r.clients_len)
    posted = {int(r.witnesses[w].client_index) for w in range(int(r.num_witnesses))}
    return [i for i in elected_witnesses(n, int(r.random_seed), int(state.config.witness_nodes))
            if i not in posted and i < int(state.num_epoch_clients)
            and int(state.epoch_clients[i].state) == ClientState.Healthy]


def witness_blooms(rnd: Any, which: str) -> list[Bloom]:
    return [Bloom.from_bytes(bytes(getattr(rnd.witnesses[w], which))) for w in range(int(rnd.num_witnesses))]


@dataclass
class WitnessReport:
    """What this client saw of one step's results: who delivered a valid result, the broadcast bloom of
    their commitments and the merkle root a witness posts."""
    delivered: list[bytes] = field(default_factory=list)  # signers
    broadcast: Bloom = field(default_factory=Bloom.random)
    commitments: list[bytes] = field(default_factory=list)

    def add(self, signer: bytes, commitment: bytes) -> None:
        if signer not in self.delivered:
            self.delivered.append(signer)
        if commitment not in self.commitments:
            self.broadcast.add(commitment)
            self.commitments.append(commitment)

    def participant(self, still_going: set[bytes] | None) -> Bloom:
        """The participant bloom: trainers that delivered the previous step AND (when `still_going` is given)
        said `finished` this round. Why both: a trainer that died after delivering S-1 is then missing from
        this round's blooms, so the next round's health check drops it one round sooner, and the rounds
        after it no longer wait for it."""
        bloom = Bloom.random()
        for signer in self.delivered:
            if still_going is None or signer in still_going:
                bloom.add(sha256(signer))
        return bloom

    @property
    def merkle(self) -> bytes:
        return merkle_root(self.commitments) if self.commitments else bytes(32)


def consensus_results(announced: dict[bytes, bytes], trainers: list[bytes], witnessing_round: Any,
                      witness_nodes: int) -> dict[bytes, bytes]:
    """p2p key -> commitment of every trainer whose announced result a quorum of the witnessing round's
    broadcast blooms vouch for. A trainer's batch is its own, so each batch has one candidate."""
    blooms = witness_blooms(witnessing_round, "broadcast_bloom")
    if not blooms:
        return {}
    out = {}
    for key in sorted(trainers):
        c = announced.get(key)
        if c is not None and consensus_commitment([c], blooms, witness_nodes) == c:
            out[key] = c
    return out


def unhealthy_clients(state: Any, me: bytes) -> list[int]:
    """Epoch indices of healthy-marked clients other than `me` that fewer than a quorum of the previous
    round's witnesses saw deliver: the health checks an elected witness sends."""
    prev = round_at(state, 1)
    blooms = witness_blooms(prev, "participant_bloom")
    if not blooms:
        return []
    wn = int(state.config.witness_nodes)
    return [i for i in range(int(state.num_epoch_clients))
            if int(state.epoch_clients[i].state) == 0 and bytes(state.epoch_clients[i].signer) != me
            and not trainer_healthy(bytes(state.epoch_clients[i].signer), blooms, wn)]
