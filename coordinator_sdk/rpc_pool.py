"""Several JSON-RPC endpoints used as one: retries with exponential backoff and failover.

Only transport failures (refused connections, timeouts, 5xx) move on to the next endpoint; an answer from
a node, even an error, is the answer, because another node would give the same one. A node that says it
is overloaded (HTTP 429 or 503, as public RPC providers do) is waited out as its `Retry-After` header asks
(or with exponential back-off when it gives none), for up to `throttle_budget` seconds per call, without
using up the transport-failure attempts: being throttled is normal on a shared provider, not an outage.

`min_context_slot` is the slot at which this process's latest write was confirmed: reads that pass it
(`read_account`) are answered from a bank at least that new, so a client never acts on state older than
its own write (a lagging node behind a load balancer answers -32016 and is asked again)."""
from __future__ import annotations

import asyncio
import base64
import email.utils
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient

T = TypeVar("T")
log = logging.getLogger("coordinator_sdk.rpc")


class AllEndpointsFailed(ConnectionError):
    """No endpoint answered within the retry budget; the message lists each endpoint's last error."""


class RpcCallError(Exception):
    """A JSON-RPC error object from a node, for calls made with `RpcPool.raw`."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code, self.message, self.data = code, message, data


THROTTLED = (429, 503)
FAILURE_WARN_EVERY_S = 10.0  # during an outage every call fails; one warning per endpoint per this long
MIN_CONTEXT_NOT_REACHED = -32016
_ids = itertools.count(1)


def http_status(e: BaseException) -> tuple[int, str | None] | None:
    """(status, Retry-After header) when `e` is, or wraps, an HTTP error reply."""
    for x in (e, e.__cause__):
        if isinstance(x, httpx.HTTPStatusError):
            return x.response.status_code, x.response.headers.get("Retry-After")
    return None


def retry_after_seconds(header: str | None, fallback: float) -> float:
    """`Retry-After` as seconds: an integer (what providers send), or an HTTP date; `fallback` otherwise."""
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            when = email.utils.parsedate_to_datetime(header) if header.strip() else None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    return fallback


async def raw_call(client: AsyncClient, method: str, params: list) -> object:
    """One JSON-RPC call that solana-py has no typed method (or no parameter) for; returns `result`."""
    provider = client._provider
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
    resp = await provider.session.post(provider.endpoint_uri, json=body,
                                       headers={"Content-Type": "application/json", **(provider.extra_headers or {})})
    resp.raise_for_status()
    reply = resp.json()
    if "error" in reply:
        err = reply["error"]
        raise RpcCallError(err.get("code", 0), err.get("message", ""), err.get("data"))
    return reply["result"]


class RpcPool:
    def __init__(self, urls: list[str], attempts: int = 4, backoff: float = 0.2, timeout: float = 10.0,
                 throttle_budget: float = 120.0) -> None:
        if not urls:
            raise ValueError("RpcPool needs at least one RPC URL")
        self.urls = list(urls)
        self.clients = [AsyncClient(u, timeout=timeout) for u in self.urls]
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.throttle_budget = throttle_budget
        self.current = 0
        self.min_context_slot = 0  # the slot of this process's latest confirmed write
        self.throttled = 0  # 429/503 answers waited out
        self.throttled_s = 0.0
        self._warned_at: dict[str, float] = {}  # endpoint -> when its last failure was logged as a warning

    def note_write(self, slot: int) -> None:
        """A transaction of ours was confirmed at `slot`: later reads must see at least that bank."""
        self.min_context_slot = max(self.min_context_slot, slot)

    async def raw(self, method: str, params: list) -> object:
        return await self.call(lambda c: raw_call(c, method, params))

    async def read_account(self, key: object, wait: float = 10.0) -> bytes | None:
        """An account's data as of a slot no older than our latest write (None if it does not exist)."""
        cfg: dict = {"encoding": "base64", "commitment": "confirmed"}
        if self.min_context_slot:
            cfg["minContextSlot"] = self.min_context_slot
        deadline = time.monotonic() + wait
        while True:
            try:
                value = (await self.raw("getAccountInfo", [str(key), cfg]))["value"]
                return None if value is None else base64.b64decode(value["data"][0])
            except RpcCallError as e:
                if e.code != MIN_CONTEXT_NOT_REACHED or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # this node has not reached our write's slot yet

    @property
    def url(self) -> str:
        return self.urls[self.current]

    async def call(self, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run fn on the current endpoint; on a transport failure try the others, then back off and retry."""
        errors: dict[str, str] = {}
        delay = self.backoff
        throttle_deadline = time.monotonic() + self.throttle_budget
        throttle_delay = self.backoff
        attempt = 0
        while attempt < self.attempts:
            for _ in range(len(self.clients)):
                client = self.clients[self.current]
                try:
                    return await fn(client)
                except (TimeoutError, SolanaRpcException, httpx.TransportError, httpx.HTTPStatusError, OSError) as e:
                    status = http_status(e)
                    if status is not None and status[0] in THROTTLED and time.monotonic() < throttle_deadline:
                        wait = min(retry_after_seconds(status[1], throttle_delay), 30.0)
                        wait = max(wait, 0.05) * random.uniform(1.0, 1.25)  # spread a herd of clients
                        throttle_delay = min(throttle_delay * 2, 8.0)
                        self.throttled += 1
                        self.throttled_s += wait
                        log.info("RPC %s answered %d; retrying in %.2f s", self.urls[self.current], status[0], wait)
                        self.current = (self.current + 1) % len(self.clients)  # another node may have room
                        await asyncio.sleep(wait / len(self.clients))
                        break  # start the endpoint round again, without using an attempt
                    cause = e if isinstance(e, httpx.HTTPError) else (e.__cause__ or e)  # raw calls raise httpx errors
                    detail = str(cause) or (f"no answer within {self.timeout:g} s" if isinstance(
                        cause, (TimeoutError, httpx.TimeoutException)) else "no detail")
                    errors[self.urls[self.current]] = f"{type(cause).__name__}: {detail}"
                    self._log_failure(self.urls[self.current], errors[self.urls[self.current]])
                    self.current = (self.current + 1) % len(self.clients)
            else:
                attempt += 1
                if attempt < self.attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
        detail = "; ".join(f"{u}: {err}" for u, err in errors.items())
        raise AllEndpointsFailed(f"no RPC endpoint answered after {self.attempts} rounds ({detail})")

    def _log_failure(self, url: str, cause: str) -> None:
        """A warning for the first failure of an endpoint and then at most every FAILURE_WARN_EVERY_S (the
        rest at debug level): in an outage every call of every task fails, and a client printed ~5 lines a
        second. "Trying the next endpoint" only when there is one. `cause` names the error's type and detail (a
        timeout's str() is empty: "failed ()" told nobody anything)."""
        now = time.monotonic()
        last = self._warned_at.get(url)
        level = logging.WARNING if last is None or now - last >= FAILURE_WARN_EVERY_S else logging.DEBUG
        if level == logging.WARNING:
            self._warned_at[url] = now
        then = "trying the next endpoint" if len(self.urls) > 1 else "retrying"
        log.log(level, "RPC %s failed (%s); %s", url, cause, then)

    async def close(self) -> None:
        for c in self.clients:
            await c.close()

    async def __aenter__(self) -> RpcPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
