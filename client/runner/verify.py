"""Recomputation spot-checks (issue 25, phase 1: off-chain verdicts, reported as `verify` events).

A trainer's result of step S is a pure function of three things: the run's weights when S was trained
(every client holds them bit-identically), the batch the coordinator assigned the trainer for S, and the
trainer's DisTrO error-feedback state before S (δ and Q_{S−1}). The result commits to that state (`ef`: the
root of a Merkle tree of its DCT blocks, with the hash of δ's sign map when the run trains with the
look-ahead: client/training/ef_parts.py), and the trainer serves openings of it (the drawn blocks and their
multiproof) and the sign map by its hash. A verifier draws LEAVES blocks (TOLERANCE_LEAVES in tolerance mode) from a
seed the trainer could not know when it published, then
  1. refuses a missing, withheld or malformed piece (fail: "state withheld" / "state malformed"): an opening
     that does not hash to `ef` or whose leaves and proof do not lead to its root, a leaf or sign map of the
     wrong size or hash, a sign map that disagrees with δ on a drawn block;
  2. recomputes step S from (weights, batch, the drawn blocks, zero elsewhere, and the sign map for the
     look-ahead) and compares with the published result on the drawn blocks: bit-exact indices and
     (wire-precision) values in `exact` mode (CPU training is deterministic here), or the fraction of
     agreeing (coefficient, sign) pairs ≥ `threshold` in `tolerance` mode (mixed GPUs);
  3. checks the state chain on the drawn blocks: the proof of the trainer's state of S+1 (its result of S+1
     commits to it) at the drawn leaves must lead from the blocks the recomputation leaves behind to that
     root; when the bits differ (tolerance mode, or another micro-batch size: another summation order), the
     S+1 blocks the trainer serves must lead to that root and lie within STATE_RTOL.
A check sees the drawn blocks only: it fails exactly when one of them holds a coefficient the cheat changed
(tests/unit/test_verify.py). A random, copied or replayed result changes nearly every block; part of a batch
or stale weights change a share of them (bench/verification_bytes.py measures the catch rate of LEAVES blocks
on the demo's model); with every block drawn, all of them fail 2.

Who checks whom: since phase 2 the runner uses coordinator_sdk.verdicts.eligible, the draw the program checks
when the verdict is posted (sha256(seed ‖ verifier key ‖ trainer key) as a u64 mod the round's clients < 3);
`targets(seed, witness, trainers, count)`, phase 1's ranking by the same hash, is kept for tools. The seed is
the random seed of a round that starts after S was trained (the runner uses round S+1's, drawn by the chain
from a slot hash), so a trainer cannot know, while it trains, whether it will be checked.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
import torch

from client.runner.result_checks import agreement, fingerprint
from client.training import ef_parts
from client.training.distro import DistroResult, result_layout
from client.training.ef_parts import StateParts
from client.training.trainer import Trainer

Mode = Literal["exact", "tolerance"]
THRESHOLD = 0.9  # tolerance mode: honest reruns on other hardware agree far more; other trainers ~0.1-0.3
STATE_RTOL = 1e-3  # tolerance mode: relative L2 error allowed between the served and derived states
# DCT blocks of the state a check opens and compares. The state chain catches a partial cheat (part of the
# batch, stale weights) on ~95% of blocks, so a few suffice; the result alone catches a random result with
# P >= 0.98 at 6 (bench/verification_bytes.py); 6 keeps a check under 10% of the round's result bytes
LEAVES = 6
# tolerance mode judges an agreement share, which needs a sample where one honest sign flipped by other
# rounding (~1 in 1,000 pairs) cannot cross the bar: at 64 blocks it takes 7 flips; a partial cheat's share
# (~0.87) is estimated loosely on a sample, but its next state is far outside STATE_RTOL on any block
TOLERANCE_LEAVES = 64


@dataclass(frozen=True)
class Verdict:
    trainer: bytes
    step: int
    outcome: Literal["pass", "fail"]
    reason: str
    cpu_s: float  # CPU time of the verifying thread (torch's intra-op pool threads, if any, are not counted)
    agreement: float | None = None
    wall_s: float = 0.0
    mode: str = "exact"

    def event(self) -> dict[str, Any]:
        """The fields of the client's `verify` event."""
        return {"trainer": self.trainer.hex()[:16], "step": self.step, "outcome": self.outcome,
                "reason": self.reason, "mode": self.mode, "cpu_s": round(self.cpu_s, 3),
                "wall_s": round(self.wall_s, 3),
                "agreement": None if self.agreement is None else round(self.agreement, 4)}


def seed_bytes(seed: int | bytes) -> bytes:
    return seed if isinstance(seed, bytes) else int(seed).to_bytes(8, "little", signed=False)


def targets(seed: int | bytes, witness: bytes, trainers: list[bytes], count: int) -> list[bytes]:
    """The `count` trainers (P2P keys) this witness checks, from a seed unknown when they trained."""
    s = seed_bytes(seed)
    ranked = sorted((k for k in trainers if k != witness), key=lambda k: hashlib.sha256(s + witness + k).digest())
    return ranked[:max(0, count)]


Opening = ef_parts.Opening


class StateSource(Protocol):
    """Where a verifier gets a trainer's state: the trainer's P2P services (phase_verify) or, in tools and
    tests, `LocalSource`. Both return None for anything refused, withheld or unreachable."""

    def opening(self, ef: bytes, leaves: list[int], with_leaves: bool, limit: int) -> bytes | None: ...

    def blob(self, h: bytes, limit: int) -> bytes | None: ...


class LocalSource:
    """A trainer's states served from memory, as its services would; `fetched` counts the bytes handed out."""

    def __init__(self, *states: StateParts | None) -> None:
        self.states = {s.ef: s for s in states if s is not None}
        self.blobs = {h: b for s in self.states.values() for b, h in s.hashed()}
        self.fetched = 0
        self.log: list[str] = []

    def _give(self, what: str, data: bytes | None, limit: int) -> bytes | None:
        if data is None or len(data) > limit:
            return None
        self.fetched += len(data)
        self.log.append(what)
        return data

    def opening(self, ef: bytes, leaves: list[int], with_leaves: bool, limit: int) -> bytes | None:
        st = self.states.get(ef)
        return self._give("leaves" if with_leaves else "proof", None if st is None else st.open(leaves, with_leaves),
                          limit)

    def blob(self, h: bytes, limit: int) -> bytes | None:
        return self._give("signs", self.blobs.get(h), limit)


@dataclass(frozen=True)
class Recomputed:
    result: DistroResult  # unquantized values (meaningful on the opening's leaves) and the state's `ef`
    next_leaves: dict[int, bytes]  # the state after the step on the opening's leaves (ef_parts' layout)
    cpu_s: float
    twin: Any = None  # the recomputing Distro (its next state: `next_state`)

    def next_state(self) -> StateParts:
        """The whole state after the step (of a recomputation from a whole state: one from an opening stepped
        only the opened parameters)."""
        return ef_parts.split(self.twin, self.twin.commit_signs)


def recompute(model: torch.nn.Module, schedule: Any, trainer_kwargs: dict[str, Any], step: int,
              batch: torch.Tensor, state: Opening | StateParts, owned: bool = False) -> Recomputed:
    """Step `step` of a trainer whose error-feedback state was `state` (all of it, or an opening of a few
    leaves: δ and Q zero elsewhere, the look-ahead from the sign map), on `model`'s weights (not modified: a
    copy trains, unless `owned`: the caller's throwaway copy, trained in place to save a deep copy).
    `trainer_kwargs`: the run's DisTrO config and step settings (distro, micro_batch_size, clip_grad_norm,
    lookahead), as the trainer used them. Raises ValueError on a state that does not fit."""
    t0 = time.thread_time()
    opening = Opening.whole(state) if isinstance(state, StateParts) else state
    twin = Trainer(model if owned else copy.deepcopy(model), schedule, "distro", **trainer_kwargs)
    assert twin.distro is not None
    twin.distro.lookahead_signs = ef_parts.load_partial(twin.distro, opening, twin.use_lookahead)
    twin.distro.commit = False  # the state is the opening, whose hashes were checked: no need to split it again
    if not isinstance(state, StateParts):  # only the opened parameters' coefficients are compared
        index = ef_parts.leaf_index(twin.distro.layout)
        twin.distro.only = {index[i][0] for i in opening.leaves}
    out = twin.train_step(step, batch)
    assert out.result is not None
    full = twin.distro.sent  # the unquantized coefficients, for a value comparison of unquantized results
    assert full is not None
    ef = state.ef if isinstance(state, StateParts) else bytes(32)
    res = DistroResult(step, dict(full), False, ef=ef)
    next_leaves = ef_parts.leaves_of(twin.distro, sorted(opening.leaves))
    return Recomputed(res, next_leaves, time.thread_time() - t0, twin.distro)


def restrict(result: DistroResult, layout: dict[str, Any], leaves: list[int]) -> DistroResult:
    """The result's coefficients on the given leaves (DCT blocks) only (parameters without one are left out)."""
    index = ef_parts.leaf_index(layout)
    by_param: dict[str, list[int]] = {}
    for i in leaves:
        n, b = index[i]
        by_param.setdefault(n, []).append(b)
    params = {}
    for n, bs in by_param.items():
        q, sel = result.params[n], torch.tensor(bs)
        k, blocks = q.idx.shape[-1], layout[n].plan.num_blocks
        params[n] = type(q)(q.idx.reshape(blocks, k)[sel], q.val.reshape(blocks, k)[sel])
    return DistroResult(result.step, params, result.quantized, ef=result.ef, sender=result.sender)


def _wire_values(val: torch.Tensor, published: DistroResult, bf16: bool) -> torch.Tensor:
    if published.quantized:
        return torch.where(val < 0, -1.0, 1.0)
    return val.to(torch.bfloat16).float() if bf16 else val


def compare(published: DistroResult, mine: DistroResult, mode: Mode = "exact",
            threshold: float = THRESHOLD) -> tuple[bool, float, str]:
    """(agrees, agreement of (coefficient, sign) pairs, reason when not)."""
    wire = DistroResult(mine.step, {n: type(q)(q.idx, _wire_values(q.val, published, True))
                                    for n, q in mine.params.items()}, published.quantized)
    if set(published.params) != set(wire.params):
        return False, 0.0, "result covers other parameters than the model"
    a = agreement(fingerprint(published), fingerprint(wire))
    if mode == "tolerance":
        ok = a >= threshold
        return ok, a, "" if ok else f"recomputation agrees on {a:.3f} of (index, sign) pairs, < {threshold}"
    for name, q in published.params.items():
        r = mine.params[name]
        if not torch.equal(q.idx.cpu(), r.idx.cpu()):
            return False, a, f"indices of {name} differ from the recomputation (agreement {a:.3f})"
        vals = [_wire_values(r.val.cpu(), published, True)]
        if not published.quantized:
            vals.append(r.val.cpu())  # an f32 result
        if not any(torch.equal(q.val.cpu(), v) for v in vals):
            return False, a, f"values of {name} differ from the recomputation (agreement {a:.3f})"
    return True, a, ""


def _leaves_close(served: dict[int, bytes], derived: dict[int, bytes], layout: dict[str, Any]) -> bool:
    """δ of the served next state's leaves within STATE_RTOL (relative L2) of the derived ones."""
    index, num, den = ef_parts.leaf_index(layout), 0.0, 0.0
    for i, blob in served.items():
        cells = layout[index[i][0]].plan.totalk
        a = np.frombuffer(blob[:4 * cells], "<f4").astype(np.float64)
        b = np.frombuffer(derived[i][:4 * cells], "<f4").astype(np.float64)
        num, den = num + float(((a - b) ** 2).sum()), den + float((b ** 2).sum())
    return num <= (STATE_RTOL ** 2) * max(den, 1e-30)


def fetch_opening(source: StateSource, ef: bytes, layout: dict[str, Any], leaves: list[int],
                  with_leaves: bool = True, with_signs: bool = False) -> Opening | str:
    """The trainer's opening of `ef` at `leaves` (checked against `ef`), with the sign map when asked, or why
    not (a reason starting "state withheld" or "state malformed")."""
    blob = source.opening(ef, leaves, with_leaves, ef_parts.opening_limit(layout, len(leaves), with_leaves))
    if blob is None:
        return "state withheld: the trainer did not serve its committed error-feedback state"
    try:
        got = ef_parts.parse_opening(blob, layout, ef, leaves, with_leaves)
    except ValueError as e:
        return f"state malformed: {e}"
    if not with_signs:
        return got
    if got.signs_hash == ef_parts.NO_SIGNS:
        return "state malformed: the state commits to no sign map, but the run trains with the look-ahead"
    signs = source.blob(got.signs_hash, ef_parts.signs_size(layout))
    if signs is None:
        return "state withheld: the trainer did not serve the sign map of its state"
    return replace(got, signs=signs)


def verify(trainer: bytes, published: DistroResult, source: StateSource, model: torch.nn.Module,
           schedule: Any, trainer_kwargs: dict[str, Any], batch: torch.Tensor, seed: bytes = bytes(8),
           verifier: bytes = b"", next_ef: bytes | None = None, mode: Mode = "exact",
           threshold: float = THRESHOLD, owned: bool = False, leaves: int | None = None) -> Verdict:
    """The verdict on `trainer`'s `published` result of its step. `source` serves the trainer's state (an
    opening of the result's `ef`); `leaves` blocks are drawn from (seed, verifier, trainer), the seed one the
    trainer could not know when it published. `next_ef`: the `ef` of its result of the next step (the state
    chain): that state's proof at the drawn leaves is fetched, and its leaves only when the derived ones do not
    lead to its root (never, for an honest trainer in exact mode). `owned`: see `recompute`. `leaves`: default
    LEAVES, TOLERANCE_LEAVES in tolerance mode."""
    t0, w0 = time.thread_time(), time.monotonic()
    step = published.step

    def verdict(ok: bool, reason: str, a: float | None = None) -> Verdict:
        return Verdict(trainer, step, "pass" if ok else "fail", reason or "recomputed", time.thread_time() - t0, a,
                       time.monotonic() - w0, mode)

    layout = result_layout(model, trainer_kwargs["distro"])
    total = len(ef_parts.leaf_index(layout))
    count = leaves if leaves is not None else TOLERANCE_LEAVES if mode == "tolerance" else LEAVES
    chosen = ef_parts.choose_leaves(seed, verifier, trainer, total, count)
    lookahead = bool(trainer_kwargs.get("lookahead", True))
    opening = fetch_opening(source, published.ef, layout, chosen, with_signs=lookahead)
    if isinstance(opening, str):
        return verdict(False, opening)
    try:
        rec = recompute(model, schedule, trainer_kwargs, step, batch, opening, owned)
    except ValueError as e:
        return verdict(False, f"state malformed: {e}")
    ok, a, why = compare(restrict(published, layout, chosen), restrict(rec.result, layout, chosen), mode, threshold)
    if not ok:
        return verdict(False, why, a)
    if next_ef is None:
        return verdict(True, "recomputed; last step, no chain", a)
    broken = f"state chain broken: the step {step + 1} result commits to another state"
    nxt = fetch_opening(source, next_ef, layout, chosen, with_leaves=False)
    if isinstance(nxt, str):
        return verdict(False, f"{broken} ({nxt})", a)
    derived = {i: ef_parts.leaf_hash(x) for i, x in rec.next_leaves.items()}
    if nxt.sent and ef_parts.root_of(derived, total, nxt.proof) == nxt.root:
        return verdict(True, "recomputed", a)
    # the bits differ: in tolerance mode, or when the trainer summed its batch in another order (another
    # micro-batch size), the leaves it serves for the next step must still be the derived ones within STATE_RTOL
    served = fetch_opening(source, next_ef, layout, chosen)
    if not isinstance(served, str) and served.sent \
            and all(len(served.leaves[i]) == len(rec.next_leaves[i]) for i in chosen) \
            and _leaves_close(served.leaves, rec.next_leaves, layout):
        return verdict(True, "recomputed; next state within tolerance", a)
    return verdict(False, broken, a)
