"""Recomputation spot-checks (issue 25, phase 1: off-chain verdicts, reported as `verify` events).

A trainer's result of step S is a pure function of three things: the run's weights when S was trained
(every client holds them bit-identically), the batch the coordinator assigned the trainer for S, and the
trainer's DisTrO error-feedback state before S (δ and Q_{S−1}). The result commits to that state (`ef`, the
sha256 of `Distro.state_bytes()`), and the trainer serves the state blob under that very hash from its blob
store (content addressing: fetching it by its commitment is the request, and the bytes are checked against
it by the transfer). A verifier then
  1. refuses a missing, withheld or malformed state (fail: "state withheld" / "state malformed");
  2. recomputes step S from (weights, batch, state) and compares with the published result: bit-exact
     indices and (wire-precision) values in `exact` mode (CPU training is deterministic here), or the
     fraction of agreeing (coefficient, sign) pairs ≥ `threshold` in `tolerance` mode (mixed GPUs);
  3. checks the state chain: the trainer's result of S+1 must commit to the state the recomputation
     leaves behind; when the bits differ (tolerance mode, or another micro-batch size: another summation
     order), the S+1 state the trainer serves must hash to that commitment and lie within STATE_RTOL.
A random, copied or replayed result, part of a batch, or stale weights all fail 2 (tests/unit/test_verify.py).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from client.runner.result_checks import agreement, fingerprint
from client.training.distro import DistroResult, state_commitment
from client.training.trainer import Trainer

Mode = Literal["exact", "tolerance"]
THRESHOLD = 0.9  # tolerance mode: honest reruns on other hardware agree far more; other trainers ~0.1-0.3
STATE_RTOL = 1e-3  # tolerance mode: relative L2 error allowed between the served and derived states


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


@dataclass(frozen=True)
class Recomputed:
    result: DistroResult  # unquantized values and the recomputed `ef` (equal to the served state's hash)
    next_state: bytes  # the error-feedback state after the step: what the trainer's S+1 result commits to
    cpu_s: float


def recompute(model: torch.nn.Module, schedule: Any, trainer_kwargs: dict[str, Any], step: int,
              batch: torch.Tensor, state: bytes, owned: bool = False, ef: bytes | None = None) -> Recomputed:
    """Step `step` of a trainer whose error-feedback state was `state`, on `model`'s weights (not modified:
    a copy trains, unless `owned`: the caller's throwaway copy, trained in place to save a deep copy).
    `trainer_kwargs`: the run's DisTrO config and step settings (distro, micro_batch_size, clip_grad_norm,
    lookahead), as the trainer used them. `ef`: the state's commitment when the caller already hashed it.
    Raises ValueError on a state that does not fit."""
    t0 = time.thread_time()
    twin = Trainer(model if owned else copy.deepcopy(model), schedule, "distro", **trainer_kwargs)
    assert twin.distro is not None
    twin.distro.load_state(state)
    twin.distro.commit = False  # the state is `state`, whose hash is known: no need to serialize it again
    out = twin.train_step(step, batch)
    assert out.result is not None
    full = twin.distro.sent  # the unquantized coefficients, for a value comparison of unquantized results
    assert full is not None
    res = DistroResult(step, dict(full), False, ef=state_commitment(state) if ef is None else ef)
    return Recomputed(res, twin.distro.state_bytes(), time.thread_time() - t0)


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


def _state_close(served: bytes, derived: bytes, model: torch.nn.Module, schedule: Any,
                 trainer_kwargs: dict[str, Any]) -> bool:
    a = Trainer(copy.deepcopy(model), schedule, "distro", **trainer_kwargs).distro
    b = Trainer(copy.deepcopy(model), schedule, "distro", **trainer_kwargs).distro
    assert a is not None and b is not None
    a.load_state(served)
    b.load_state(derived)
    num = sum(float((a.delta[n] - b.delta[n]).pow(2).sum()) for n in a.delta)
    den = sum(float(b.delta[n].pow(2).sum()) for n in b.delta)
    return num <= (STATE_RTOL ** 2) * max(den, 1e-30)


NextState = bytes | Callable[[], bytes | None] | None


def verify(trainer: bytes, published: DistroResult, state: bytes | None, model: torch.nn.Module,
           schedule: Any, trainer_kwargs: dict[str, Any], batch: torch.Tensor,
           next_ef: bytes | None = None, next_state: NextState = None,
           mode: Mode = "exact", threshold: float = THRESHOLD, owned: bool = False) -> Verdict:
    """The verdict on `trainer`'s `published` result of its step. `state`: the error-feedback state blob the
    trainer served for that step (None: refused or withheld). `next_ef`: the `ef` of its result of the next
    step, when it has one (the state chain check); `next_state`: that state blob, or a function that fetches
    it (None when refused), called only when the recomputed next state does not hash to `next_ef`: a state
    is 1.46 MB on the demo's model, and an honest check in exact mode on CPU never needs the second one.
    `owned`: `model` is the caller's throwaway copy (see `recompute`)."""
    t0, w0 = time.thread_time(), time.monotonic()
    step = published.step

    def verdict(ok: bool, reason: str, a: float | None = None) -> Verdict:
        return Verdict(trainer, step, "pass" if ok else "fail", reason or "recomputed", time.thread_time() - t0, a,
                       time.monotonic() - w0, mode)

    if state is None:
        return verdict(False, "state withheld: the trainer did not serve its committed error-feedback state")
    if state_commitment(state) != published.ef:
        return verdict(False, "state does not match the result's ef commitment")
    try:
        rec = recompute(model, schedule, trainer_kwargs, step, batch, state, owned, published.ef)
    except ValueError as e:
        return verdict(False, f"state malformed: {e}")
    ok, a, why = compare(published, rec.result, mode, threshold)
    if not ok:
        return verdict(False, why, a)
    if next_ef is None or state_commitment(rec.next_state) == next_ef:
        return verdict(True, "recomputed", a)
    # the bits differ: in tolerance mode, or when the trainer summed its batch in another order (another
    # micro-batch size), the state it served for the next step must still be the derived one within STATE_RTOL
    served = next_state() if callable(next_state) else next_state
    if served is not None and state_commitment(served) == next_ef and \
            _state_close(served, rec.next_state, model, schedule, trainer_kwargs):
        return verdict(True, "recomputed; next state within tolerance", a)
    if mode == "exact" or next_state is not None:
        return verdict(False, f"state chain broken: the step {step + 1} result commits to another state", a)
    return verdict(True, "recomputed; next state not checked", a)
