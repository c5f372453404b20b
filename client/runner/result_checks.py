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

from collections import deque

import numpy as np

from client.training.distro import DistroResult

THRESHOLD = 0.9
MEMORY = 8  # recent results remembered per sender
STEPS_KEPT = 4  # steps whose results are compared across senders
SPAN = 1 << 32  # positions per block: more than any block's coefficients (index_dtype's bound)


def fingerprint(result: DistroResult) -> np.ndarray:
    """Sorted, unique int64 keys: 2 × (global coefficient position) + (1 if the value is negative)."""
    parts, offset = [], 0
    for q in result.params.values():
        idx = q.idx.reshape(-1, q.idx.shape[-1]).cpu().numpy().astype(np.int64)
        blocks, _ = idx.shape
        pos = offset + np.arange(blocks, dtype=np.int64)[:, None] * SPAN + idx
        neg = (q.val.reshape(idx.shape).cpu().numpy() < 0).astype(np.int64)
        parts.append((2 * pos + neg).reshape(-1))
        offset += blocks * SPAN
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of a's (coefficient, sign) pairs that b also holds (both from `fingerprint`)."""
    if a.size == 0 or b.size == 0:
        return 0.0
    # both sorted and unique: a binary search of each of a's keys in b (intersect1d sorted both again: 2x slower)
    at = np.minimum(np.searchsorted(b, a), b.size - 1)
    return float(np.count_nonzero(b[at] == a)) / float(a.size)


class ResultMemory:
    """What one client remembers of the results it accepted, to reject copies and replays."""

    def __init__(self, threshold: float = THRESHOLD, memory: int = MEMORY) -> None:
        self.threshold = threshold
        self.by_step: dict[int, dict[bytes, np.ndarray]] = {}
        self.by_sender: dict[bytes, deque[tuple[int, np.ndarray]]] = {}
        self.memory = memory

    def check(self, step: int, sender: bytes, result: DistroResult, record: bool = True) -> str | None:
        """None when the result is new, else the reason it is rejected (then it is not recorded)."""
        if sender in self.by_step.get(step, {}):
            return None  # the same result again (e.g. fetched once more to apply it)
        fp = fingerprint(result)
        for other, ofp in self.by_step.get(step, {}).items():
            a = agreement(fp, ofp)
            if a >= self.threshold:
                return f"copy: agrees {a:.3f} with {other.hex()[:16]}'s result of step {step}"
        for earlier, ofp in self.by_sender.get(sender, ()):
            a = agreement(fp, ofp)
            if earlier != step and a >= self.threshold:
                return f"replay: agrees {a:.3f} with the sender's own result of step {earlier}"
        if record:
            self.record(step, sender, fp)
        return None

    def record(self, step: int, sender: bytes, fp: np.ndarray) -> None:
        self.by_step.setdefault(step, {})[sender] = fp
        self.by_sender.setdefault(sender, deque(maxlen=self.memory)).append((step, fp))
        for old in sorted(self.by_step)[:-STEPS_KEPT]:
            del self.by_step[old]
