"""Witness: gather and validate the previous step's results, decide when to post, post, health-check.

When an elected witness posts (the part that decides whether a fault costs one round or a whole epoch):
  - as soon as every trainer the chain still lists as healthy said `finished` (a dropped or withdrawn
    trainer is not waited for);
  - else, once more than half of them finished, after a straggler allowance (twice what that half took,
    at least STRAGGLER_MIN_S): a dead trainer costs one such wait, not the round's whole timeout;
  - and at the latest `lead` seconds before the chain's RoundTrain deadline, so the transaction lands in
    RoundTrain even on a loaded machine, never in the race with the tick that ends RoundWitness.
Before sending, the witness gossips `witnessing` so tickers hold off ending RoundWitness while it is in flight.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from solders.pubkey import Pubkey

from client.runner.context import RunnerContext, first_line, send_while
from client.runner.training_state import RoundBook
from client.runner.witnessing import WitnessReport, absent_witnesses, healthy_signers
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.model.state import RunState
from coordinator_sdk.program_errors import TransactionFailed

STRAGGLER_MIN_S = 3.0
WITNESSING = "witnessing"


def post_lead_s(max_round_train_time: int) -> float:
    """How long before the chain's RoundTrain deadline a witness posts at the latest."""
    return min(3.0, max(1.0, max_round_train_time / 4))


def chain_deadline(st: CoordinatorView) -> float:
    """Wall-clock time by which our witness should be sent for the round in `st` (RoundTrain deadline - lead)."""
    st = view(st)
    t = int(st.config.max_round_train_time)
    return st.run_state_start_unix_timestamp + t - post_lead_s(t)


async def gather(ctx: RunnerContext, book: RoundBook, step: int, current: int, deadline: float) -> WitnessReport:
    """Validate every announced result of `step` while we train; stop when every trainer still healthy on chain
    delivered, at `deadline`, or when the chain leaves the current round's training phase, once the downloads
    under way are done. They run at once (a result whose sender died after announcing it costs a timeout per
    peer asked: one after another, three such results took 9 s of an 8 s round, and the witness landed too
    late and was penalised as idle), and are judged in announcement order (of a result and its copy, the first
    stays)."""
    report = WitnessReport()
    trainers = book.trainers_of.get(step, [])
    signer_of = dict(trainers)
    exchange = ctx.p2p.exchange
    got = book.results.setdefault(step, {})
    done: set[bytes] = set()
    if exchange is None:
        return report
    queue: list[tuple[bytes, bytes, asyncio.Future[Any] | None]] = []  # (sender, hash, download; None: ours)

    def fresh() -> list[tuple[bytes, bytes]]:  # in arrival order
        return [(k, h) for k, h in exchange.announced(step).items() if k in signer_of and k not in done]

    def settled() -> bool:
        cur = ctx.state
        if cur.step != current or cur.run_state != RunState.RoundTrain:
            return True
        live = healthy_signers(cur)
        return all(k in done for k, s in trainers if s in live)

    def start() -> None:
        for sender, h in fresh():
            done.add(sender)
            if sender == ctx.p2p.identity.public and sender in got:
                queue.append((sender, h, None))
                continue
            task = asyncio.ensure_future(exchange.fetch_result(step, sender, h))
            task.add_done_callback(lambda _t: ctx.watch.poke())
            queue.append((sender, h, task))

    def judge(sender: bytes, h: bytes, task: asyncio.Future[Any] | None) -> None:
        if task is None:
            book.checks.check(step, sender, got[sender])  # remembered, so a copy of it is caught
            report.add(signer_of[sender], h)
            return
        try:
            res = task.result()
        except Exception as e:
            ctx.report.event("rejected", step=step, peer=sender.hex()[:16], reason=first_line(e))
            return
        reason = book.checks.check(step, sender, res)
        if reason is not None:  # left out of our participant bits: it earns nothing for the round
            exchange.rejected[sender] = reason
            ctx.report.event("rejected", step=step, peer=sender.hex()[:16], reason=reason)
            return
        got[sender] = res
        report.add(signer_of[sender], h)

    def head_ready() -> bool:
        return bool(queue) and (queue[0][2] is None or queue[0][2].done())

    try:
        while True:
            start()
            while head_ready():
                judge(*queue.pop(0))
            if not queue and settled():
                return report
            if queue:  # a download in flight is waited for, past the deadline too (each one bounds itself: a
                # timeout per peer asked); dropping it there left a slow honest result out of the witness's bits
                await ctx.watch.until(lambda: head_ready() or bool(fresh()))
            elif not await ctx.watch.until(lambda: bool(fresh()) or settled(), deadline):
                return report
    finally:
        for _, _, task in queue:
            if task is not None:
                task.cancel()


async def post_witness(ctx: RunnerContext, book: RoundBook, step: int, report: WitnessReport, loss: float | None,
                       tps: float | None, round_started: float, height: int, synchronous: bool = False) -> bool | str:
    """Wait for the moment described in the module docstring, then post. True: landed; 'missed': the round
    moved on first; 'refused (...)': the program said no. `height`: the round's height in its epoch (at 0 no
    earlier round's delivery is asked for: the book may still hold the previous epoch's last round).
    `synchronous`: `report` is about this round's own step, so a trainer's bit needs its result of this step
    (the bits are what every client applies this step by)."""
    trainers = book.trainers_of.get(step, [])
    half_at: float | None = None
    deadline = chain_deadline(ctx.state)

    def cutoff() -> float:
        if half_at is None:
            return deadline
        return min(deadline, half_at + max(STRAGGLER_MIN_S, 2 * (half_at - round_started)))

    def ready() -> bool:
        nonlocal half_at
        cur = ctx.state
        if cur.step != step or cur.run_state != RunState.RoundTrain:
            return True
        live = healthy_signers(cur)
        waiting = {k for k, s in trainers if s in live}
        done = len(waiting & ctx.p2p.senders("finished", step))
        if done >= len(waiting):
            return True
        if half_at is None and 2 * done > len(waiting):
            half_at = time.time()
        return time.time() >= cutoff()

    while not ready():
        await ctx.watch.until(ready, min(cutoff(), time.time() + 0.5))
    cur = ctx.state
    if cur.step != step or not cur.in_round:
        return "missed"
    before = trainers if synchronous else book.trainers_of.get(step - 1) if height > 0 else None
    previous = None if before is None else {s for _, s in before}
    ctx.in_flight.add(("witness", step))
    try:
        await ctx.p2p.say(WITNESSING, step)
        participant = report.participants(trainers, ctx.p2p.senders("finished", step), previous)
        broadcast = report.broadcast.to_bytes()

        def open_round() -> bool:
            cur = ctx.state
            return cur.step == step and cur.in_round

        sent_at = time.monotonic()
        sent = await send_while(ctx, lambda: ctx.backend.witness(participant, broadcast, report.merkle, step,
                                                                 loss or 0.0, tps or 0.0,
                                                                 float(ctx.p2p.bytes_received)),
                                open_round, "witness")
        if sent:
            ctx.witness_land_s = round(time.monotonic() - sent_at, 3)
        return True if sent else "missed"
    except TransactionFailed as e:
        return f"refused ({first_line(e)})"  # the named program error in full
    finally:
        ctx.in_flight.discard(("witness", step))


async def health_checks(ctx: RunnerContext, st: CoordinatorView) -> None:
    """Report every elected witness of the round that has not posted and that a quorum of the round's witnesses
    already left out: the round then stops waiting for it (the round's end would drop it anyway)."""
    for i in absent_witnesses(st, ctx.me):
        who = str(Pubkey(bytes(st.epoch_clients[i].signer)))
        try:
            await ctx.backend.health_check(i)
            ctx.report.event("health_check", target=who, result="dropped")
        except TransactionFailed as e:
            ctx.report.event("health_check", detail=True, target=who, result=first_line(e))
