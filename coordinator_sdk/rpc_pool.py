"""Several JSON-RPC endpoints used as one: retries with exponential backoff and failover.

Only transport failures (refused connections, timeouts, 5xx) move on to the next endpoint; an answer from
a node, even an error, is the answer, because another node would give the same one."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient

T = TypeVar("T")
log = logging.getLogger("coordinator_sdk.rpc")


class AllEndpointsFailed(ConnectionError):
    """No endpoint answered within the retry budget; the message lists each endpoint's last error."""


class RpcPool:
    def __init__(self, urls: list[str], attempts: int = 4, backoff: float = 0.2, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("RpcPool needs at least one RPC URL")
        self.urls = list(urls)
        self.clients = [AsyncClient(u, timeout=timeout) for u in self.urls]
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.current = 0

    @property
    def url(self) -> str:
        return self.urls[self.current]

    async def call(self, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run fn on the current endpoint; on a transport failure try the others, then back off and retry."""
        errors: dict[str, str] = {}
        delay = self.backoff
        for attempt in range(self.attempts):
            for _ in range(len(self.clients)):
                client = self.clients[self.current]
                try:
                    return await fn(client)
                except (TimeoutError, SolanaRpcException, httpx.TransportError, OSError) as e:
                    cause = e.__cause__ or e
                    detail = str(cause) or (f"no answer within {self.timeout:g} s" if isinstance(
                        cause, (TimeoutError, httpx.TimeoutException)) else "no detail")
                    errors[self.urls[self.current]] = f"{type(cause).__name__}: {detail}"
                    log.warning("RPC %s failed (%s); trying the next endpoint", self.urls[self.current], cause)
                    self.current = (self.current + 1) % len(self.clients)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        detail = "; ".join(f"{u}: {err}" for u, err in errors.items())
        raise AllEndpointsFailed(f"no RPC endpoint answered after {self.attempts} rounds ({detail})")

    async def close(self) -> None:
        for c in self.clients:
            await c.close()

    async def __aenter__(self) -> RpcPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
