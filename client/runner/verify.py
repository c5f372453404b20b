"""Recomputation spot-checks (issue 25, phase 1: off-chain verdicts, reported as `verify` events).

A trainer's result of step S is a pure function of three things: the run's weights when S was trained
(every client holds them bit-identically), the batch the coordinator assigned the trainer for S, and the
trainer's DisTrO error-feedback state before S (δ and Q_{S−1}). The result commits to that state in parts
(`ef`, the sha256 of a header listing the hash of each block-row and of the sign map of δ:
client/training/ef_parts.py), and the trainer serves each piece under its hash from its blob store (content
addressing: fetching by hash is the request, the bytes are checked against it by the transfer and here).
A verifier draws ROWS block-rows (every row in tolerance mode) from a seed the trainer could not know when
it published, then
  1. refuses a missing, withheld or malformed piece (fail: "state withheld" / "state malformed"): a header
     that does not hash to `ef`, a row or sign map of the wrong size or hash, a sign map that disagrees
     with δ on a drawn row;
  2. recomputes step S from (weights, batch, the drawn rows, zero elsewhere, and the sign map for the
     look-ahead) and compares with the published result on the drawn rows: bit-exact indices and
     (wire-precision) values in `exact` mode (CPU training is deterministic here), or the fraction of
     agreeing (coefficient, sign) pairs ≥ `threshold` in `tolerance` mode (mixed GPUs);
  3. checks the state chain on the drawn rows: the header the trainer's result of S+1 commits to must list
     the hashes of the rows the recomputation leaves behind; when the bits differ (tolerance mode, or
     another micro-batch size: another summation order), the S+1 rows the trainer serves must hash to that
     header and lie within STATE_RTOL.
A check sees the drawn rows only: it fails exactly when one of them holds a coefficient the cheat changed
(tests/unit/test_verify.py). A random, copied or replayed result changes nearly every row; part of a batch or
stale weights change a share of them (on the demo's model a check with 8 rows catches them with
probability ≥ 0.99: bench/verification_bytes.py); with every row drawn, all of them fail 2.

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

import msgpack
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
ROWS = 8  # block-rows of the state a check fetches and compares (bench/verification_bytes.py: catch rate)


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
class Opening:
    """What a verifier holds of a trainer's state: its header, its sign map, some of its block-rows."""

    header: ef_parts.Header
    signs: bytes
    rows: dict[int, bytes]

    @staticmethod
    def whole(parts: StateParts) -> Opening:
        """Every block-row: a full recomputation (tools, the bench's cheats)."""
        h = ef_parts.Header(bool(msgpack.unpackb(parts.header)["sent"]), parts.signs_hash, parts.row_hashes)
        return Opening(h, parts.signs, dict(enumerate(parts.rows)))


@dataclass(frozen=True)
class Recomputed:
    result: DistroResult  # unquantized values (meaningful on the opening's rows) and the state's `ef`
    next_rows: dict[int, bytes]  # the state after the step on the opening's rows (ef_parts.split's layout)
    cpu_s: float
    twin: Any = None  # the recomputing Distro (its next state in parts: `next_state`)

    def next_state(self) -> StateParts:
        """The whole state after the step, in parts (meaningful on the opening's rows only)."""
        return ef_parts.split(self.twin)


def recompute(model: torch.nn.Module, schedule: Any, trainer_kwargs: dict[str, Any], step: int,
              batch: torch.Tensor, state: Opening | StateParts, owned: bool = False) -> Recomputed:
    """Step `step` of a trainer whose error-feedback state was `state` (all of it, or an opening of a few
    block-rows: δ and Q zero elsewhere, the look-ahead from the sign map), on `model`'s weights (not
    modified: a copy trains, unless `owned`: the caller's throwaway copy, trained in place to save a deep
    copy). `trainer_kwargs`: the run's DisTrO config and step settings (distro, micro_batch_size,
    clip_grad_norm, lookahead), as the trainer used them. Raises ValueError on a state that does not fit."""
    t0 = time.thread_time()
    opening = Opening.whole(state) if isinstance(state, StateParts) else state
    twin = Trainer(model if owned else copy.deepcopy(model), schedule, "distro", **trainer_kwargs)
    assert twin.distro is not None
    twin.distro.lookahead_signs = ef_parts.load_partial(twin.distro, opening.header, opening.signs, opening.rows)
    twin.distro.commit = False  # the state is the opening, whose hashes were checked: no need to split it again
    out = twin.train_step(step, batch)
    assert out.result is not None
    full = twin.distro.sent  # the unquantized coefficients, for a value comparison of unquantized results
    assert full is not None
    ef = state.ef if isinstance(state, StateParts) else bytes(32)
    res = DistroResult(step, dict(full), False, ef=ef)
    next_rows = ef_parts.rows_of(twin.distro, sorted(opening.rows))
    return Recomputed(res, next_rows, time.thread_time() - t0, twin.distro)


def restrict(result: DistroResult, layout: dict[str, Any], rows: list[int]) -> DistroResult:
    """The result's coefficients on the given block-rows only (parameters without one are left out)."""
    index, counts = ef_parts.row_index(layout), ef_parts.row_counts(layout)
    by_param: dict[str, list[int]] = {}
    for i in rows:
        n, r = index[i]
        by_param.setdefault(n, []).append(r)
    params = {}
    for n, rs in by_param.items():
        q, sel = result.params[n], torch.tensor(rs)
        k = q.idx.shape[-1]
        params[n] = type(q)(q.idx.reshape(counts[n], -1, k)[sel], q.val.reshape(counts[n], -1, k)[sel])
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


def _rows_close(served: dict[int, bytes], derived: dict[int, bytes], layout: dict[str, Any]) -> bool:
    """δ of the served next state's rows within STATE_RTOL (relative L2) of the derived ones."""
    index, counts, num, den = ef_parts.row_index(layout), ef_parts.row_counts(layout), 0.0, 0.0
    for i, blob in served.items():
        cells = ef_parts.row_size(layout, index[i][0], False, counts) // 4
        a = np.frombuffer(blob[:4 * cells], "<f4").astype(np.float64)
        b = np.frombuffer(derived[i][:4 * cells], "<f4").astype(np.float64)
        num, den = num + float(((a - b) ** 2).sum()), den + float((b ** 2).sum())
    return num <= (STATE_RTOL ** 2) * max(den, 1e-30)


Fetch = Callable[[bytes, int], "bytes | None"]  # (sha256, size limit) → the blob, or None: refused or withheld


def fetch_opening(fetch: Fetch, ef: bytes, layout: dict[str, Any], rows: list[int] | None,
                  with_signs: bool = True) -> Opening | str:
    """The trainer's header (checked against `ef`), sign map and the given block-rows, or why not (a reason
    starting "state withheld" or "state malformed")."""
    blob = fetch(ef, ef_parts.header_limit(layout))
    if blob is None:
        return "state withheld: the trainer did not serve its committed error-feedback state"
    if ef_parts.sha(blob) != ef:
        return "state does not match the result's ef commitment"
    try:
        header = ef_parts.parse_header(blob, layout)
    except ValueError as e:
        return f"state malformed: {e}"
    signs = fetch(header.signs, ef_parts.signs_size(layout)) if with_signs else b""
    got, index, counts = {}, ef_parts.row_index(layout), ef_parts.row_counts(layout)
    for i in rows or []:
        got[i] = fetch(header.rows[i], ef_parts.row_size(layout, index[i][0], header.sent, counts))
    if signs is None or any(v is None for v in got.values()):
        return "state withheld: the trainer did not serve a requested part of its state"
    return Opening(header, signs, {i: v for i, v in got.items() if v is not None})


def verify(trainer: bytes, published: DistroResult, fetch: Fetch, model: torch.nn.Module,
           schedule: Any, trainer_kwargs: dict[str, Any], batch: torch.Tensor, seed: bytes = bytes(8),
           verifier: bytes = b"", next_ef: bytes | None = None, mode: Mode = "exact",
           threshold: float = THRESHOLD, owned: bool = False, rows: int = ROWS) -> Verdict:
    """The verdict on `trainer`'s `published` result of its step. `fetch` gets the pieces of the trainer's
    state by hash (its header under the result's `ef`); `rows` block-rows are drawn from (seed, verifier,
    trainer), the seed one the trainer could not know when it published. `next_ef`: the `ef` of its result
    of the next step (the state chain): the next header is fetched, and the next rows only when the derived
    ones do not hash to it (never, for an honest trainer in exact mode). `owned`: see `recompute`. Tolerance
    mode draws every row."""
    t0, w0 = time.thread_time(), time.monotonic()
    step = published.step

    def verdict(ok: bool, reason: str, a: float | None = None) -> Verdict:
        return Verdict(trainer, step, "pass" if ok else "fail", reason or "recomputed", time.thread_time() - t0, a,
                       time.monotonic() - w0, mode)

    layout = result_layout(model, trainer_kwargs["distro"])
    total = len(ef_parts.row_index(layout))
    # tolerance mode compares an agreement share, which a sample of rows estimates too loosely (a half batch
    # at 0.87 passed the 0.9 bar on 2 of 12 samples of 8 rows): it recomputes every row, as before
    chosen = ef_parts.choose_rows(seed, verifier, trainer, total, total if mode == "tolerance" else rows)
    opening = fetch_opening(fetch, published.ef, layout, chosen)
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
    nxt = fetch_opening(fetch, next_ef, layout, None, with_signs=False)
    broken = f"state chain broken: the step {step + 1} result commits to another state"
    if isinstance(nxt, str):
        return verdict(False, f"{broken} ({nxt})", a)
    if nxt.header.sent and all(ef_parts.sha(rec.next_rows[i]) == nxt.header.rows[i] for i in chosen):
        return verdict(True, "recomputed", a)
    # the bits differ: in tolerance mode, or when the trainer summed its batch in another order (another
    # micro-batch size), the rows it serves for the next step must still be the derived ones within STATE_RTOL
    index, counts = ef_parts.row_index(layout), ef_parts.row_counts(layout)
    served = {i: fetch(nxt.header.rows[i], ef_parts.row_size(layout, index[i][0], True, counts)) for i in chosen}
    if nxt.header.sent and all(v is not None and ef_parts.sha(v) == nxt.header.rows[i] and
                               len(v) == len(rec.next_rows[i]) for i, v in served.items()) \
            and _rows_close({i: v for i, v in served.items() if v is not None}, rec.next_rows, layout):
        return verdict(True, "recomputed; next state within tolerance", a)
    return verdict(False, broken, a)
