"""What the runner asks of the chain, as one small interface (Psyche's `watcher::Backend`).

Why an interface: the runner's decisions (when to witness, tick, health-check, checkpoint) are the part that
must survive faults, and testing them against a real validator means separate processes and seconds per
round. With this seam the same runner drives the real coordinator over JSON-RPC (`ChainBackend`) or an
in-process chain over the reference model (`devtools.sim_chain`), where a test can run several clients in
one process and kill, stall or duplicate them at will.

Every sending method either lands or raises `TransactionFailed` (a program refusal, named) or
`AllEndpointsFailed`/`OSError` (the chain could not be reached). States are decoded coordinator accounts
(or the model's view of one with the same field names).
"""
from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from coordinator_sdk.client import Coordinator


class StateStream(Protocol):
    async def next(self, timeout: float) -> Any:
        """The next state that differs from the last one (raises TimeoutError after `timeout` s)."""


class Backend(Protocol):
    async def fetch_state(self) -> Any: ...

    async def balance(self) -> int:
        """Lamports of the client's wallet (0: it cannot pay fees)."""

    async def states(self) -> AbstractAsyncContextManager[StateStream]: ...

    async def join(self, p2p_seed: bytes, p2p_public: bytes, addr_hint: str) -> None:
        """Join the next epoch; the P2P key co-signs so no other wallet can squat it."""

    async def warmup_witness(self) -> None: ...

    async def witness(self, participant: bytes, broadcast: bytes, merkle: bytes, step: int, loss: float,
                      tokens_per_s: float, bytes_received: float) -> None: ...

    async def health_check(self, target_index: int) -> None: ...

    async def verdict(self, trainer_index: int, trainer_p2p: bytes, height: int, passed: bool, result_hash: bytes,
                      ef_hash: bytes) -> None:
        """Post a recomputation's outcome on one trainer's result of round `height` (issue 25); the program
        refuses it (WrongTrainer) when the index no longer holds that P2P key."""

    async def checkpoint(self, reference: str) -> None:
        """Vote for the epoch's checkpoint (the chain adopts the one a majority of healthy clients vote)."""

    async def tick(self) -> None: ...

    async def withdraw(self) -> None: ...

    async def close(self) -> None: ...


class ChainBackend:
    """The real coordinator program, over any Solana JSON-RPC endpoint (with websocket and failover)."""

    def __init__(self, rpc_urls: list[str], run_id: str, wallet: Keypair, ws_url: str | None) -> None:
        self.wallet = wallet
        self.chain = Coordinator(rpc_urls, run_id, wallet, ws_url=ws_url)

    async def fetch_state(self) -> Any:
        return await self.chain.fetch_state()

    def landing_stats(self) -> dict[str, float]:
        sender, pool = self.chain.sender, self.chain.pool
        return {"sent": sender.sent, "landed": sender.landed, "resent": sender.resent, "resigned": sender.resigned,
                "throttled": pool.throttled, "throttled_s": round(pool.throttled_s, 2), "history": list(sender.history)}

    async def balance(self) -> int:
        return (await self.chain.pool.call(lambda c: c.get_balance(self.wallet.pubkey()))).value

    async def states(self) -> AbstractAsyncContextManager[StateStream]:
        return await self.chain.states(poll_interval=0.5)

    async def join(self, p2p_seed: bytes, p2p_public: bytes, addr_hint: str) -> None:
        await self.chain.join_run(Pubkey(p2p_public), addr_hint, p2p_keypair=Keypair.from_seed(p2p_seed))

    async def warmup_witness(self) -> None:
        await self.chain.warmup_witness()

    async def witness(self, participant: bytes, broadcast: bytes, merkle: bytes, step: int, loss: float,
                      tokens_per_s: float, bytes_received: float) -> None:
        await self.chain.witness(participant, broadcast, merkle, step, loss, tokens_per_s, bytes_received)

    async def health_check(self, target_index: int) -> None:
        await self.chain.health_check(target_index)

    async def verdict(self, trainer_index: int, trainer_p2p: bytes, height: int, passed: bool, result_hash: bytes,
                      ef_hash: bytes) -> None:
        await self.chain.verdict(trainer_index, trainer_p2p, height, passed, result_hash, ef_hash)

    async def checkpoint(self, reference: str) -> None:
        await self.chain.checkpoint(reference)

    async def tick(self) -> None:
        await self.chain.tick()

    async def withdraw(self) -> None:
        await self.chain.withdraw()

    async def close(self) -> None:
        await self.chain.close()
