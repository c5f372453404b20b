"""TCP data server: serves a local dataset to authenticated clients, as the `RoundAuthority` allows.

Each connection: challenge -> signed answer -> membership check -> requests. A peer that breaks the
protocol gets an `error` frame and is disconnected; nothing it sends can affect other connections.
Recent per-peer failures are kept in `peer_errors` (and logged) so operators can see who misbehaved.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import deque

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from data_providers.authority import RoundAuthority
from data_providers.local import LocalProvider
from data_providers.tcp_protocol import (
    AUTH_DOMAIN,
    MAX_REQUEST_FRAME,
    NONCE_LEN,
    PROTOCOL_VERSION,
    REJECT_NOT_IN_ROUND,
    REJECT_OUT_OF_RANGE,
    REJECT_SERVER_DATA,
    REJECT_WRONG_BATCH,
    ProtocolError,
    batch_of,
    data_message,
    encode_frame,
    expect_type,
    field,
    read_frame,
)
from data_providers.types import BatchId, DataError, SampleIndexError

log = logging.getLogger(__name__)


class TcpDataServer:
    def __init__(self, provider: LocalProvider, authority: RoundAuthority, host: str = "127.0.0.1",
                 port: int = 0, auth_timeout_s: float = 10.0, max_request_frame: int = MAX_REQUEST_FRAME
                 ) -> None:
        self.provider, self.authority = provider, authority
        self.host, self.port = host, port
        self.auth_timeout_s = auth_timeout_s
        self.max_request_frame = max_request_frame
        self.peer_errors: deque[str] = deque(maxlen=256)
        self.batches_served = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpDataServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> TcpDataServer:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        addr = writer.get_extra_info("peername")
        peer = f"{addr[0]}:{addr[1]}" if addr else "unknown"
        try:
            await self._session(reader, writer, peer)
        except ProtocolError as e:
            self._note(str(e))
            await self._send(writer, {"type": "error", "detail": str(e)})
        except TimeoutError:
            self._note(f"peer {peer}: no authentication within {self.auth_timeout_s}s")
            await self._send(writer, {"type": "error", "detail": "authentication timed out"})
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            self._note(f"peer {peer}: connection lost: {e!r}")
        except Exception as e:  # a bug here must cost one connection, never the server
            log.exception("peer %s: internal error", peer)
            self._note(f"peer {peer}: internal server error: {e!r}")
            await self._send(writer, {"type": "error", "detail": "internal server error"})
        finally:
            self._conns.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _note(self, message: str) -> None:
        log.warning("%s", message)
        self.peer_errors.append(message)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, msg: dict[str, object]) -> None:
        try:
            writer.write(encode_frame(msg))
            await writer.drain()
        except (ConnectionError, OSError):
            pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        nonce = os.urandom(NONCE_LEN)
        await self._send(writer, {"type": "challenge", "version": PROTOCOL_VERSION, "nonce": nonce})
        async with asyncio.timeout(self.auth_timeout_s):
            msg = await read_frame(reader, self.max_request_frame, peer)
        msg = expect_type(msg, ("auth",), peer)
        pubkey = field(msg, "pubkey", bytes, peer, size=32)
        signature = field(msg, "signature", bytes, peer, size=64)
        try:
            VerifyKey(pubkey).verify(AUTH_DOMAIN + nonce, signature)
        except (CryptoError, ValueError) as e:
            raise ProtocolError(f"peer {peer}: challenge signature does not verify"
                                f" for key {pubkey.hex()}") from e
        peer = f"{pubkey.hex()[:16]}@{peer}"
        if not await self.authority.is_member(pubkey):
            self._note(f"peer {peer}: rejected, not a client of the current epoch")
            await self._send(writer, {"type": "rejected", "start": 0, "end": 0, "reason": REJECT_NOT_IN_ROUND,
                                      "detail": f"key {pubkey.hex()} is not a client of the current epoch"})
            return
        await self._send(writer, {"type": "welcome", "num_samples": self.provider.num_samples,
                                  "seq_len": self.provider.seq_len})
        while (msg := await read_frame(reader, self.max_request_frame, peer)) is not None:
            batch = batch_of(expect_type(msg, ("request",), peer), peer)
            reply = await self._answer(pubkey, batch)
            await self._send(writer, reply)

    async def _answer(self, pubkey: bytes, batch: BatchId) -> dict[str, object]:
        def reject(reason: str, detail: str) -> dict[str, object]:
            return {"type": "rejected", "start": batch.start, "end": batch.end, "reason": reason,
                    "detail": detail}

        if not await self.authority.is_member(pubkey):
            return reject(REJECT_NOT_IN_ROUND, f"key {pubkey.hex()} is not a client of the current epoch")
        assigned = await self.authority.assigned_batch(pubkey)
        if assigned is None or not assigned.contains(batch):
            return reject(REJECT_WRONG_BATCH, f"{batch} is not within this round's assignment"
                                              f" ({assigned if assigned else 'none'}) for {pubkey.hex()}")
        try:
            tokens = self.provider.read_batch(batch)
        except SampleIndexError as e:
            return reject(REJECT_OUT_OF_RANGE, str(e))
        except DataError as e:
            self._note(f"serving {batch} to {pubkey.hex()[:16]}: {e}")
            return reject(REJECT_SERVER_DATA, str(e))
        self.batches_served += 1
        return data_message(batch, tokens)
