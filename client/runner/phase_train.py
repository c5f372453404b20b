"""Train: fetch this client's assigned batch, run forward/backward + DisTrO in a thread, publish the result.

Training runs off the event loop so gossip, blob serving and the chain stream keep answering peers while
torch computes; the result's bytes go to the blob store and its commitment to gossip.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from client.runner.context import RunnerContext, first_line
from client.runner.data_source import fetch_batch
from client.runner.training_state import RoundBook, TrainingState
from client.training.result_codec import encode_result
from client.training.simulated import simulated_result
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.model.state import RunState
from coordinator_sdk.round_assignment import current_assignment
from data_providers.types import DataError

WireHook = Callable[[bytes], bytes]


async def train(ctx: RunnerContext, ts: TrainingState, book: RoundBook, st: CoordinatorView, step: int,
                wire_hook: WireHook | None = None) -> tuple[float | None, float | None]:
    """(loss, tokens/s) of our batch of `step`, or (None, None) when we had none this round."""
    mine = current_assignment(st).get(ctx.p2p.identity.public)
    if mine is None or ts.trainer is None:
        return None, None
    batch = await _fetch_batch(ctx, ts, step, *mine)
    if batch is None:
        return None, None
    assert ts.plan is not None and ctx.p2p.exchange is not None
    t0 = time.monotonic()
    simulate = ctx.settings.simulate_training
    loss: float | None
    if ts.trainer.distro is not None:
        # the commitment to the error-feedback state (~3 ms a round on the demo's model) serves verifiers only:
        # a run without them (verifiers_per_mille 0, fixed within an epoch) publishes a zero `ef` instead
        ts.trainer.distro.commit = int(st.config.verifiers_per_mille) > 0
    if simulate is None:
        out = await asyncio.to_thread(ctx.cpu.timed, "train", ts.trainer.train_step, step, batch)
        result, loss = out.result, out.loss
    else:  # the protocol cannot tell: a correctly shaped, seeded result after a fixed delay
        await asyncio.sleep(simulate)
        result = ctx.cpu.timed("train", simulated_result, ctx.p2p.exchange.layout, ts.plan.distro,
                               ctx.settings.run_id, step, ctx.p2p.identity.public)
        loss = None
        ts.simulated_steps += 1
    seconds = time.monotonic() - t0
    ts.last_train_s = seconds
    assert result is not None
    layout, distro, me = ctx.p2p.exchange.layout, ts.plan.distro, ctx.p2p.identity.public
    wire = ctx.cpu.timed("encode", lambda: encode_result(result, layout, distro, sender=me))
    if wire_hook is not None:
        wire = wire_hook(wire)
    # ours is in the book before it is announced: a synchronous round gathers this very step and must not
    # fetch our own result back from the store
    book.results.setdefault(step, {})[ctx.p2p.identity.public] = result
    await ctx.p2p.exchange.publish(step, wire, result.state)  # the state: for verifiers (phase_verify)
    if loss is not None:
        ts.losses.append((step, loss))
    return loss, batch.numel() / max(seconds, 1e-9)


async def _fetch_batch(ctx: RunnerContext, ts: TrainingState, step: int, first: int, last: int) -> Any:
    """Our batch, retried while the round lasts: a data server may still be a slot behind the chain
    (it refuses a batch of a round it has not seen yet) or briefly unreachable. None: no batch this round."""
    delay = 0.1
    while True:
        try:
            return await fetch_batch(ts.provider, first, last)
        except DataError as e:
            cur = ctx.state
            if cur.step != step or cur.run_state != RunState.RoundTrain:
                ctx.report.event("error", action="data", step=step, reason=first_line(e))
                return None
            ctx.report.event("data_retry", detail=True, step=step, reason=first_line(e))
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)
