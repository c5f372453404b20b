"""Warmup: get the weights the chain names, open the data, tell peers we are ready, vote `warmup_witness`.

A client that cannot get the named weights from one peer tries the others, then its own checkpoints on
disk (the last good one with the same digest); if nobody has them it keeps trying while the warmup lasts
and, failing that, withdraws from the epoch (so nobody waits for it) and joins the next. It never exits
because a peer let it down.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.errors import ExitCode
from client.p2p.checkpoint_share import ManifestError, fetch_model
from client.runner.checkpoint_ref import P2P, CheckpointRef, CheckpointRefError, load_from_files, model_digest
from client.runner.context import RunnerContext, first_line
from client.runner.data_source import open_provider
from client.runner.run_model import ModelUnsupported, TrainingPlan
from client.runner.settings import ClientExit, resolve_device
from client.runner.training_state import RoundBook, TrainingState
from client.training.checkpoint import CheckpointError, load_checkpoint
from client.training.config import ConfigError
from client.training.distro import result_layout
from client.training.trainer import Trainer
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.model.state import ClientState, RunState
from coordinator_sdk.program_errors import TransactionFailed

RETRY_S = 2.0
ModelHook = Callable[[Any], Any]


def prepare(ctx: RunnerContext, ts: TrainingState, st: CoordinatorView) -> None:
    """The model plan and the device, checked before the client joins (exit 5 / 6 when it cannot train)."""
    try:
        ts.plan = TrainingPlan.from_chain(st.model)
    except ModelUnsupported as e:
        raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"run {ctx.settings.run_id!r}: {e}") from None
    ts.device = resolve_device(ctx.settings.device)


def install(ctx: RunnerContext, ts: TrainingState, model: Any, digest: bytes) -> None:
    assert ts.plan is not None
    ts.model = model.to(ts.device)
    ts.digest = digest
    # no look-ahead in the synchronous pipeline: no result is pending when a step trains
    ts.trainer = Trainer(ts.model, ts.plan.schedule, "distro", ts.plan.distro,
                         micro_batch_size=ctx.settings.micro_batch_size, lookahead=not ts.plan.synchronous)
    ctx.p2p.set_model(result_layout(ts.model, ts.plan.distro), ts.plan.distro)


def _local_copy(ctx: RunnerContext, ref: CheckpointRef) -> Any:
    """Our own newest checkpoint on disk whose weights hash to the reference's digest (None if none)."""
    d = ctx.settings.checkpoint_dir
    if d is None or not Path(d).is_dir():
        return None
    for path in sorted((p for p in Path(d).glob("step-*") if p.is_dir()), reverse=True):
        try:
            model = load_checkpoint(path)
        except Exception:
            continue
        if model_digest(model) == ref.digest:
            return model
    return None


async def load_model(ctx: RunnerContext, ts: TrainingState, st: CoordinatorView, hook: ModelHook | None = None
                     ) -> bool:
    """Hold the weights the chain names; False when no source has them right now."""
    ref = ctx.chain_checkpoint(st)
    if ts.model is not None and ts.digest == ref.digest:
        return True  # a continuing client already holds exactly these weights
    t0 = time.monotonic()
    source = "peers" if ref.source == P2P else ref.source
    try:
        if ref.source == P2P:
            providers = sorted(ctx.p2p.members.members() - {ctx.p2p.identity.public})
            model = await fetch_model(ctx.p2p.blobs, ref.digest, providers)
        else:
            model = await load_from_files(ref)
    except (CheckpointRefError, CheckpointError, ManifestError, ConfigError) as e:
        raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"cannot build the run's model: {e}") from None
    except Exception as e:  # no peer had it, a transfer broke: try our own copy before giving up for now
        model = _local_copy(ctx, ref)
        if model is None:
            ctx.report.event("model_unavailable", digest=ref.short, source=source, reason=first_line(e))
            return False
        source = "local checkpoint"
    if hook is not None:
        model = hook(model)
    install(ctx, ts, model, ref.digest)
    ctx.report.event("model", source=source, digest=ref.short, params=sum(p.numel() for p in model.parameters()),
                     seconds=round(time.monotonic() - t0, 2))
    return True


async def warmup(ctx: RunnerContext, ts: TrainingState, book: RoundBook, st: CoordinatorView,
                 hook: ModelHook | None = None) -> bool:
    """Load, open the data, gossip `warmup` and vote once every healthy member is ready. False: the weights
    could not be had and the client withdrew from this epoch."""
    st = view(st)
    epoch = st.epoch
    while not await load_model(ctx, ts, st, hook):
        give_up = st.run_state_start_unix_timestamp + max(1, int(st.config.warmup_time) // 2)
        cur = ctx.state
        if time.time() >= give_up or cur.run_state != RunState.Warmup or cur.epoch != epoch:
            ctx.report.event("withdraw", epoch=epoch, reason="the run's weights are unavailable: sitting out this"
                             " epoch, joining the next")
            try:
                await ctx.backend.withdraw()
            except TransactionFailed as e:
                ctx.report.event("error", action="withdraw", reason=first_line(e))
            return False
        await asyncio.sleep(RETRY_S)
    ts.warm_epoch = epoch
    if ts.provider is None:
        assert ts.plan is not None
        ts.provider = await open_provider(ctx.settings.data or ts.plan.data_location, int(st.config.max_seq_len),
                                          ctx.p2p.identity.signing_key)
    step = st.step
    book.clear()
    ctx.p2p.gossip.set_step(step)
    await ctx.p2p.say("warmup", step, epoch.to_bytes(4, "little"))

    def ready() -> bool:
        cur = ctx.state
        if cur.run_state != RunState.Warmup or cur.epoch != epoch:
            return True  # the warmup ended without us: the round loop takes over
        members = {cur.epoch_p2p(i) for i in range(cur.num_epoch_clients)
                   if cur.epoch_client_state(i) == ClientState.Healthy}
        return members <= ctx.p2p.senders("warmup", step)

    await ctx.watch.until(ready)
    cur = ctx.state
    if cur.run_state != RunState.Warmup or cur.epoch != epoch:
        return True
    try:
        await ctx.backend.warmup_witness()
        ctx.report.event("warmup", epoch=epoch, detail=False, ready=cur.num_epoch_clients)
    except TransactionFailed as e:
        ctx.report.event("warmup_witness_refused", detail=True, reason=first_line(e))
    return True
