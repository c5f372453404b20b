"""What a client decides from the chain's view of a round, as pure functions of decoded state.

Why pure: every client must reach the same answers (who is elected, which results count, who is unhealthy)
from the same account bytes; keeping chain reads and P2P out of these functions is what lets the tests check
them against the program without a network. They read the account through coordinator_sdk.account_view's
CoordinatorView (a raw decoded account is wrapped on entry).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from client.runner.state_memo import per_state
from coordinator_sdk.account_view import CoordinatorView, RoundFields, view
from coordinator_sdk.bloom import Bloom, contains_each
from coordinator_sdk.consensus import witness_quorum
from coordinator_sdk.merkle import merkle_root
from coordinator_sdk.model.state import ClientState
from coordinator_sdk.participation import absent_count, has_participant, participants_bitmap
from coordinator_sdk.shuffle import elected_witnesses, witness_slots


def round_at(state: CoordinatorView, back: int) -> RoundFields:
    """The round `back` rounds before the current one in the 4-slot ring."""
    return view(state).round_at(back)


def epoch_index(state: CoordinatorView, signer: bytes) -> int | None:
    return view(state).epoch_index(signer)


def round_trainers(state: CoordinatorView) -> list[tuple[bytes, bytes]]:
    """(p2p key, signer) of the current round's trainers, in epoch order."""
    st = view(state)
    n = min(int(st.current_round.clients_len), st.num_epoch_clients)
    return list(zip(st.epoch_column("p2p")[:n], st.epoch_column("signer")[:n], strict=True))


def is_elected(state: CoordinatorView, signer: bytes) -> bool:
    """Whether `signer` is an elected witness of the current round (the program's swap-or-not election)."""
    st = view(state)
    idx = st.epoch_index(signer)
    r = st.current_round
    if idx is None or idx >= int(r.clients_len):
        return False
    return idx in elected_witnesses(int(r.clients_len), int(r.random_seed), int(st.config.witness_nodes))


@per_state
def healthy_signers(state: CoordinatorView) -> set[bytes]:
    """Signers of the epoch's clients the chain still lists as healthy (not dropped or withdrawn)."""
    st = view(state)
    return {signer for signer, state in zip(st.epoch_signers(), st.epoch_states(), strict=True)
            if state == ClientState.Healthy}


@per_state
def elected_unposted(state: CoordinatorView) -> list[int]:
    """Epoch indices of the current round's elected witnesses that are healthy and have not posted yet."""
    st = view(state)
    r = st.current_round
    n = int(r.clients_len)
    posted = {int(r.witnesses[w].client_index) for w in range(int(r.num_witnesses))}
    return [i for i in elected_witnesses(n, int(r.random_seed), int(st.config.witness_nodes))
            if i not in posted and i < st.num_epoch_clients and st.epoch_client_state(i) == ClientState.Healthy]


def witness_blooms(rnd: RoundFields, which: str) -> list[Bloom]:
    return [Bloom.from_bytes(bytes(getattr(rnd.witnesses[w], which))) for w in range(int(rnd.num_witnesses))]


def witness_participants(rnd: RoundFields) -> list[bytes]:
    """The participant bits each posted witness of `rnd` sent (one bit per client of that round)."""
    return [bytes(rnd.witnesses[w].participants) for w in range(min(int(rnd.num_witnesses), 32))]


def round_signers(state: CoordinatorView, rnd: RoundFields) -> list[bytes]:
    """The signers of a kept round of this epoch in its index order, the order its participant bits use. The
    chain lists an epoch's clients by registry slot and removes clients only between rounds (to exited_clients,
    with the height of the last round they were in), so a round's list is the current list plus those that
    left after it, by registry slot; warmup leavers (also height 0) are the earliest exits, left out by count."""
    st = view(state)
    height = int(rnd.height)
    current = [(int(st.epoch_clients[i].registry_index), st.epoch_signer(i)) for i in range(st.num_epoch_clients)]
    left = [(int(c.registry_index), bytes(c.signer)) for c in
            (st.exited_clients[i] for i in range(st.num_exited_clients)) if int(c.exited_height) >= height]
    extra = len(current) + len(left) - int(rnd.clients_len)
    return [signer for _, signer in sorted(current + left[max(0, extra):])]


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

    def participants(self, trainers: list[tuple[bytes, bytes]], finished: set[bytes],
                     previous: set[bytes] | None) -> bytes:
        """This round's participant bits, one per trainer of the round (its index in `trainers`, the chain's
        order for the round): set when it said `finished` this round (`finished`: P2P keys) and, when it also
        trained the previous round of this epoch (`previous`: signers; None in the epoch's first round), we
        validated its result of that round. Why both: every round counts on chain (the round's end drops a
        client a quorum of witnesses left out), so a trainer that skipped this round or did not deliver the
        last one is left out, and one that died after delivering is dropped a round sooner."""
        delivered = set(self.delivered)
        return participants_bitmap(i for i, (key, signer) in enumerate(trainers) if key in finished
                                   and (previous is None or signer not in previous or signer in delivered))

    @property
    def merkle(self) -> bytes:
        return merkle_root(self.commitments) if self.commitments else bytes(32)


def consensus_results(announced: dict[bytes, bytes], trainers: list[tuple[bytes, bytes]], witnessing_round: RoundFields,
                      witnessing_signers: list[bytes], witness_nodes: int) -> dict[bytes, bytes]:
    """p2p key -> commitment of every trainer (p2p key, signer) whose announced result a quorum of the
    witnessing round's witnesses vouch for: a witness vouches when its exact participant bits list the trainer
    (by its index in `witnessing_signers`, that round's order) and its broadcast bloom holds the commitment. So
    a saturated bloom (at 256 commitments a 1024-bit bloom answers "yes" for ~30% of absent items) can no longer
    credit a result no witness received: the bloom only tells which commitment. The quorum is over every
    posted witness, as before. A trainer's batch is its own, so each batch has one candidate."""
    blooms = witness_blooms(witnessing_round, "broadcast_bloom")
    if not blooms:
        return {}
    bits = witness_participants(witnessing_round)
    index = {signer: i for i, signer in enumerate(witnessing_signers)}
    quorum = witness_quorum(len(blooms), witness_nodes)
    known = [(key, c, i) for key, signer in sorted(trainers)
             if (c := announced.get(key)) is not None and (i := index.get(signer)) is not None]
    seen = contains_each(blooms, [c for _, c, _ in known])  # per trainer, per witness: its bloom holds c
    out = {}
    for (key, c, i), held in zip(known, seen, strict=True):
        if sum(has_participant(b, i) and h for b, h in zip(bits, held, strict=True)) >= quorum:
            out[key] = c
    return out


def vouched_trainers(trainers: list[tuple[bytes, bytes]], witnessing_round: RoundFields,
                     witnessing_signers: list[bytes], witness_nodes: int) -> list[bytes]:
    """p2p keys of the trainers (p2p key, signer) whose participant bit a quorum of the witnessing round's
    posted witnesses set, whatever this client heard: a witness sets that bit for a trainer of the applied
    step only once it validated that trainer's result (and put its commitment in its bloom), so every client
    that holds the trainer's commitment applies it. A client that lacks one must obtain it or report a
    desync: applying the rest would silently diverge (`consensus_results` only credits known commitments)."""
    n = len(witness_blooms(witnessing_round, "broadcast_bloom"))
    if not n:
        return []
    bits = witness_participants(witnessing_round)
    index = {signer: i for i, signer in enumerate(witnessing_signers)}
    quorum = witness_quorum(n, witness_nodes)
    return [key for key, signer in sorted(trainers) if signer in index
            and sum(has_participant(b, index[signer]) for b in bits) >= quorum]


def absent_witnesses(state: CoordinatorView, me: bytes) -> list[int]:
    """Epoch indices of the current round's elected witnesses, healthy and not yet posted (other than `me`),
    that a quorum of the round's elected witnesses already left out of their participant bits: the health
    checks that stop the round waiting for them (the round's end would drop them anyway)."""
    st = view(state)
    r = st.current_round
    bits = witness_participants(r)
    wn = int(st.config.witness_nodes)
    quorum = witness_quorum(witness_slots(wn, int(r.clients_len)), wn)
    if len(bits) < quorum:
        return []
    return [i for i in elected_unposted(st) if st.epoch_signer(i) != me
            and absent_count(bits, i) >= quorum]
