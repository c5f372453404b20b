"""`psyche run-client`'s engine: follow the coordinator account and do what each phase asks of a client.

One loop reads decoded states (websocket, polling fallback, RPC failover) and schedules work; one worker
runs that work in order (warmup, each round, cooldown), so applying, training and checkpointing never
overlap; a ticker sends `tick` when a transition is due. Training runs in a thread so gossip and blob
serving keep answering peers while torch computes. What a round does (facts §2.9, §3.3-3.5):
apply the consensus results of step S-2, train the assigned batch of S and publish the result, gather and
validate S-1's results from peers, gossip `finished`, and when elected post the witness (as soon as every
trainer said finished, or at the RoundWitness transition), then health-check whoever the last witnesses
did not see.
"""
from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from client.cli_common import ExitCode
from client.runner.checkpoint_ref import CheckpointRef, CheckpointRefError
from client.runner.p2p_session import P2PSession
from client.runner.report import Reporter
from client.runner.round_work import RoundWork
from client.runner.settings import ClientExit, ClientSettings
from client.runner.witnessing import epoch_index
from coordinator_sdk.client import Coordinator, RunNotFound
from coordinator_sdk.model.state import ClientState, RunState
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.rpc_pool import AllEndpointsFailed

SUPPORTED_ACCOUNT_VERSION = 1
TICK_SPACING_S = 1.0


def tick_due_at(st: Any) -> float | None:
    """When a `tick` would move the run (the program's timeouts); None when only other instructions can."""
    cfg, rs = st.config, int(st.run_state)
    if rs == RunState.WaitingForMembers:
        pending = sum(int(st.clients[i].active) == int(st.next_active) for i in range(int(st.num_clients)))
        if pending < int(cfg.init_min_clients):
            return None
        duration = int(cfg.waiting_for_members_extra_time)
    else:
        durations = {RunState.Warmup: cfg.warmup_time, RunState.RoundTrain: cfg.max_round_train_time,
                     RunState.RoundWitness: cfg.round_witness_time, RunState.Cooldown: cfg.cooldown_time}
        if rs not in durations:
            return None
        duration = int(durations[rs])
    start = int(st.run_state_start_unix_timestamp)
    return float(max(start + duration, start + 1))


class RunClient:
    def __init__(self, settings: ClientSettings, report: Reporter) -> None:
        self.s, self.report = settings, report
        self.chain = Coordinator(settings.rpc_urls, settings.run_id, settings.wallet, ws_url=settings.ws_url)
        self.me = bytes(settings.wallet.pubkey())
        self.p2p = P2PSession(settings.p2p, settings.run_id, settings.bind_p2p, settings.relay)
        self.work = RoundWork(self)
        self.state: Any = None
        self.stop = asyncio.Event()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._scheduled: set[tuple] = set()
        self._joined_for: int | None = None
        self.participating = False  # in the epoch in progress, as this process (a restart is not)
        self._last_tick = 0.0

    # ---- entry ----------------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        try:
            st = await self._preflight()
            await self.p2p.start()
            self.report.event("started", run=self.s.run_id, wallet=str(self.s.wallet.pubkey()),
                              p2p=self.p2p.identity.public.hex()[:16], p2p_addr=self.p2p.address,
                              device=self.work.device, phase=RunState(int(st.run_state)).name)
            return await self._follow()
        except ClientExit as e:
            self.report.event("exit", code=e.code, reason=e.message)
            return e.code
        finally:
            await self.work.close()
            await self.p2p.close()
            await self.chain.close()

    async def _preflight(self) -> Any:
        try:
            st = await self.chain.fetch_state()
            lamports = (await self.chain.pool.call(lambda c: c.get_balance(self.s.wallet.pubkey()))).value
        except RunNotFound as e:
            raise ClientExit(ExitCode.RUN_NOT_FOUND, str(e)) from None
        except AllEndpointsFailed as e:
            raise ClientExit(ExitCode.RPC_UNREACHABLE, f"no RPC endpoint answers: {e}") from None
        if int(st.version) != SUPPORTED_ACCOUNT_VERSION:
            raise ClientExit(ExitCode.VERSION_MISMATCH, f"run {self.s.run_id!r} has coordinator account version"
                             f" {int(st.version)}; this client speaks version {SUPPORTED_ACCOUNT_VERSION}")
        if lamports == 0:
            raise ClientExit(ExitCode.WALLET, f"wallet {self.s.wallet.pubkey()} has no SOL (fund it with"
                             " `psyche airdrop 1 -k WALLET` on a localnet)")
        self.work.prepare(st)  # model plan + device: ModelUnsupported / DeviceUnavailable exit here
        if int(st.run_state) == RunState.Finished:
            raise ClientExit(ExitCode.OK, f"run {self.s.run_id!r} is already finished")
        return st

    # ---- following the chain ----------------------------------------------------------------------------
    async def _follow(self) -> int:
        worker = asyncio.create_task(self._worker())
        ticker = asyncio.create_task(self._ticker())
        try:
            async with await self.chain.states(poll_interval=0.5) as stream:
                while not self.stop.is_set():
                    for t in (worker, ticker):
                        if t.done():
                            t.result()  # re-raise what ended it (ClientExit or a bug)
                    try:
                        st = await stream.next(timeout=0.25)
                    except TimeoutError:
                        continue
                    self.state = st
                    try:
                        await self._on_state(st)
                    except (AllEndpointsFailed, OSError) as e:
                        self.report.event("rpc_retry", reason=str(e)[:200])
                        await asyncio.sleep(1.0)
            await self._withdraw()
            return ExitCode.OK
        finally:
            for t in (worker, ticker):
                t.cancel()
            await asyncio.gather(worker, ticker, return_exceptions=True)

    def _schedule(self, key: tuple, coro_fn, *args: Any) -> None:
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
                    self.report.event("rpc_retry", work=key[0], reason=str(e)[:200])
                    await asyncio.sleep(1.0)
                    if self.stop.is_set():
                        return

    async def _on_state(self, st: Any) -> None:
        await self.p2p.refresh(st)
        rs = int(st.run_state)
        self._check_removed(st)
        if rs == RunState.Finished:
            self._schedule(("finish",), self._finish)
            return
        mine = epoch_index(st, self.me)
        if mine is not None and rs != RunState.Warmup and self.work.warm_epoch != int(st.epoch):
            mine = None  # listed from before a restart: the epoch's weights moved on without us; next epoch
        if rs == RunState.WaitingForMembers or (mine is None and rs in (RunState.RoundTrain, RunState.RoundWitness,
                                                                         RunState.Cooldown)):
            await self._ensure_joined(st)
            return
        if mine is None:
            return
        if rs == RunState.Warmup:
            self.participating = True
        if rs == RunState.Warmup:
            self._schedule(("warmup", int(st.epoch)), self.work.warmup, st)
        elif rs == RunState.RoundTrain:
            r = st.rounds[st.rounds_head]
            self._schedule(("round", int(st.epoch), int(r.height)), self.work.play_round, st)
        elif rs == RunState.Cooldown:
            self._schedule(("cooldown", int(st.epoch)), self.work.cooldown, st)

    def _check_removed(self, st: Any) -> None:
        if not self.participating:  # an old drop (before a restart) does not concern this process
            return
        for lst, n in ((st.epoch_clients, st.num_epoch_clients), (st.exited_clients, st.num_exited_clients)):
            for i in range(int(n)):
                c = lst[i]
                if bytes(c.signer) == self.me and int(c.state) in (ClientState.Dropped, ClientState.Ejected):
                    how = ClientState(int(c.state)).name.lower()
                    raise ClientExit(ExitCode.REMOVED_FROM_RUN, f"the coordinator {how}"
                                     f" this client in epoch {int(st.epoch)} (it missed a round its witnesses"
                                     " checked); restart it to rejoin at the next epoch")

    async def _ensure_joined(self, st: Any) -> None:
        next_active = int(st.next_active)
        for i in range(int(st.num_clients)):
            c = st.clients[i]
            if bytes(c.signer) == self.me and int(c.active) == next_active:
                return
        if self._joined_for == next_active:
            return
        self._joined_for = next_active
        self.participating = False
        try:
            # the P2P key co-signs: it proves the claim, so no other wallet can squat our P2P identity
            p2p_keypair = Keypair.from_seed(self.p2p.identity.seed)
            await self.chain.join_run(Pubkey(self.p2p.identity.public), self.p2p.address, p2p_keypair=p2p_keypair)
            self.report.event("join", epoch=int(st.epoch), hint=self.p2p.address)
        except TransactionFailed as e:
            self._joined_for = None
            self.report.event("error", action="join_run", reason=_first_line(e))
            if "ClientsFull" in str(e) or "NotAuthorized" in str(e) or "RunFinished" in str(e):
                raise ClientExit(ExitCode.ERROR, f"cannot join run {self.s.run_id!r}: {_first_line(e)}") from None

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            st = self.state
            if st is None:
                continue
            due = tick_due_at(st)
            rank = self._tick_rank(st)
            if due is None or rank is None:
                continue
            delay = (0.0, 0.8)[rank] if rank < 2 else 3.0 + 0.5 * rank  # two tick, the rest stand by
            now = time.time()
            if now >= due + 0.3 + delay and now - self._last_tick >= TICK_SPACING_S:
                self._last_tick = now
                try:
                    await self.chain.tick()
                    self.report.event("tick", detail=True, phase=RunState(int(st.run_state)).name)
                except (TransactionFailed, AllEndpointsFailed, OSError) as e:
                    self.report.event("tick_failed", detail=True, reason=_first_line(e))

    def _tick_rank(self, st: Any) -> int | None:
        if int(st.num_epoch_clients) and int(st.run_state) != RunState.WaitingForMembers:
            keys = [bytes(st.epoch_clients[i].signer) for i in range(int(st.num_epoch_clients))]
        else:
            keys = [bytes(st.clients[i].signer) for i in range(int(st.num_clients))
                    if int(st.clients[i].active) == int(st.next_active)]
        if self.me not in keys:
            return None
        keys.sort()
        shift = int(st.step) % len(keys)
        return (keys.index(self.me) - shift) % len(keys)

    async def _withdraw(self) -> None:
        self.report.event("withdraw", reason="interrupted: leaving the run")
        try:
            await asyncio.wait_for(self.chain.withdraw(), 15.0)
        except (TransactionFailed, AllEndpointsFailed, OSError, TimeoutError) as e:
            self.report.event("error", action="withdraw", reason=_first_line(e))

    async def _finish(self) -> None:
        summary = self.work.summary()
        self.report.event("finished", **summary)
        raise ClientExit(ExitCode.OK, f"run {self.s.run_id!r} finished")

    def chain_checkpoint(self, st: Any) -> CheckpointRef:
        text = bytes(st.checkpoint[:int(st.checkpoint_len)]).decode("utf-8", errors="replace")
        try:
            return CheckpointRef.parse(text)
        except CheckpointRefError as e:
            raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"the run's checkpoint: {e}") from None


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:300]
