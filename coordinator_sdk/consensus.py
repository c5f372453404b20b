"""Deciding from witnesses' posts: the quorum, and which commitment per batch is the consensus one (who
trained is exact: coordinator_sdk.participation)."""
from __future__ import annotations

from collections.abc import Sequence

from coordinator_sdk.bloom import Bloom


def witness_quorum(n_witnesses: int, witness_nodes: int = 0) -> int:
    """Witnesses that must agree: of w (configured, else received) witnesses, 1->1, 2->2, 3->2, else
    max(1, floor(2w/3))."""
    w = witness_nodes or n_witnesses
    if w <= 0:
        return 1
    if w <= 2:
        return w
    if w == 3:
        return 2
    return max(1, 2 * w // 3)


def consensus_commitment(commitments: Sequence[bytes], broadcast_blooms: Sequence[Bloom],
                         witness_nodes: int = 0) -> bytes | None:
    """Per witness, credit the first commitment (in arrival order) its broadcast bloom contains; the
    best-scored one wins if it reaches the quorum (ties: the earliest arrival). None: the batch is skipped."""
    scores = [0] * len(commitments)
    for bloom in broadcast_blooms:
        for i, c in enumerate(commitments):
            if bloom.contains(c):
                scores[i] += 1
                break
    if not commitments:
        return None
    best = max(range(len(commitments)), key=lambda i: (scores[i], -i))
    return commitments[best] if scores[best] >= witness_quorum(len(broadcast_blooms), witness_nodes) else None
