"""Cooldown: apply the last witnessed step, write and share a checkpoint, and vote for it on chain.

Every healthy client votes `checkpoint` with the digest of the weights it holds; the chain adopts a
reference only when a majority of the epoch's healthy clients voted for it, so a client whose weights
diverged (or a second process on someone's wallet) cannot make its checkpoint the run's.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from client.p2p.checkpoint_share import publish_model, unpin_model
from client.runner.checkpoint_ref import P2P, CheckpointRef
from client.runner.context import RunnerContext, first_line, send_while
from client.runner.phase_apply import apply
from client.runner.training_state import RoundBook, TrainingState, weights_sha256
from client.training.checkpoint import save_checkpoint
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.model.state import ClientState, RunState
from coordinator_sdk.program_errors import TransactionFailed


async def cooldown(ctx: RunnerContext, ts: TrainingState, book: RoundBook, st: CoordinatorView) -> None:
    if ts.model is None:
        return
    st = view(st)
    last = st.current_round
    # the last round trained st.step - 1; its witnesses vouched for that step in the synchronous pipeline (so
    # the checkpoint holds every step of the epoch) and for the step before it in the overlapped one (whose
    # last step's results are never applied, as before)
    lag = 0 if ts.plan is not None and ts.plan.synchronous else 1
    if int(last.height) >= lag:
        await apply(ctx, ts, book, st.step - 1 - lag, last, st)
    store = ctx.p2p.blobs.store
    if ts.published is not None:  # only the newest checkpoint stays pinned for newcomers
        unpin_model(store, ts.published)
    digest = ts.published = publish_model(ts.model, store, step=0)
    ts.digest = digest
    ref = CheckpointRef(digest, P2P)
    path = save_local(ctx, ts, st.step)
    mine = st.epoch_index(ctx.me)
    voted: bool | str = False
    if mine is not None and st.epoch_client_state(mine) == ClientState.Healthy:
        ctx.in_flight.add(("checkpoint", st.step))
        try:
            await ctx.p2p.say("voting", st.step, digest)  # tickers hold Cooldown open while votes land
            epoch = st.epoch

            def cooling() -> bool:
                cur = ctx.state
                return cur.epoch == epoch and cur.run_state == RunState.Cooldown

            voted = await send_while(ctx, lambda: ctx.backend.checkpoint(ref.encode()), cooling, "checkpoint")
        except TransactionFailed as e:
            voted = f"refused ({first_line(e)})"
            ctx.report.event("error", action="checkpoint", reason=first_line(e))
        finally:
            ctx.in_flight.discard(("checkpoint", st.step))
    adopted = voted is True and await ctx.watch.until(  # the vote that made the majority, or a later one
        lambda: ctx.chain_checkpoint(ctx.state).digest == digest, time.time() + 2.0)
    ctx.report.event("checkpoint", epoch=st.epoch, step=st.step, digest=ref.short,
                     path=str(path) if path else None, posted=voted, adopted=adopted,
                     weights_sha256=weights_sha256(ts.model)[:16])


def save_local(ctx: RunnerContext, ts: TrainingState, step: int) -> Path | None:
    d = ctx.settings.checkpoint_dir
    if d is None or ts.model is None:
        return None
    path = d / f"step-{step:06d}"
    tmp = d / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(ts.model, tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    ts.checkpoints.append(str(path))
    kept = sorted(p for p in d.glob("step-*") if p.is_dir())
    for old in kept[:-ctx.settings.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return path
