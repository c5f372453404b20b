"""Sample identity and the one interface every token source implements.

A sample index addresses one sequence of `seq_len` tokens; a `BatchId` is an *inclusive* range of such
indices (as on chain). Every provider serving the same dataset must return identical tokens for the same
index, because trainers and witnesses compare results computed from them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

U64_MAX = 2**64 - 1


class DataError(Exception):
    """Base of every data-provider failure; messages name the file, URL, peer or index involved."""


class DataFileError(DataError):
    """A token file (or manifest) is unreadable, truncated, of the wrong token size or tampered with."""


class SampleIndexError(DataError, IndexError):
    """A sample index lies past the end of the dataset and the provider does not wrap."""


class RemoteDataError(DataError):
    """A remote source (HTTP server or TCP peer) failed, answered wrongly or refused us."""


@dataclass(frozen=True, order=True)
class BatchId:
    """Inclusive range [start, end] of sample indices, validated so bad ranges fail where they are made."""

    start: int
    end: int

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"BatchId.{name} must be an int, got {type(v).__name__} {v!r}")
            if not 0 <= v <= U64_MAX:
                raise ValueError(f"BatchId.{name}={v} is outside the u64 range")
        if self.start > self.end:
            raise ValueError(f"BatchId start {self.start} is after end {self.end} (the range is inclusive)")

    def __len__(self) -> int:
        return self.end - self.start + 1

    def indices(self) -> range:
        return range(self.start, self.end + 1)

    def contains(self, other: BatchId) -> bool:
        return self.start <= other.start and other.end <= self.end

    def __str__(self) -> str:
        return f"B[{self.start}, {self.end}]"


@dataclass(eq=False)
class TokenizedData:
    """One training sample. When `labels` is None the model shifts `input_ids` by one for the loss."""

    input_ids: np.ndarray
    labels: np.ndarray | None = None
    position_ids: np.ndarray | None = None
    sequence_lengths: list[int] | None = field(default=None)

    def __post_init__(self) -> None:
        ids = np.asarray(self.input_ids)
        if ids.ndim != 1:
            raise ValueError(f"input_ids must be 1-D, got shape {ids.shape}")
        self.input_ids = ids.astype(np.int32, copy=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenizedData):
            return NotImplemented

        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

        return (same(self.input_ids, other.input_ids) and same(self.labels, other.labels)
                and same(self.position_ids, other.position_ids)
                and self.sequence_lengths == other.sequence_lengths)


@runtime_checkable
class DataProvider(Protocol):
    """What the training client needs: the tokens of its assigned batch, deterministically."""

    @property
    def num_samples(self) -> int:
        """Samples before the index wraps (or errors)."""
        ...

    async def get_samples(self, batch: BatchId) -> list[TokenizedData]:
        ...
