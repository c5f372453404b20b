"""Map a sample index to (file, token offset), identically for every provider of a dataset.

Files are taken in name order (not directory order, which differs between machines), each cut into
non-overlapping sequences of `seq_len` tokens; a file's tail shorter than `seq_len` is not used, so no
sample spans two files. An optional seeded shuffle permutes sequence order; past the end an index
either raises or wraps modulo the dataset length, as configured.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from data_providers.token_files import TokenFileInfo
from data_providers.types import BatchId, DataFileError, SampleIndexError


class WrapPolicy(StrEnum):
    ERROR = "error"
    WRAP = "wrap"


@dataclass(frozen=True)
class SampleLocation:
    file_index: int
    token_offset: int  # in tokens, from the start of the file's token data


class SequenceLayout:
    """Pure index arithmetic, shared by the local, HTTP and TCP providers so they cannot disagree."""

    def __init__(self, files: list[TokenFileInfo], seq_len: int, shuffle_seed: int | None = None,
                 wrap: WrapPolicy | str = WrapPolicy.ERROR, where: str = "dataset") -> None:
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
        if not files:
            raise DataFileError(f"{where}: no token files (.bin, .ds, .npy)")
        sizes = {f.token_size for f in files}
        if len(sizes) != 1:
            detail = ", ".join(f"{f.name}={f.token_size}" for f in files)
            raise DataFileError(f"{where}: files disagree on token size ({detail})")
        self.files = files
        self.seq_len = seq_len
        self.wrap = WrapPolicy(wrap)
        self.where = where
        counts = np.array([f.num_tokens // seq_len for f in files], dtype=np.int64)
        self._ends = np.cumsum(counts)
        self.num_samples = int(self._ends[-1])
        if self.num_samples == 0:
            raise DataFileError(f"{where}: no file holds a full sequence of {seq_len} tokens")
        self._perm: np.ndarray | None = None
        if shuffle_seed is not None:
            rng = np.random.Generator(np.random.PCG64(shuffle_seed))
            self._perm = rng.permutation(self.num_samples)

    @property
    def token_size(self) -> int:
        return self.files[0].token_size

    def resolve(self, index: int) -> int:
        """Apply the wrap policy: the position in the (unshuffled) sequence list this index reads."""
        if index < 0:
            raise SampleIndexError(f"{self.where}: sample index {index} is negative")
        if index >= self.num_samples:
            if self.wrap is WrapPolicy.ERROR:
                raise SampleIndexError(f"{self.where}: sample index {index} is past the end"
                                       f" ({self.num_samples} samples of {self.seq_len} tokens)")
            index %= self.num_samples
        return int(self._perm[index]) if self._perm is not None else index

    def locate(self, index: int) -> SampleLocation:
        seq = self.resolve(index)
        file_index = int(np.searchsorted(self._ends, seq, side="right"))
        first = int(self._ends[file_index - 1]) if file_index else 0
        return SampleLocation(file_index, (seq - first) * self.seq_len)

    def locate_batch(self, batch: BatchId) -> list[SampleLocation]:
        if batch.end >= self.num_samples and self.wrap is WrapPolicy.ERROR:
            bad = max(batch.start, self.num_samples)
            raise SampleIndexError(f"{self.where}: sample index {bad} of batch {batch} is past the end"
                                   f" ({self.num_samples} samples of {self.seq_len} tokens)")
        return [self.locate(i) for i in batch.indices()]
