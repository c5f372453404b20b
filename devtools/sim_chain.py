"""An in-process coordinator for runner tests: the reference model behind the runner's Backend interface.

Several `RunClient`s in one test process share one `SimChain`; each gets a `SimBackend` signing as its
wallet. Time is the wall clock (whole seconds, like the Clock sysvar), seeds are drawn from a seeded RNG,
and every accepted instruction bumps the nonce and wakes every follower with the new decoded account.
Faults a test can inject here: `freeze(wallet)` (its transactions hang, as if its RPC node died),
`drop_rate` (a sent instruction is silently lost, like a congested leader), `down_until` (an RPC outage:
every send fails with a connection error).
"""
from __future__ import annotations

import asyncio
import random
import time
from contextlib import asynccontextmanager
from typing import Any

from solders.keypair import Keypair

from coordinator_sdk.codec import CoordinatorCodec
from coordinator_sdk.model import Config, Machine, ModelError
from coordinator_sdk.program_errors import TransactionFailed
from devtools.model_account import ModelAccount

SEND_LATENCY_S = 0.02


class SimChain:
    def __init__(self, run_id: str, config: Config, checkpoint: str, model_fields: dict[str, Any],
                 earning_rate: int = 900, slashing_rate: int = 10, seed: int = 0) -> None:
        self.codec = CoordinatorCodec()
        self.account = ModelAccount.blank(self.codec, run_id, model_fields)
        self.machine = Machine()
        self.rng = random.Random(seed)
        self.machine.update_config(config)
        self.machine.set_checkpoint(checkpoint.encode())
        self.machine.set_future_epoch_rates(earning_rate, slashing_rate)
        self.frozen: set[bytes] = set()
        self.drop_rate = 0.0
        self.down_until = 0.0  # an RPC outage: every send fails with a connection error until then
        self.log: list[tuple[float, str, str]] = []  # (time, instruction, signer or error)
        self._followers: list[asyncio.Queue] = []
        self._state = self.account.decode(self.machine.state)

    def start(self) -> None:
        self._send("set_paused", None, False)

    # ---- the chain ----------------------------------------------------------------------------------
    @property
    def state(self) -> Any:
        return self._state

    def _send(self, name: str, signer: bytes | None, *args: Any) -> None:
        fn = getattr(self.machine, name)
        now, seed = int(time.time()), self.rng.getrandbits(64)
        try:
            if name in ("update_config", "set_checkpoint", "set_future_epoch_rates"):
                fn(*args)
            elif signer is None:
                fn(*args, now, seed)
            elif name == "witness":
                participant, broadcast, merkle, step = args
                fn(signer, participant, broadcast, merkle, now, seed, step=step)
            elif name == "join_run":
                fn(signer, *args, now, seed, p2p_proven=True)
            else:
                fn(signer, *args, now, seed)
        except ModelError as e:
            self.log.append((time.time(), name, e.name))
            raise TransactionFailed(f"{e.name} in instruction 0: {e}") from None
        self.log.append((time.time(), name, signer.hex()[:8] if signer else "-"))
        self._state = self.account.decode(self.machine.state)
        for q in self._followers:
            q.put_nowait(self._state)

    async def send(self, name: str, signer: bytes | None, *args: Any) -> None:
        """One transaction: a short latency, then applied (or refused) atomically."""
        await asyncio.sleep(SEND_LATENCY_S)
        if time.time() < self.down_until:
            self.log.append((time.time(), name, "unreachable"))
            raise ConnectionRefusedError("RPC node unreachable (simulated outage)")
        if signer in self.frozen:
            await asyncio.Event().wait()  # hangs until cancelled, like an RPC node that never answers
        if self.drop_rate and self.rng.random() < self.drop_rate:
            return
        self._send(name, signer, *args)

    @asynccontextmanager
    async def follow(self) -> Any:
        q: asyncio.Queue = asyncio.Queue()
        self._followers.append(q)
        q.put_nowait(self._state)
        try:
            yield _Stream(q)
        finally:
            self._followers.remove(q)

    def pause(self) -> None:
        """The owner pauses the run (`psyche run pause`)."""
        self._send("set_paused", None, True)

    def freeze(self, wallet: Keypair) -> None:
        self.frozen.add(bytes(wallet.pubkey()))

    def backend(self, wallet: Keypair) -> SimBackend:
        return SimBackend(self, wallet)


class _Stream:
    def __init__(self, q: asyncio.Queue) -> None:
        self.q = q
        self.last_nonce: int | None = None

    async def next(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                st = await self.q.get()
            if int(st.nonce) != self.last_nonce:
                self.last_nonce = int(st.nonce)
                return st


class SimBackend:
    """The runner's Backend (client.runner.backend) over a SimChain, signing as `wallet`."""

    def __init__(self, chain: SimChain, wallet: Keypair) -> None:
        self.chain, self.wallet = chain, wallet
        self.me = bytes(wallet.pubkey())

    async def fetch_state(self) -> Any:
        return self.chain.state

    async def balance(self) -> int:
        return 10**9

    async def states(self) -> Any:
        return self.chain.follow()

    async def join(self, p2p_seed: bytes, p2p_public: bytes, addr_hint: str) -> None:
        await self.chain.send("join_run", self.me, p2p_public, addr_hint.encode())

    async def warmup_witness(self) -> None:
        await self.chain.send("warmup_witness", self.me)

    async def witness(self, participant: bytes, broadcast: bytes, merkle: bytes, step: int, loss: float,
                      tokens_per_s: float, bytes_received: float) -> None:
        await self.chain.send("witness", self.me, participant, broadcast, merkle, step)

    async def health_check(self, target_index: int) -> None:
        await self.chain.send("health_check", self.me, target_index)

    async def verdict(self, trainer_index: int, trainer_p2p: bytes, height: int, passed: bool, result_hash: bytes,
                      ef_hash: bytes) -> None:
        """The evidence hashes are only logged on chain: the model takes the rest."""
        await self.chain.send("verdict", self.me, trainer_index, bytes(trainer_p2p), height, int(passed))

    async def checkpoint(self, reference: str) -> None:
        await self.chain.send("checkpoint", self.me, reference.encode())

    async def tick(self) -> None:
        await self.chain.send("tick", None)

    async def withdraw(self) -> None:
        await self.chain.send("withdraw", self.me)

    async def close(self) -> None:
        return None
