"""The collaborators every phase of a client's work uses, passed explicitly (no reaching into the engine).

Why one value: a phase needs the chain (Backend), the P2P session, the change notifier, the reporter and the
settings; bundling them keeps phase signatures short and lets a test build a client from its own parts
(an in-process chain, a real iroh node) without an engine around it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from client.cpu_meter import CpuMeter
from client.errors import ExitCode, error_line
from client.runner.backend import Backend
from client.runner.checkpoint_ref import CheckpointRef, CheckpointRefError
from client.runner.p2p_session import P2PSession
from client.runner.report import Reporter
from client.runner.settings import ClientExit, ClientSettings
from client.runner.watch import Watch
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.rpc_pool import AllEndpointsFailed


@dataclass
class RunnerContext:
    settings: ClientSettings
    backend: Backend
    p2p: P2PSession
    watch: Watch
    report: Reporter
    me: bytes  # the wallet's public key: how the chain lists this client
    in_flight: set[tuple[str, int]] = field(default_factory=set)  # (instruction, step) sent, not yet landed
    cpu: CpuMeter = field(default_factory=CpuMeter)  # this client's CPU seconds per phase, per round event
    witness_land_s: float | None = None  # how long this round's witness took to land, once sent

    @property
    def state(self) -> CoordinatorView:
        """The latest chain state, typed (None before the first read: the phases run only after it)."""
        st = self.watch.state
        return st if st is None else view(st)

    def chain_checkpoint(self, st: CoordinatorView) -> CheckpointRef:
        text = view(st).checkpoint_text()
        try:
            return CheckpointRef.parse(text)
        except CheckpointRefError as e:
            raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"the run's checkpoint: {e}") from None


async def send_while(ctx: RunnerContext, send: Callable[[], Awaitable[None]], still_useful: Callable[[], bool],
                     what: str) -> bool:
    """Send, retrying through RPC outages while the instruction can still matter (a witness for a round
    that is still open, a vote in a Cooldown that has not ended). False: it never got through in time.
    Program refusals (TransactionFailed) are the caller's to handle."""
    delay = 0.25
    while True:
        try:
            await send()
            return True
        except (AllEndpointsFailed, OSError) as e:
            if not still_useful():
                ctx.report.event("error", action=what, reason=f"not sent in time: {first_line(e)}")
                return False
            ctx.report.event("rpc_retry", detail=True, work=what, reason=first_line(e))
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


def first_line(e: BaseException) -> str:
    """`e` as one log-event line (client.errors.error_line): program errors in full, others cut at a word."""
    return error_line(e, 300)
