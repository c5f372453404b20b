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

Comparing each result with every other of its step is O(N^2) per round per client (issue 24), so only the
candidates an index names are compared: each result's bottom-K sketch (the K smallest of its keys under a
hash keyed by this client's secret salt) is indexed, and an earlier result is a candidate when its sketch
shares at least M hashed keys with the new one's. Why this still catches every copy: two results of one
layout have the same number n >= K of keys, so agreement a means a Jaccard similarity J = a / (2 - a)
(>= 0.818 at 0.9); the K smallest keys of their union are K draws from it without replacement, and each one
both hold is in both sketches, so a copy escapes only when fewer than M of the K draws fall in the
intersection: a hypergeometric tail, below the binomial one, which M is chosen to keep under 1e-12 (M = 27
of 64 at 0.9; honest pairs, J ~0.05-0.2, share ~3-13). Results with fewer than K keys, results of another
key count and thresholds too low for any M (< ~0.55) are compared as before. The salt is drawn from
operating-system entropy per client and never leaves it, so a copier cannot know which keys are sketched.
"""
from __future__ import annotations

import functools
import math
import secrets
from collections import Counter, deque

import numpy as np
import torch

from client.training.distro import DistroResult

THRESHOLD = 0.9
MEMORY = 8  # recent results remembered per sender
STEPS_KEPT = 4  # steps whose results are compared across senders
SPAN = 1 << 32  # positions per block: more than any block's coefficients (index_dtype's bound)
SAMPLE = 64  # keys of a new result drawn for the prefilter of each comparison
PREFILTER = 0.6  # sample share below which a comparison stops (at THRESHOLD; shifted with a custom threshold)
SKETCH = 64  # keys per result in the candidate index (module docstring)
MISS = 1e-12  # bound on the chance that the index hides a copy at the threshold (as the prefilter's)


def fingerprint(result: DistroResult) -> np.ndarray:
    """Sorted, unique int64 keys: 2 × (global coefficient position) + (1 if the value is negative).

    Built in one pass over the concatenated parameters (a per-parameter loop of small numpy ops cost ~0.5 ms
    per result on the demo's 21 parameters, most of a round's cheap checks); the block offsets depend only on
    the result's shapes and are cached."""
    qs = list(result.params.values())
    if not qs:
        return np.zeros(0, dtype=np.int64)
    try:  # one concatenation in torch, one conversion each: ~3 calls per parameter fewer (issue 24)
        idx = torch.cat([q.idx.reshape(-1) for q in qs]).cpu().numpy().astype(np.int64, copy=False)
        neg = torch.cat([q.val.reshape(-1) for q in qs]).lt(0).cpu().numpy()
    except (RuntimeError, TypeError):  # parameters on different devices or of different dtypes
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


@functools.lru_cache(maxsize=8)
def min_shared(threshold: float, k: int = SKETCH) -> int:
    """The most sketched keys M that a pair agreeing at `threshold` shares with probability >= 1 - MISS
    (binomial lower tail at J = t / (2 - t)); 0 when no M > 0 does: then every pair is compared."""
    j = threshold / (2.0 - threshold)
    below, m = 0.0, 0
    while m < k:
        below += math.comb(k, m) * j ** m * (1.0 - j) ** (k - m)  # P(shared <= m)
        if below >= MISS:
            return m
        m += 1
    return k


def sketch(fp: np.ndarray, salt: tuple[int, int], k: int = SKETCH) -> set[int]:
    """The k smallest of fp's keys under a hash keyed by `salt` (a multiply-add, then a multiply-xorshift
    mixer as splitmix64's): one key gives one value for one salt, and without the salt nobody can tell which
    keys are sketched. In place on one copy: this runs once per result, ~10 us."""
    x = fp.astype(np.uint64)  # keys are non-negative int64
    x *= np.uint64(salt[0] | 1)
    x += np.uint64(salt[1])
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    if x.size > k:
        x = np.partition(x, k - 1)[:k]
    return set(x.tolist())


class ResultMemory:
    """What one client remembers of the results it accepted, to reject copies and replays.

    Each comparison first counts how many of SAMPLE keys drawn at random from the new result the other one
    holds, and computes the exact `agreement` only when that share reaches PREFILTER: honest pairs agree
    ~0.1-0.3, so the full comparison (~25 µs each, up to MEMORY + 3 of them per result) is rarely paid. The
    draw is this client's own (operating-system entropy, a new one per result): a copier cannot know which
    keys to alter, and a result that agrees ≥ THRESHOLD passes the prefilter with probability
    > 1 − 1e-12 (binomial tail of 64 draws at 0.9 below 0.6). Results of the same step are compared only
    when the sketch index names them (module docstring)."""

    def __init__(self, threshold: float = THRESHOLD, memory: int = MEMORY) -> None:
        self.threshold = threshold
        self.by_step: dict[int, dict[bytes, np.ndarray]] = {}
        self.by_sender: dict[bytes, deque[tuple[int, np.ndarray]]] = {}
        self.memory = memory
        self.rng = np.random.default_rng()
        self.salt = (secrets.randbits(64), secrets.randbits(64))  # this client's own: never sent anywhere
        self.index: dict[int, dict[int, bytes | list[bytes]]] = {}  # step -> sketched hash -> who holds it
        self.sizes: dict[int, dict[int, list[bytes]]] = {}  # step -> key count -> senders (J needs equal sizes)

    def _candidates(self, step: int, fp: np.ndarray, sk: set[int]) -> set[bytes] | None:
        """Senders of this step whose results may agree with fp at the threshold; None: compare them all."""
        m = min_shared(self.threshold)
        if m == 0 or fp.size < SKETCH:
            return None
        index = self.index.get(step, {})
        hits: list[bytes] = []
        for h in sk:
            holders = index.get(h)
            if holders is not None:
                hits.extend(holders) if isinstance(holders, list) else hits.append(holders)
        out = {sender for sender, c in Counter(hits).items() if c >= m} if hits else set()
        for size, senders in self.sizes.get(step, {}).items():
            if size != fp.size:  # another layout's key count (not a decoded result of this run): no bound
                out.update(senders)
        return out

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
        sk = sketch(fp, self.salt)
        candidates = self._candidates(step, fp, sk)
        for other, ofp in self.by_step.get(step, {}).items():
            if candidates is not None and other not in candidates:
                continue
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
            self.record(step, sender, fp, sk)
        return None

    def record(self, step: int, sender: bytes, fp: np.ndarray, sk: set[int] | None = None) -> None:
        self.by_step.setdefault(step, {})[sender] = fp
        self.by_sender.setdefault(sender, deque(maxlen=self.memory)).append((step, fp))
        index = self.index.setdefault(step, {})
        for h in sketch(fp, self.salt) if sk is None else sk:
            holders = index.get(h)  # one holder as itself, a list from the second: few objects made per result
            if holders is None:
                index[h] = sender
            elif isinstance(holders, list):
                holders.append(sender)
            else:
                index[h] = [holders, sender]
        self.sizes.setdefault(step, {}).setdefault(int(fp.size), []).append(sender)
        for old in sorted(self.by_step)[:-STEPS_KEPT]:
            del self.by_step[old]
            self.index.pop(old, None)
            self.sizes.pop(old, None)
