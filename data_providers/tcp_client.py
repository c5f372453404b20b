"""TCP data client: authenticates with the client's ed25519 key and fetches its assigned batches.

A dropped connection is re-established (with backoff) and the request re-sent; a policy rejection or
a protocol violation by the server is raised at once, since retrying would not change the answer.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nacl.signing import SigningKey

from data_providers.tcp_protocol import (
    AUTH_DOMAIN,
    MAX_RESPONSE_FRAME,
    NONCE_LEN,
    ProtocolError,
    RejectedError,
    encode_frame,
    expect_type,
    field,
    read_frame,
    tokens_of,
)
from data_providers.types import BatchId, RemoteDataError, TokenizedData

T = TypeVar("T")
_TRANSIENT = (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError)


class TcpDataProvider:
    def __init__(self, host: str, port: int, signing_key: SigningKey, timeout_s: float = 10.0,
                 reconnect_attempts: int = 3, backoff_s: float = 0.1,
                 max_frame: int = MAX_RESPONSE_FRAME) -> None:
        self.host, self.port = host, port
        self.peer = f"{host}:{port}"
        self.signing_key = signing_key
        self.timeout_s, self.reconnect_attempts, self.backoff_s = timeout_s, reconnect_attempts, backoff_s
        self.max_frame = max_frame
        self.connects = 0
        self._num_samples: int | None = None
        self._seq_len: int | None = None
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    @property
    def num_samples(self) -> int:
        if self._num_samples is None:
            raise RuntimeError("TcpDataProvider.open() has not been awaited")
        return self._num_samples

    @property
    def seq_len(self) -> int:
        if self._seq_len is None:
            raise RuntimeError("TcpDataProvider.open() has not been awaited")
        return self._seq_len

    async def open(self) -> TcpDataProvider:
        async with self._lock:
            await self._retrying(self._ensure_connected)
        return self

    async def close(self) -> None:
        if self._stream is not None:
            writer = self._stream[1]
            self._stream = None
            writer.close()
            try:
                await writer.wait_closed()
            except _TRANSIENT:
                pass

    async def __aenter__(self) -> TcpDataProvider:
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _recv(self, reader: asyncio.StreamReader) -> dict[str, object] | None:
        async with asyncio.timeout(self.timeout_s):
            return await read_frame(reader, self.max_frame, self.peer)

    async def _ensure_connected(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._stream is not None:
            return self._stream
        async with asyncio.timeout(self.timeout_s):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            challenge = expect_type(await self._recv(reader), ("challenge", "error"), self.peer)
            self._raise_if_refused(challenge, None)
            nonce = field(challenge, "nonce", bytes, self.peer, size=NONCE_LEN)
            signature = self.signing_key.sign(AUTH_DOMAIN + nonce).signature
            writer.write(encode_frame({"type": "auth", "pubkey": bytes(self.signing_key.verify_key),
                                       "signature": signature}))
            await writer.drain()
            welcome = expect_type(await self._recv(reader), ("welcome", "rejected", "error"), self.peer)
            self._raise_if_refused(welcome, None)
            self._num_samples = field(welcome, "num_samples", int, self.peer)
            self._seq_len = field(welcome, "seq_len", int, self.peer)
        except BaseException:
            writer.close()
            raise
        self.connects += 1
        self._stream = (reader, writer)
        return self._stream

    def _raise_if_refused(self, msg: dict[str, object], batch: BatchId | None) -> None:
        if msg["type"] == "error":
            raise RemoteDataError(f"peer {self.peer} reported an error: {msg.get('detail')}")
        if msg["type"] == "rejected":
            reason = str(msg.get("reason"))
            what = f" request for {batch}" if batch else ""
            raise RejectedError(f"peer {self.peer} rejected{what}: {reason}: {msg.get('detail')}", reason)

    async def _retrying(self, op: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(self.reconnect_attempts + 1):
            try:
                return await op()
            except _TRANSIENT as e:
                await self.close()
                if attempt == self.reconnect_attempts:
                    raise RemoteDataError(f"peer {self.peer}: connection failed after {attempt + 1}"
                                          f" attempts: {e!r}") from e
                await asyncio.sleep(self.backoff_s * 2**attempt)
            except RejectedError:
                raise  # a policy answer: the connection stays usable
            except (ProtocolError, RemoteDataError):
                await self.close()
                raise
        raise AssertionError("unreachable")

    async def get_samples(self, batch: BatchId) -> list[TokenizedData]:
        async def once() -> list[TokenizedData]:
            reader, writer = await self._ensure_connected()
            writer.write(encode_frame({"type": "request", "start": batch.start, "end": batch.end}))
            await writer.drain()
            msg = await self._recv(reader)
            if msg is None:
                raise ConnectionResetError("server closed the connection")
            msg = expect_type(msg, ("data", "rejected", "error"), self.peer)
            self._raise_if_refused(msg, batch)
            return [TokenizedData(row) for row in tokens_of(msg, batch, self.peer)]

        async with self._lock:
            return await self._retrying(once)
