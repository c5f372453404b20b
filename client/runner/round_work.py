"""The work of each phase for one client, in order: warmup, each round, cooldown (one module per phase).

A round (facts §2.9, §3.3-3.5): apply the consensus results of step S-2, train the assigned batch of S and
publish it while gathering and validating S-1's results, gossip `finished` as soon as S is trained (not when
the gathering ends), post the witness when elected (then report elected witnesses a quorum already left
out), and apply S-1 as soon as the witness set is final. The chain itself drops, when each round ends,
whoever a quorum of its witnesses left out. Faults a test wants to inject (a garbage result, another model)
go in through the two hooks, never through product switches.

The synchronous pipeline (the run's `[distro] pipeline`, issue 26) shifts what a round gathers by one step:
round S gathers S's own results (published by this round's trainers), its witnesses vouch for S, and S is
applied once they have posted, so round S+1 trains on weights that include S (round S+1's start applies S
if the round moved on first). The chain cannot tell: participant bits index the current round's trainers
whichever step they describe. The price is the overlap: nobody trains while S is gathered and applied.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from client.runner import phase_apply, phase_cooldown, phase_train, phase_verify, phase_warmup, phase_witness
from client.runner.context import RunnerContext
from client.runner.data_source import close_provider
from client.runner.training_state import RoundBook, TrainingState, weights_sha256
from client.runner.witnessing import WitnessReport, is_elected, round_at, round_trainers
from coordinator_sdk.account_view import CoordinatorView, view


class RoundWork:
    def __init__(self, ctx: RunnerContext, wire_hook: phase_train.WireHook | None = None,
                 model_hook: phase_warmup.ModelHook | None = None) -> None:
        self.ctx = ctx
        self.ts = TrainingState()
        self.book = RoundBook()
        self.wire_hook, self.model_hook = wire_hook, model_hook
        self._gather_s = 0.0
        self._process_cpu = 0.0  # time.process_time() at the last round event (the whole process's CPU)
        self.verifier = phase_verify.Verifier(ctx.settings.verify_trainers)

    @property
    def device(self) -> str:
        return self.ts.device

    @property
    def warm_epoch(self) -> int | None:
        return self.ts.warm_epoch

    def prepare(self, st: CoordinatorView) -> None:
        phase_warmup.prepare(self.ctx, self.ts, st)

    async def warmup(self, st: CoordinatorView) -> bool:
        return await phase_warmup.warmup(self.ctx, self.ts, self.book, st, self.model_hook)

    async def play_round(self, state: CoordinatorView) -> None:
        ctx, ts, book, st = self.ctx, self.ts, self.book, view(state)
        if ts.model is None or ts.warm_epoch != st.epoch:  # warmup timed out while we loaded: load now
            if not await self.warmup(st):
                return
        t_start = time.monotonic()
        round_started = time.time()
        height, step, epoch = int(st.current_round.height), st.step, st.epoch
        # lag: how many steps behind the step trained are the results this round gathers and its witnesses
        # vouch for (0 in the synchronous pipeline); the previous round's witnesses vouched for step - lag - 1
        lag = 0 if ts.plan is not None and ts.plan.synchronous else 1
        gathered = step - lag
        ctx.p2p.gossip.set_step(step)
        book.trainers_of[step] = round_trainers(st)
        applied = await ctx.cpu.run("apply", phase_apply.apply(ctx, ts, book, gathered - 1, round_at(st, 1), st)) \
            if height >= lag + 1 else 0
        apply_s = time.monotonic() - t_start
        self.verifier.note(ts, st, step)  # after the apply above: the weights step trains on, in either pipeline
        elected = is_elected(st, ctx.me)
        deadline = phase_witness.chain_deadline(st)
        gather = asyncio.create_task(self._timed_gather(gathered, step, deadline)) if height >= lag else None
        try:
            loss, tps = await ctx.cpu.run("train", phase_train.train(ctx, ts, book, st, step, self.wire_hook))
            # `finished` means "trained S and alive", said before our own gathering of S-1 is done: gathering
            # waits up to the deadline for a dead trainer that the chain still lists, and a `finished` held
            # back that long arrived after the witnesses posted, so honest trainers were left out of their
            # participant sets and dropped (the CI failure of test_kill_9_mid_round_then_rejoin)
            await ctx.p2p.say("finished", step)
            report = await gather if gather is not None else WitnessReport()
            self.verifier.start(ctx, ts, book, st, step)  # spot-checks of step - 2, off the round's path
        finally:
            if gather is not None and not gather.done():
                gather.cancel()
        ctx.witness_land_s = None
        witness = await ctx.cpu.run("witness", phase_witness.post_witness(ctx, book, step, report, loss, tps,
                                                                          round_started, height, lag == 0)) \
            if elected else False
        if witness is True and view(ctx.state).step == step:  # a witness gone silent no longer holds the round
            await ctx.cpu.run("witness", phase_witness.health_checks(ctx, ctx.state))
        if height >= lag:
            await ctx.cpu.run("apply", phase_apply.apply_once_witnessed(ctx, ts, book, gathered, step))
        cpu = ctx.cpu.take()
        if ctx.p2p.exchange is not None:
            cpu.update(ctx.p2p.exchange.cpu.take())  # validate, decode: part of gather's (and apply's) CPU
        process_cpu = time.process_time()
        ctx.report.event("round", epoch=epoch, step=step, height=height,
                         phase=view(ctx.state).run_state.name, loss=loss, tokens_per_s=tps,
                         gathered=len(book.results.get(gathered, {})), expected=len(book.trainers_of.get(gathered, [])),
                         applied=applied, witness=witness, bytes_sent=ctx.p2p.bytes_sent,
                         bytes_received=ctx.p2p.bytes_received, train_s=round(ts.last_train_s, 3),
                         gossip_in=ctx.p2p.gossip.delivered + sum(ctx.p2p.gossip.dropped.values()),
                         gossip_duplicates=ctx.p2p.gossip.dropped["duplicate"],
                         apply_s=round(apply_s, 3), work_s=round(time.monotonic() - t_start, 3),
                         gather_s=round(self._gather_s, 3), witness_land_s=ctx.witness_land_s,
                         simulated=ctx.settings.simulate_training is not None, cpu_s=cpu,
                         process_cpu_s=round(process_cpu - self._process_cpu, 4) if self._process_cpu else None)
        self._process_cpu = process_cpu
        book.forget(step)
        ctx.p2p.forget(step - 3)

    async def _timed_gather(self, gathered: int, step: int, deadline: float) -> Any:
        t0 = time.monotonic()
        try:
            return await self.ctx.cpu.run("gather", phase_witness.gather(self.ctx, self.book, gathered, step,
                                                                          deadline))
        finally:
            self._gather_s = time.monotonic() - t0

    async def cooldown(self, st: CoordinatorView) -> None:
        await phase_cooldown.cooldown(self.ctx, self.ts, self.book, st)

    def summary(self) -> dict[str, Any]:
        ts = self.ts
        out: dict[str, Any] = {"steps_trained": len(ts.losses) + ts.simulated_steps}
        if ts.losses:
            out["loss_first"], out["loss_last"] = round(ts.losses[0][1], 4), round(ts.losses[-1][1], 4)
        if ts.model is not None:
            out["weights_sha256"] = weights_sha256(ts.model)
        if ts.checkpoints:
            out["checkpoint"] = ts.checkpoints[-1]
        g = self.ctx.p2p.gossip
        out["gossip"] = {"delivered": g.delivered, "dropped": dict(g.dropped), "neighbours": len(g.neighbours)}
        return out

    async def close(self) -> None:
        await self.verifier.close()
        if self.ts.provider is not None:
            await close_provider(self.ts.provider)
            self.ts.provider = None
