"""Which samples each trainer trains in a round, and how big a round's batch is (the batch-size ramp).

Exact integer arithmetic throughout (Psyche rounds an f64; integers give every implementation, on chain
and off, the same answer at every size)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from coordinator_sdk.shuffle import deterministic_shuffle

T = TypeVar("T")


def batch_size(data_index: int, max_seq_len: int, start: int, end: int, warmup_tokens: int) -> int:
    """Sequences in the round starting at `data_index`: ramps linearly from `start` to `end` over the first
    `warmup_tokens` tokens, rounding half up."""
    if not 0 < start <= end:
        raise ValueError(f"batch sizes must satisfy 0 < start <= end, got {start}, {end}")
    tokens = data_index * max_seq_len
    if warmup_tokens == 0 or tokens >= warmup_tokens:
        return end
    num = 2 * (start * warmup_tokens + (end - start) * tokens) + warmup_tokens
    return num // (2 * warmup_tokens)


def assign_batches(trainers: Sequence[T], round_seed: int, data_index: int, total: int) -> list[tuple[T, int, int]]:
    """(trainer, first, last) inclusive sample intervals, contiguous from data_index, after shuffling the
    trainers with the round seed; the first `total % n` shuffled trainers get one extra sample."""
    if not trainers:
        return []
    if total < len(trainers):
        raise ValueError(f"{total} samples cannot give each of {len(trainers)} trainers at least one")
    order = deterministic_shuffle(trainers, round_seed)
    base, extra = divmod(total, len(order))
    out, cursor = [], data_index
    for i, trainer in enumerate(order):
        size = base + (1 if i < extra else 0)
        out.append((trainer, cursor, cursor + size - 1))
        cursor += size
    return out
