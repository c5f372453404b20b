"""`psyche run-client`'s engine: follow the coordinator account and do what each phase asks of a client.

One loop reads states from the Backend (websocket, polling fallback, RPC failover for the real chain) and
publishes them to the Watch every wait listens on; one worker runs the phases' work in order (warmup, each
round, cooldown), so applying, training and checkpointing never overlap; a ticker sends `tick` when a
transition is due (holding off while a witness or checkpoint vote it heard of is in flight); a heartbeat
says why the client waits whenever it has been silent for 10 s.
"""
from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from client.errors import ExitCode, error_line
from client.runner.backend import Backend, ChainBackend
from client.runner.context import RunnerContext, first_line
from client.runner.join_guard import Holder, JoinGuard
from client.runner.liveness import p2p_key_alive, registered_hint
from client.runner.p2p_session import P2PSession
from client.runner.report import Reporter
from client.runner.round_work import RoundWork
from client.runner.settings import ClientExit, ClientSettings
from client.runner.ticking import TickPolicy, waiting_reason
from client.runner.watch import Watch
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.client import RunNotFound
from coordinator_sdk.layout_view import rows_matching
from coordinator_sdk.model.state import IN_ROUND, ClientState, RunState
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.rpc_pool import AllEndpointsFailed

SUPPORTED_ACCOUNT_VERSION = 1
SILENCE_S = 10.0
SHUTDOWN_WAIT_S = 5.0


class RunClient:
    def __init__(self, settings: ClientSettings, report: Reporter, backend: Backend | None = None,
                 work: type[RoundWork] = RoundWork) -> None:
        self.s, self.report = settings, report
        self.backend = backend or ChainBackend(settings.rpc_urls, settings.run_id, settings.wallet, settings.ws_url)
        self.me = bytes(settings.wallet.pubkey())
        self.p2p = P2PSession(settings.p2p, settings.run_id, settings.bind_p2p, settings.relay)
        self.watch = Watch()
        self.p2p.gossip.listeners.append(lambda _msg: self.watch.poke())
        self.ctx = RunnerContext(settings, self.backend, self.p2p, self.watch, report, self.me)
        self.work = work(self.ctx)
        self.ticks = TickPolicy(self.ctx)
        self.stop = asyncio.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._scheduled: set[tuple] = set()
        self._joined_for: int | None = None
        self.join_guard = JoinGuard(self.me)
        self.participating = False  # in the epoch in progress, as this process (a restart is not)

    @property
    def state(self) -> CoordinatorView | None:
        return self.watch.state

    # ---- entry ----------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop.set)
            except (RuntimeError, ValueError):  # not the main thread (several clients in one test process)
                pass
        try:
            st = await self._preflight()
            await self._refuse_if_running(st)
            await self.p2p.start()
            self.report.event("started", run=self.s.run_id, wallet=str(self.s.wallet.pubkey()),
                              p2p=self.p2p.identity.public.hex()[:16], p2p_addr=self.p2p.address,
                              device=self.work.device, phase=st.run_state.name)
            return await self._follow()
        except ClientExit as e:
            self.report.event("exit", code=e.code, reason=e.message)
            return e.code
        finally:
            await self.work.close()
            await self.p2p.close()
            await self.backend.close()

    async def _preflight(self) -> CoordinatorView:
        try:
            st = view(await self.backend.fetch_state())
            lamports = await self.backend.balance()
        except RunNotFound as e:
            raise ClientExit(ExitCode.RUN_NOT_FOUND, str(e)) from None
        except AllEndpointsFailed as e:
            raise ClientExit(ExitCode.RPC_UNREACHABLE, f"no RPC endpoint answers: {first_line(e)}") from None
        if st.version != SUPPORTED_ACCOUNT_VERSION:
            raise ClientExit(ExitCode.VERSION_MISMATCH, f"run {self.s.run_id!r} has coordinator account version"
                             f" {st.version}; this client speaks version {SUPPORTED_ACCOUNT_VERSION}")
        if lamports == 0:
            raise ClientExit(ExitCode.WALLET, f"wallet {self.s.wallet.pubkey()} has no SOL (fund it with"
                             " `psyche airdrop 1 -k WALLET` on a localnet)")
        self.work.prepare(st)  # model plan + device: ModelUnsupported / DeviceUnavailable exit here
        if st.run_state == RunState.Finished:
            raise ClientExit(ExitCode.OK, f"run {self.s.run_id!r} is already finished")
        return st

    async def _refuse_if_running(self, st: CoordinatorView) -> None:
        """Exit ALREADY_RUNNING, before joining anything, when a live process holds this wallet's entry."""
        held = registered_hint(st, self.me)
        if held is None:
            return
        key, addrs = held
        if await p2p_key_alive(key, addrs, self.s.bind_p2p):
            raise ClientExit(ExitCode.ALREADY_RUNNING, f"wallet {self.s.wallet.pubkey()} is already running in run"
                             f" {self.s.run_id!r} (its P2P key {key.hex()[:16]} answers at {','.join(addrs)});"
                             " refusing to start a second client on it")

    # ---- following the chain ----------------------------------------------------------------------------
    async def _follow(self) -> int:
        tasks = [asyncio.create_task(t) for t in (self._worker(), self.ticks.run(), self._heartbeat())]
        try:
            async with await self.backend.states() as stream:
                while not self.stop.is_set():
                    for t in tasks:
                        if t.done():
                            t.result()  # re-raise what ended it (ClientExit or a bug)
                    try:
                        st = view(await stream.next(timeout=0.25))
                    except TimeoutError:
                        continue
                    self.watch.publish(st)
                    try:
                        await self._on_state(st)
                    except (AllEndpointsFailed, OSError) as e:
                        self.report.event("rpc_retry", reason=error_line(e, 200))
                        await asyncio.sleep(1.0)
            await self._withdraw()
            return ExitCode.OK
        finally:
            for t in tasks:
                t.cancel()
            # bounded: a task stuck in a thread (torch) or one that lost its cancellation must not keep the
            # client from exiting
            await asyncio.wait(tasks, timeout=SHUTDOWN_WAIT_S)

    def _schedule(self, key: tuple, coro_fn: Any, *args: Any) -> None:
        if key not in self._scheduled:
            self._scheduled.add(key)
            self._queue.put_nowait((key, coro_fn, args))

    async def _worker(self) -> None:
        while True:
            key, fn, args = await self._queue.get()
            while True:
                try:
                    await fn(*args)
                    break
                except (AllEndpointsFailed, OSError) as e:  # an RPC outage: retry the same work
                    self.report.event("rpc_retry", work=key[0], reason=error_line(e, 200))
                    await asyncio.sleep(1.0)
                    if self.stop.is_set():
                        return

    async def _on_state(self, st: CoordinatorView) -> None:
        await self.p2p.refresh(st)
        rs = st.run_state
        self._check_removed(st)
        if self._lost_our_entry(st):
            self._joined_for = None  # re-join: our address back on chain; the newcomer then sees it and leaves
            await self._ensure_joined(st)
        if rs == RunState.Finished:
            self._schedule(("finish",), self._finish)
            return
        mine = st.epoch_index(self.me)
        if mine is not None and rs != RunState.Warmup and self.work.warm_epoch != st.epoch:
            mine = None  # listed from before a restart: the epoch's weights moved on without us; next epoch
        if mine is not None and st.epoch_client_state(mine) == ClientState.Withdrawn:
            mine = None  # we sat this epoch out (no weights to be had): join the next
        if rs == RunState.WaitingForMembers or (mine is None and rs in (*IN_ROUND, RunState.Cooldown)):
            await self._ensure_joined(st)
            return
        if mine is None:
            return
        if rs == RunState.Warmup:
            self.participating = True
            self._schedule(("warmup", st.epoch), self.work.warmup, st)
        elif rs == RunState.RoundTrain:
            self._schedule(("round", st.epoch, int(st.current_round.height)), self.work.play_round, st)
        elif rs == RunState.Cooldown:
            self._schedule(("cooldown", st.epoch), self.work.cooldown, st)

    def _check_removed(self, st: CoordinatorView) -> None:
        if not self.participating:  # an old drop (before a restart) does not concern this process
            return
        for name, n in (("epoch_clients", st.num_epoch_clients), ("exited_clients", st.num_exited_clients)):
            lst = getattr(st, name)
            for i in rows_matching(view(st).raw, name, "signer", n, self.me):  # sliced: read on every update
                c = lst[i]
                if bytes(c.signer) == self.me and int(c.state) in (ClientState.Dropped, ClientState.Ejected):
                    if int(c.state) == ClientState.Ejected:  # only a verdict quorum ejects (verdict_ix.c)
                        raise ClientExit(ExitCode.REMOVED_FROM_RUN, f"the coordinator ejected this client in"
                                         f" epoch {st.epoch}: its verifiers found results that were not"
                                         " recomputable from its batch, state and weights (slashed, unpaid for"
                                         " the epoch); restart it to rejoin at the next epoch")
                    raise ClientExit(ExitCode.REMOVED_FROM_RUN, f"the coordinator dropped this client in epoch"
                                     f" {st.epoch} (it missed a round its witnesses checked); restart it to"
                                     " rejoin at the next epoch")

    def _lost_our_entry(self, st: CoordinatorView) -> bool:
        """Two processes on one wallet that raced past the start-up probe: the chain holds the address of
        whichever joined last. A client taking part in the epoch wants it back (True: re-join); any other
        leaves, so the one already training is never the one harmed."""
        holder, addrs = self.join_guard.holder(st)
        if holder is Holder.US or st.run_state == RunState.Finished:
            return False
        if self.participating and self.work.warm_epoch == st.epoch:
            return True
        raise ClientExit(ExitCode.ALREADY_RUNNING, f"another process joined run {self.s.run_id!r} with wallet"
                         f" {self.s.wallet.pubkey()} (at {','.join(addrs)}); leaving it to that one")

    async def _ensure_joined(self, st: CoordinatorView) -> None:
        next_active = st.next_active
        for i in range(st.num_clients):
            c = st.clients[i]
            if bytes(c.signer) == self.me and int(c.active) == next_active and self._joined_for == next_active:
                return
        if self._joined_for == next_active:
            return
        self._joined_for = next_active
        self.participating = False
        try:
            await self.backend.join(self.p2p.identity.seed, self.p2p.identity.public, self.p2p.address)
            after = await self._state_now()
            self.join_guard.joined(self.p2p.address, None if after is None else after.nonce)
            self.report.event("join", epoch=joined_epoch(after if after is not None else st, self.me),
                              hint=self.p2p.address)
        except TransactionFailed as e:
            self._joined_for = None
            self.report.event("error", action="join_run", reason=first_line(e))
            if "ClientsFull" in str(e) or "NotAuthorized" in str(e) or "RunFinished" in str(e):
                raise ClientExit(ExitCode.ERROR, f"cannot join run {self.s.run_id!r}: {first_line(e)}") from None

    async def _state_now(self) -> Any | None:
        """The account read now (after our join confirmed), or None when the read fails: its nonce tells the
        join guard which states include our join, and its phase which epoch the join counts for."""
        try:
            return view(await self.backend.fetch_state())
        except (AllEndpointsFailed, OSError, RunNotFound):
            return None

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.state is None or time.monotonic() - self.report.last_at < SILENCE_S:
                continue
            self.report.event("waiting", reason=waiting_reason(self.ctx, self.state, self.participating,
                                                               self.work.warm_epoch))

    async def _withdraw(self) -> None:
        self.report.event("withdraw", reason="interrupted: leaving the run")
        try:
            async with asyncio.timeout(15.0):
                await self.backend.withdraw()
        except (TransactionFailed, AllEndpointsFailed, OSError, TimeoutError) as e:
            self.report.event("error", action="withdraw", reason=first_line(e))

    async def _finish(self) -> None:
        summary = self.work.summary()
        landing = getattr(self.backend, "landing_stats", None)
        if landing is not None:  # how hard landing was: transactions sent per landed, 429s waited out
            summary["landing"] = landing()
        self.report.event("finished", **summary)
        raise ClientExit(ExitCode.OK, f"run {self.s.run_id!r} finished")


def joined_epoch(st: Any, me: bytes) -> int:
    """The epoch a join counts for, judged from a state read after the join landed (the state the join was
    decided on can be stale: a join sent in WaitingForMembers of epoch 3 that lands after epoch 3 started
    counts for epoch 4, and logging 3 sent readers looking for a client that was never in it).

    The coordinator gives a join `next_active`, which the epoch's first round moves on: in WaitingForMembers
    the join counts for `st.epoch` (the epoch about to start; `epoch` moves on at the end of Cooldown), and
    so it does in a Warmup that lists us (the join's own tick started that epoch); otherwise (RoundTrain to
    Cooldown, or a Warmup that started without us) it counts for the next one."""
    v = view(st)
    if v.run_state == RunState.WaitingForMembers or (v.run_state == RunState.Warmup and v.epoch_index(me) is not None):
        return v.epoch
    return v.epoch + 1
