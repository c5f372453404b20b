"""Cheap checks every client runs on every result it gathers (issue 25, phase 1): copies and replays.

A result's content is its set of (coefficient, sign) pairs: the DCT index of each sent coefficient (made
global over the blocks and parameters of the layout) and whether its value is negative. Two honest trainers
of one round start from the same weights but train different batches with their own error-feedback state,
so their sets overlap little (measured: tests/unit/test_result_checks.py); a copy, even with a few signs
flipped or a few indices moved, overlaps almost entirely. `agreement(a, b)` is the fraction of a's pairs
also in b; a result is rejected when it agrees at or above `THRESHOLD` with
  * another trainer's result of the same step seen earlier (the copier needs the original first, so the
    earlier one stays: a copier cannot get an honest trainer rejected by copying it), or
  * one of the sender's own recent results (a replay; `MEMORY` results per sender are kept).
The same (step, sender) seen again (a refetch for apply) is not compared with itself.
"""
from __future__ import annotations

import functools
import math
from collections import deque

import numpy as np

from client.training.distro import DistroResult

THRESHOLD = 0.9
MEMORY = 8  # recent results remembered per sender
STEPS_KEPT = 4  # steps whose results are compared across senders
SPAN = 1 << 32  # positions per block: more than any block's coefficients (index_dtype's bound)
SAMPLE = 64  # keys of a new result drawn for the prefilter of each comparison
PREFILTER = 0.6  # sample share below which a comparison stops (at THRESHOLD; shifted with a custom threshold)


def fingerprint(result: DistroResult) -> np.ndarray:
    """Sorted, unique int64 keys: 2 × (global coefficient position) + (1 if the value is negative).

    Built in one pass over the concatenated parameters (a per-parameter loop of small numpy ops cost ~0.5 ms
    per result on the demo's 21 parameters, most of a round's cheap checks); the block offsets depend only on
    the result's shapes and are cached."""
    qs = list(result.params.values())
    if not qs:
        return np.zeros(0, dtype=np.int64)
    idx = np.concatenate([q.idx.cpu().numpy().ravel() for q in qs]).astype(np.int64, copy=False)
    neg = np.concatenate([q.val.cpu().float().numpy().ravel() for q in qs]) < 0
    base = _block_base(tuple(tuple(q.idx.shape) for q in qs))
    keys = 2 * (base + idx) + neg
    if keys.size > 1 and not bool(np.all(keys[1:] > keys[:-1])):  # a decoded result is already canonical
        keys = np.unique(keys)
    return keys


@functools.lru_cache(maxsize=16)
def _block_base(shapes: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """Per coefficient slot of a result with these idx shapes: SPAN × its global block number."""
    parts, offset = [], 0
    for shape in shapes:
        blocks, k = math.prod(shape[:-1]), shape[-1]
        parts.append(np.repeat(offset + np.arange(blocks, dtype=np.int64) * SPAN, k))
        offset += blocks * SPAN
    out = np.concatenate(parts)
    out.flags.writeable = False
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of a's (coefficient, sign) pairs that b also holds (both from `fingerprint`)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    # both sorted and unique: a binary search of each of a's keys in b (intersect1d sorted both again: 2x slower)
    at = np.minimum(np.searchsorted(b, a), b.size - 1)
    return float(np.count_nonzero(b[at] == a)) / float(a.size)


def _sample_hits(sample: np.ndarray, b: np.ndarray) -> int:
    """How many of `sample`'s keys b holds (b sorted and unique)."""
    at = np.minimum(np.searchsorted(b, sample), b.size - 1)
    return int(np.count_nonzero(b[at] == sample))


class ResultMemory:
    """What one client remembers of the results it accepted, to reject copies and replays.

    Each comparison first counts how many of SAMPLE keys drawn at random from the new result the other one
    holds, and computes the exact `agreement` only when that share reaches PREFILTER: honest pairs agree
    ~0.1-0.3, so the full comparison (~25 µs each, up to MEMORY + 3 of them per result) is rarely paid. The
    draw is this client's own (operating-system entropy, a new one per result): a copier cannot know which
    keys to alter, and a result that agrees ≥ THRESHOLD passes the prefilter with probability
    > 1 − 1e-12 (binomial tail of 64 draws at 0.9 below 0.6)."""

    def __init__(self, threshold: float = THRESHOLD, memory: int = MEMORY) -> None:
        self.threshold = threshold
        self.by_step: dict[int, dict[bytes, np.ndarray]] = {}
        self.by_sender: dict[bytes, deque[tuple[int, np.ndarray]]] = {}
        self.memory = memory
        self.rng = np.random.default_rng()

    def _agreement(self, fp: np.ndarray, sample: np.ndarray, other: np.ndarray) -> float:
        """Exact agreement when the sample says it may reach the threshold, else the sample's estimate."""
        if fp.size == 0 or other.size == 0:
            return 0.0
        share = _sample_hits(sample, other) / sample.size
        if share < self.threshold - (THRESHOLD - PREFILTER):
            return share
        return agreement(fp, other)

    def check(self, step: int, sender: bytes, result: DistroResult, record: bool = True) -> str | None:
        """None when the result is new, else the reason it is rejected (then it is not recorded)."""
        if sender in self.by_step.get(step, {}):
            return None  # the same result again (e.g. fetched once more to apply it)
        fp = fingerprint(result)
        sample = fp[self.rng.integers(0, fp.size, SAMPLE)] if fp.size else fp
        for other, ofp in self.by_step.get(step, {}).items():
            a = self._agreement(fp, sample, ofp)
            if a >= self.threshold:
                return f"copy: agrees {a:.3f} with {other.hex()[:16]}'s result of step {step}"
        for earlier, ofp in self.by_sender.get(sender, ()):
            if earlier == step:
                continue
            a = self._agreement(fp, sample, ofp)
            if a >= self.threshold:
                return f"replay: agrees {a:.3f} with the sender's own result of step {earlier}"
        if record:
            self.record(step, sender, fp)
        return None

    def record(self, step: int, sender: bytes, fp: np.ndarray) -> None:
        self.by_step.setdefault(step, {})[sender] = fp
        self.by_sender.setdefault(sender, deque(maxlen=self.memory)).append((step, fp))
        for old in sorted(self.by_step)[:-STEPS_KEPT]:
            del self.by_step[old]
