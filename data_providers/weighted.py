"""A deterministic mixture of providers by weight (Megatron-style blending, in O(1) per index).

The weights are quantised to a period of `period` slots; within a period slots are dealt greedily
(each slot to the provider furthest below its target share), and the pattern repeats. So global index
i maps to (provider, local index) by arithmetic alone, identically on every machine, and each provider
is read in order: its local indices are 0, 1, 2, ... as the global index grows.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from data_providers.types import BatchId, DataError, DataProvider, SampleIndexError, TokenizedData


def blend_pattern(weights: Sequence[float], period: int) -> np.ndarray:
    """Provider id for each slot of one period (the Megatron greedy rule, ties to the lower id)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) == 0:
        raise ValueError("need at least one weight")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero: {list(weights)}")
    w = w / w.sum()
    counts = np.zeros(len(w))
    pattern = np.empty(period, dtype=np.int64)
    for slot in range(period):
        pick = int(np.argmax(w * (slot + 1) - counts))
        pattern[slot] = pick
        counts[pick] += 1
    return pattern


class WeightedProvider:
    def __init__(self, providers: Sequence[tuple[DataProvider, float]], period: int = 1024) -> None:
        if not providers:
            raise ValueError("WeightedProvider needs at least one (provider, weight)")
        if period < 1:
            raise ValueError(f"period must be positive, got {period}")
        self.providers = [p for p, _ in providers]
        self.pattern = blend_pattern([w for _, w in providers], period)
        self.period = period
        n = len(self.providers)
        # per_period[p]: slots of provider p in one period; before[s, p]: slots of p before slot s
        onehot = np.eye(n, dtype=np.int64)[self.pattern]
        self.per_period = onehot.sum(axis=0)
        self.before = np.cumsum(onehot, axis=0) - onehot

    @property
    def num_samples(self) -> int:
        """Global indices before the first provider runs out (its own wrap policy applies beyond)."""
        limits = []
        for p, provider in enumerate(self.providers):
            count = int(self.per_period[p])
            if count:
                cycle, r = divmod(provider.num_samples, count)
                limits.append(cycle * self.period + int(np.flatnonzero(self.pattern == p)[r]))
        return min(limits)

    def route(self, index: int) -> tuple[int, int]:
        """(provider id, local index) of a global sample index."""
        cycle, slot = divmod(index, self.period)
        p = int(self.pattern[slot])
        return p, cycle * int(self.per_period[p]) + int(self.before[slot, p])

    async def get_samples(self, batch: BatchId) -> list[TokenizedData]:
        routes = [self.route(i) for i in batch.indices()]
        by_provider: dict[int, list[int]] = {}
        for p, local in routes:
            by_provider.setdefault(p, []).append(local)
        requests: list[tuple[int, BatchId]] = []
        for p, locals_ in by_provider.items():  # local indices of one provider rise with the global index
            start = prev = locals_[0]
            for x in locals_[1:] + [None]:
                if x is not None and x == prev + 1:
                    prev = x
                    continue
                requests.append((p, BatchId(start, prev)))
                if x is not None:
                    start = prev = x
        try:
            results = await asyncio.gather(*(self.providers[p].get_samples(b) for p, b in requests))
        except SampleIndexError as e:
            raise SampleIndexError(f"weighted mixture, global batch {batch}: {e}") from e
        got: dict[tuple[int, int], TokenizedData] = {}
        for (p, b), samples in zip(requests, results, strict=True):
            if len(samples) != len(b):
                name = type(self.providers[p]).__name__
                raise DataError(f"provider {p} ({name}) returned {len(samples)} samples for {b}")
            for local, sample in zip(b.indices(), samples, strict=True):
                got[(p, local)] = sample
        return [got[r] for r in routes]
