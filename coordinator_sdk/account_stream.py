"""A stream of decoded states of one account: websocket `accountSubscribe` when it works, polling when
it does not, reconnecting with backoff, and never an update whose nonce is not newer than the last one
delivered (notifications can arrive late, twice, or from a lagging node behind a fallback URL)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar
from urllib.parse import urlparse

from solana.rpc.commitment import Confirmed
from solana.rpc.websocket_api import connect
from solders.pubkey import Pubkey

from coordinator_sdk.rpc_pool import RpcCallError, RpcPool

T = TypeVar("T")
log = logging.getLogger("coordinator_sdk.stream")


def ws_url_for(http_url: str) -> str:
    """Validators serve pubsub on the RPC port + 1."""
    u = urlparse(http_url)
    scheme = "wss" if u.scheme == "https" else "ws"
    port = (u.port or (443 if u.scheme == "https" else 80)) + 1
    return f"{scheme}://{u.hostname}:{port}{u.path or ''}"


class AccountStream(Generic[T]):
    def __init__(self, pool: RpcPool, pubkey: Pubkey, decode: Callable[[bytes], T], nonce_of: Callable[[T], int],
                 ws_url: str | None = None, poll_interval: float = 1.0, max_backoff: float = 5.0) -> None:
        self.pool, self.pubkey, self.decode, self.nonce_of = pool, pubkey, decode, nonce_of
        self.ws_url = ws_url or ws_url_for(pool.url)
        self.poll_interval, self.max_backoff = poll_interval, max_backoff
        self.last_nonce: int | None = None
        self.stats = {"ws": 0, "poll": 0, "stale": 0, "undecodable": 0, "reconnects": 0}
        self.ws_live = asyncio.Event()
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    def _offer(self, data: bytes | None, source: str) -> None:
        if data is None:
            return
        try:
            state = self.decode(data)
            nonce = self.nonce_of(state)
        except Exception as e:  # a foreign or truncated account must not kill the stream
            self.stats["undecodable"] += 1
            log.warning("undecodable state of %s from %s: %s", self.pubkey, source, e)
            return
        if self.last_nonce is not None and nonce <= self.last_nonce:
            self.stats["stale"] += 1
            return
        self.last_nonce = nonce
        self.stats[source] += 1
        self._queue.put_nowait(state)

    async def _fetch(self) -> bytes | None:
        return await self.pool.read_account(self.pubkey)  # no older than our own latest write

    async def _websocket(self) -> None:
        delay = 0.2
        while True:
            try:
                async with connect(self.ws_url) as ws:
                    await ws.account_subscribe(self.pubkey, Confirmed, "base64")
                    reply = await ws.recv()  # the subscription id, or an error (a rate-limited provider's 429)
                    if not all(isinstance(getattr(m, "result", None), int) for m in reply):
                        raise ConnectionError(f"accountSubscribe refused: {reply}")
                    self.ws_live.set()
                    delay = 0.2
                    self._offer(await self._fetch(), "poll")  # whatever changed while we were away
                    async for batch in ws:
                        for note in batch:
                            value = getattr(getattr(note, "result", None), "value", None)
                            if value is not None:
                                self._offer(bytes(value.data), "ws")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # refused, reset, closed: reconnect with backoff, poll meanwhile
                log.info("account websocket %s down (%s); polling until it is back", self.ws_url, e)
            self.ws_live.clear()
            self.stats["reconnects"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _poll(self) -> None:
        while True:
            if not self.ws_live.is_set():
                try:
                    self._offer(await self._fetch(), "poll")
                except (ConnectionError, RpcCallError) as e:
                    log.warning("polling %s failed: %s", self.pubkey, e)
            await asyncio.sleep(self.poll_interval)

    async def __aenter__(self) -> AccountStream[T]:
        self._tasks = [asyncio.create_task(self._websocket()), asyncio.create_task(self._poll())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def next(self, timeout: float | None = None) -> T:
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            yield await self._queue.get()
