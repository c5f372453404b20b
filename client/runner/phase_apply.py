"""Apply: add the results of a step that a quorum of the chain's witnesses vouched for, once per step.

Every client applies exactly the same set in sender-key order, so all hold bit-identical weights without
ever sending weights. The consensus of step S-1 is final as soon as every elected witness of the current
round has posted; applying then (while the chain waits out RoundWitness) takes it off the next round's start.
"""
from __future__ import annotations

import asyncio
from typing import Any

from client.runner.context import RunnerContext, first_line
from client.runner.training_state import RoundBook, TrainingState
from client.runner.witnessing import consensus_results, elected_unposted, round_signers, vouched_trainers
from coordinator_sdk.account_view import CoordinatorView


async def apply(ctx: RunnerContext, ts: TrainingState, book: RoundBook, step: int, witnessing_round: Any,
                st: CoordinatorView) -> int:
    """Apply the results of `step` that the witnessing round's quorum vouched for; returns how many."""
    if step in book.applied:
        return book.applied[step]
    exchange = ctx.p2p.exchange
    trainers = book.trainers_of.get(step, [])
    if exchange is None or not trainers or ts.trainer is None:
        return 0
    signers, wn = round_signers(st, witnessing_round), int(st.config.witness_nodes)
    announced = exchange.announced(step)
    # a trainer the witnesses vouched for but whose announcement never reached us: ask for it over P2P, and if
    # it cannot be had, say DESYNC rather than silently apply a subset (our weights would differ)
    vouched = vouched_trainers(trainers, witnessing_round, signers, wn)
    missing = [k for k in vouched if k not in announced]
    if missing:
        got = await asyncio.gather(*(exchange.recover(step, k) for k in missing))
        ctx.report.event("recovered", step=step, asked=len(missing), got=sum(g is not None for g in got))
        announced = exchange.announced(step)
    chosen = consensus_results(announced, trainers, witnessing_round, signers, wn)
    for key in vouched:
        if key not in chosen:
            why = "announcement never received" if key not in announced else "announced commitment not the vouched one"
            ctx.report.event("error", action="apply", step=step, peer=key.hex()[:16],
                             reason=f"DESYNC: the witnesses vouched for a result this client cannot apply ({why})")
    have = book.results.get(step, {})
    ready = []
    for key in sorted(chosen):
        res = have.get(key)
        if res is None:
            try:
                res = await exchange.fetch_result(step, key, chosen[key])
            except Exception as e:
                ctx.report.event("error", action="apply", step=step, peer=key.hex()[:16],
                                 reason=f"DESYNC: consensus result unavailable: {first_line(e)}")
                continue
        ready.append(res)
    await asyncio.to_thread(ctx.cpu.timed, "apply", ts.trainer.apply, ready, step)
    book.applied[step] = len(ready)
    return len(ready)


async def apply_once_witnessed(ctx: RunnerContext, ts: TrainingState, book: RoundBook, step: int,
                               current: int) -> None:
    """Apply `step` as soon as every elected witness of round `current` still healthy has posted; if the
    round moves on first, the next round's start applies it as usual."""
    def final_or_gone() -> bool:
        cur = ctx.state
        if cur.step != current or not cur.in_round:
            return True
        return int(cur.rounds[cur.rounds_head].num_witnesses) > 0 and not elected_unposted(cur)

    await ctx.watch.until(final_or_gone)
    cur = ctx.state
    if cur.step == current and cur.in_round:
        await apply(ctx, ts, book, step, cur.rounds[cur.rounds_head], cur)
