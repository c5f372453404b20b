"""Who sends `tick`, and when; and what a waiting client says it waits for.

Ticks are permissionless, so some client must send them: the two first in a rotating order tick as soon as
a transition is due, the others stand by a few seconds later. A ticker does not end a phase while an
instruction it heard of is in flight: RoundWitness while an elected witness that gossiped `witnessing`
has not landed (or our own witness is being sent), Cooldown while a checkpoint vote that gossiped
`voting` has not been adopted; it waits at most IN_FLIGHT_GRACE_S past the due time for them.
"""
from __future__ import annotations

import asyncio
import time

from client.runner.context import RunnerContext, first_line
from client.runner.state_memo import per_state
from client.runner.witnessing import elected_unposted
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.deadlines import tick_due_at
from coordinator_sdk.model.state import RunState
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.rpc_pool import AllEndpointsFailed

TICK_SPACING_S = 0.4  # one localnet slot: a tick that landed a moment early is retried soon
IN_FLIGHT_GRACE_S = 3.0
TICK_WAIT_S = 5.0
WITNESSING, VOTING = "witnessing", "voting"


@per_state
def tick_rank(state: CoordinatorView, me: bytes) -> int | None:
    """Our place in this step's rotating ticker order (0 and 1 tick at once), None when we are not a member."""
    st = view(state)
    if st.num_epoch_clients and st.run_state != RunState.WaitingForMembers:
        keys = st.epoch_signers()
    else:
        keys = [bytes(st.clients[i].signer) for i in range(st.num_clients)
                if int(st.clients[i].active) == st.next_active]
    if me not in keys:
        return None
    keys.sort()
    shift = st.step % len(keys)
    return (keys.index(me) - shift) % len(keys)


class TickPolicy:
    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx
        self._last_tick = 0.0

    def in_flight(self, state: CoordinatorView) -> bool:
        """Something we know was sent for the phase in `st` and has not landed yet."""
        st = view(state)
        ctx, rs, step = self.ctx, st.run_state, st.step
        if rs == RunState.RoundWitness:
            if ("witness", step) in ctx.in_flight:
                return True
            announced = ctx.p2p.senders(WITNESSING, step)
            return any(st.epoch_p2p(i) in announced for i in elected_unposted(st))
        if rs == RunState.Cooldown:
            if ("checkpoint", step) in ctx.in_flight:
                return True
            voted = ctx.p2p.payloads(VOTING, step)
            if not voted:
                return False
            try:
                return ctx.chain_checkpoint(st).digest not in voted
            except Exception:
                return True
        return False

    def should_tick(self, st: CoordinatorView, now: float) -> bool:
        due, rank = tick_due_at(st), tick_rank(st, self.ctx.me)
        if due is None or rank is None:
            return False
        delay = (0.0, 0.8)[rank] if rank < 2 else 3.0 + 0.5 * rank  # two tick, the rest stand by
        if now < due + delay or now - self._last_tick < TICK_SPACING_S:
            return False
        return not (self.in_flight(st) and now < due + delay + IN_FLIGHT_GRACE_S)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            st = self.ctx.state
            if st is None or not self.should_tick(st, time.time()):
                continue
            self._last_tick = time.time()
            try:  # a tick that has not landed in TICK_WAIT_S is abandoned: the next one does the same job
                async with asyncio.timeout(TICK_WAIT_S):
                    await self.ctx.backend.tick()
                self.ctx.report.event("tick", detail=True, phase=view(st).run_state.name)
            except (TransactionFailed, AllEndpointsFailed, OSError, TimeoutError) as e:
                self.ctx.report.event("tick_failed", detail=True, reason=first_line(e))


def waiting_reason(ctx: RunnerContext, state: CoordinatorView, participating: bool, warm_epoch: int | None) -> str:
    """One line on why a client that printed nothing for a while is waiting."""
    st = view(state)
    rs = st.run_state
    if rs in (RunState.Uninitialized, RunState.Paused):
        return "the run is paused; its owner resumes it with `psyche run resume`"
    if rs == RunState.WaitingForMembers:
        joined = st.pending_members()
        need = int(st.config.init_min_clients)
        return f"waiting for members: {joined} of {need} needed have joined the next epoch"
    if rs == RunState.Warmup:
        members = {st.epoch_p2p(i) for i in range(st.num_epoch_clients)}
        ready = len(members & ctx.p2p.senders("warmup", st.step))
        return f"warmup: {ready} of {len(members)} clients have loaded the model"
    if not participating or warm_epoch != st.epoch:
        return (f"epoch {st.epoch} started without this client; it joins the next one"
                f" ({rs.name}, step {st.step})")
    return f"{rs.name} at step {st.step}: waiting for the chain's next transition"
