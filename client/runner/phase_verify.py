"""Verify: spot-check a few trainers' results of step S by recomputing them (client/runner/verify.py).

Timeline, for a client playing round R (step R):
  * `note(R)`: keep what checking step R will need later: a copy of the weights R is trained on (every
    client holds them bit-identically after applying ≤ R−2), the round's batch assignment.
  * `start(R)`, once R's gathering of step R−1 is done: check step S = R−2. By now the client holds the
    trainers' results of S and S+1 (gathered in rounds S+1 and S+2), and the seed of round S+1 (the chain
    draws it from a slot hash when that round starts, after S was trained): elected witnesses of round R
    check `per_witness` trainers chosen by sha256(seed ‖ witness key ‖ trainer key). The trainer's state is
    fetched by its commitment from the trainer itself (its blob store serves it with its results; the
    transfer checks the hash), its batch from the run's data; the recomputation runs in a thread, off the
    round's path, and ends in one `verify` event per trainer (outcome pass, fail or skipped).
A trainer that does not serve its state fails ("state withheld"). Only the event is emitted for now: an
on-chain verdict is the next phase. Exact mode on CPU (bit-deterministic here); tolerance mode on GPUs. The
next step's state is fetched too, so a trainer that sums its batch in another order (its own micro-batch
size) is judged on its result bits and on a state within tolerance, not accused over rounding.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any

from client.runner import verify
from client.runner.context import RunnerContext, first_line
from client.runner.data_source import fetch_batch
from client.runner.training_state import RoundBook, TrainingState
from client.runner.witnessing import is_elected, round_at
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.round_assignment import current_assignment

KEEP = 3  # steps of weights kept: S is checked in round S+2


class Verifier:
    def __init__(self, per_witness: int = 1) -> None:
        self.per_witness = per_witness
        self.weights: dict[int, Any] = {}
        self.assignment: dict[int, dict[bytes, tuple[int, int]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def note(self, ts: TrainingState, st: CoordinatorView, step: int) -> None:
        if self.per_witness <= 0 or ts.model is None:
            return
        self.weights[step] = copy.deepcopy(ts.model)
        self.assignment[step] = current_assignment(st)
        for old in [s for s in self.weights if s <= step - KEEP]:
            self.weights.pop(old, None)
            self.assignment.pop(old, None)

    def start(self, ctx: RunnerContext, ts: TrainingState, book: RoundBook, st: CoordinatorView, step: int) -> None:
        """Launch the checks of step `step` − 2 if this client is an elected witness of round `step`."""
        s = step - 2
        if self.per_witness <= 0 or s not in self.weights or not is_elected(st, ctx.me) or ts.trainer is None:
            return
        results = book.results.get(s, {})
        chosen = verify.targets(int(round_at(st, 1).random_seed), ctx.p2p.identity.public,
                                sorted(results), self.per_witness)
        for trainer in chosen:
            task = asyncio.create_task(self._check(ctx, ts, book, s, trainer))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _check(self, ctx: RunnerContext, ts: TrainingState, book: RoundBook, s: int, trainer: bytes) -> None:
        published = book.results[s][trainer]
        nxt = book.results.get(s + 1, {}).get(trainer)
        span = self.assignment.get(s, {}).get(trainer)
        model, plan = self.weights.get(s), ts.plan
        if span is None or model is None or plan is None or ts.provider is None:
            return
        try:
            batch = await fetch_batch(ts.provider, *span)
        except Exception as e:  # e.g. a data server that serves each trainer only its own batch
            ctx.report.event("verify", trainer=trainer.hex()[:16], step=s, outcome="skipped",
                             reason=f"batch unavailable: {first_line(e)}", cpu_s=0.0)
            return
        # exact on CPU; GPUs (non-deterministic kernels, other cards) compare index/sign agreement
        mode: verify.Mode = "exact" if str(ts.device) == "cpu" else "tolerance"
        limit = state_size_limit(model, plan.distro)
        state = await _fetch_state(ctx, trainer, published.ef, limit)
        next_state = None if nxt is None else await _fetch_state(ctx, trainer, nxt.ef, limit)
        kwargs = {"distro": plan.distro, "micro_batch_size": ctx.settings.micro_batch_size}
        v = await asyncio.to_thread(verify.verify, trainer, published, state, model, plan.schedule, kwargs, batch,
                                    None if nxt is None else nxt.ef, next_state, mode)
        ctx.report.event("verify", **v.event())

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        self.tasks.clear()


def state_size_limit(model: Any, cfg: Any) -> int:
    """An upper bound on a valid error-feedback state blob of this model (δ f32 + sent int64/f32 + envelope)."""
    from client.training.distro import result_layout

    layout = result_layout(model, cfg)
    dense = sum(4 * p.numel() + 16 for p in model.parameters())
    return 4096 + dense + sum(12 * lay.plan.num_blocks * lay.k + 32 for lay in layout.values())


async def _fetch_state(ctx: RunnerContext, trainer: bytes, ef: bytes, limit: int) -> bytes | None:
    if trainer == ctx.p2p.identity.public:
        return ctx.p2p.blobs.store.get(ef)
    try:
        return await ctx.p2p.blobs.fetch_from(trainer, ef, limit)
    except Exception:  # refused, withheld, unreachable: the verdict says "state withheld"
        return None
