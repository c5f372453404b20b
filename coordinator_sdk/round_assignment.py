"""Who trains which samples in the current round, read from a decoded coordinator state.

Trainers are the epoch's clients in on-chain order, shuffled with the round seed (LCG Fisher-Yates), and
given contiguous sample intervals from the round's data_index (psyche-facts §2.6). Every client, witness
and data server derives the same map from the same account."""
from __future__ import annotations

from typing import Any

from coordinator_sdk.assignment import assign_batches, batch_size
from coordinator_sdk.model.state import IN_ROUND, NO_EPOCH

ROUND_STATES = IN_ROUND  # RoundTrain, RoundWitness


def round_batch_size(state: Any) -> int:
    r = state.rounds[state.rounds_head]
    c = state.config
    return batch_size(r.data_index, c.max_seq_len, c.global_batch_size_start, c.global_batch_size_end,
                      c.global_batch_size_warmup_tokens)


def current_assignment(state: Any) -> dict[bytes, tuple[int, int]]:
    """p2p public key -> inclusive (first, last) sample indices, for the round in progress ({} otherwise)."""
    if state.run_state not in ROUND_STATES:
        return {}
    r = state.rounds[state.rounds_head]
    trainers = [bytes(state.epoch_clients[i].p2p) for i in range(min(r.clients_len, state.num_epoch_clients))]
    if not trainers:
        return {}
    return {key: (first, last) for key, first, last in assign_batches(trainers, r.random_seed, r.data_index,
                                                                     round_batch_size(state))}


def epoch_p2p_keys(state: Any) -> set[bytes]:
    """P2P keys of the current epoch's clients (members of the run right now)."""
    if state.run_state in NO_EPOCH:
        return set()
    return {bytes(state.epoch_clients[i].p2p) for i in range(state.num_epoch_clients)}
