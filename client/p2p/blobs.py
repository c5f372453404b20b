"""Blob transfer over our own ALPN: ask a peer for a sha256, stream the bytes back, verify before accepting.

Request: one bi-stream per blob; the client sends the 32-byte hash and finishes its side. Response: a
status byte (0 found, 1 unknown), the length as u64 LE, then the bytes. The client refuses a length over
its limit before reading any of it, counts bytes as they arrive, and returns data only when the sha256
matches. An *opening* request (b"O", a 32-byte commitment, a flag byte, then u32 LE leaf indices) asks a
trainer for part of its committed error-feedback state (client/training/ef_parts.py); it is answered by the
`opener` the runner installs, in the same framing, and the caller checks it against the commitment itself.
`fetch` tries the announcing peer first, then the others, so a peer that dies or lies mid-transfer costs one
retry, not the blob. Semaphores bound concurrent uploads and downloads.

Speed: the bindings' per-byte copy on writes is replaced at import (`ffi_patch`), responses are written
in 1 MiB `write_all` calls and read in 1 MiB `read_exact` calls (measured best: fewer, larger calls
stall the pipeline, smaller ones pay per-call costs), hashed chunk by chunk while the next one arrives.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
from collections import Counter
from collections.abc import Callable

import iroh

from client.errors import exception_text
from client.p2p.blob_store import BlobStore
from client.p2p.node import P2PNode

log = logging.getLogger(__name__)
BLOBS_ALPN = b"psyche/blobs/1"
CHUNK = 1 << 20
FOUND, UNKNOWN = 0, 1
OPEN = b"O"
OPEN_MAX_LEAVES = 1 << 16
Opener = Callable[[bytes, list[int], bool], "bytes | None"]  # (commitment, leaves, with_leaves) -> opening
Progress = Callable[[int, int], None]


class BlobError(Exception):
    """One provider could not deliver a verified blob."""


class BlobUnavailable(Exception):
    """No provider delivered the blob; `reasons` maps each provider tried to what went wrong."""

    def __init__(self, h: bytes, reasons: dict[str, str]) -> None:
        super().__init__(f"blob {h.hex()[:12]} unavailable: " + "; ".join(f"{p}: {r}" for p, r in reasons.items()))
        self.reasons = reasons


class BlobService:
    def __init__(self, node: P2PNode, store: BlobStore | None = None, max_size: int = 1 << 30,
                 max_uploads: int = 4, max_downloads: int = 4, stall_timeout: float = 5.0) -> None:
        self.node, self.store, self.max_size = node, store or BlobStore(), max_size
        self.stall_timeout = stall_timeout  # a provider silent this long is treated as gone (QUIC idle is 30 s)
        self._uploads = asyncio.Semaphore(max_uploads)
        self._downloads = asyncio.Semaphore(max_downloads)
        self.stats: Counter[str] = Counter()
        self.opener: Opener | None = None  # serves openings of this node's committed states (the runner's)
        node.register(BLOBS_ALPN, self._serve)

    # --- serving ------------------------------------------------------------------------------------
    async def _serve(self, conn: iroh.Connection, remote: bytes) -> None:
        await self.node.serve_streams(conn, remote, self._answer)

    async def _answer(self, bi: iroh.BiStream) -> None:
        async with self._uploads:
            try:
                h = await bi.recv().read_to_end(34 + 4 * OPEN_MAX_LEAVES)
                data = self.store.get(h) if len(h) == 32 else self._open(h)
                send = bi.send()
                if data is None:
                    await send.write_all(struct.pack("<BQ", UNKNOWN, 0))
                else:
                    await send.write_all(struct.pack("<BQ", FOUND, len(data)))
                    view = memoryview(data)
                    for off in range(0, len(data), CHUNK):
                        await send.write_all(bytes(view[off:off + CHUNK]))
                    self.stats["served"] += 1
                    self.stats["bytes_served"] += len(data)
                await send.finish()
            except Exception as e:  # the requester went away; nothing to clean up but the stream
                log.debug("blob upload aborted: %s", e)

    def _open(self, request: bytes) -> bytes | None:
        if self.opener is None or len(request) < 38 or request[:1] != OPEN or (len(request) - 34) % 4 \
                or request[33] > 1:
            return None
        leaves = list(struct.unpack(f"<{(len(request) - 34) // 4}I", request[34:]))
        try:
            return self.opener(request[1:33], leaves, bool(request[33]))
        except Exception as e:  # a bad index list is the requester's problem, not this node's
            log.debug("opening refused: %s", e)
            return None

    # --- fetching -----------------------------------------------------------------------------------
    async def open_from(self, peer: bytes, ef: bytes, leaves: list[int], with_leaves: bool, max_size: int) -> bytes:
        """An opening of `peer`'s committed state `ef` at `leaves`, unchecked: the caller verifies it against
        the commitment (ef_parts.parse_opening)."""
        if not 0 < len(leaves) <= OPEN_MAX_LEAVES or len(ef) != 32:
            raise BlobError(f"an opening names 1 to {OPEN_MAX_LEAVES} leaves of a 32-byte commitment")
        request = OPEN + ef + bytes([with_leaves]) + struct.pack(f"<{len(leaves)}I", *leaves)
        data = await self.fetch_from(peer, request, max_size, checked=False)
        self.stats["openings_fetched"] += 1
        return data

    async def fetch_from(self, peer: bytes, h: bytes, max_size: int | None = None,
                         progress: Progress | None = None, checked: bool = True) -> bytes:
        """`h`'s bytes from `peer`; `checked=False` only for `open_from`, whose answer is not content-addressed."""
        limit = self.max_size if max_size is None else max_size
        conn = await self.node.connect(peer, BLOBS_ALPN)
        try:
            bi = await conn.open_bi()
            await bi.send().write_all(h)
            await bi.send().finish()
            recv = bi.recv()
            async with asyncio.timeout(self.stall_timeout):
                head = await recv.read_exact(9)
            status, size = struct.unpack("<BQ", head)
        except Exception as e:
            self.node.forget(peer, BLOBS_ALPN)
            raise BlobError(f"request failed: {exception_text(e)}") from None
        if status != FOUND:
            raise BlobError("peer does not have it")
        if size > limit:
            await recv.stop(2)
            raise BlobError(f"peer announces {size} bytes, over the {limit}-byte limit")
        hasher, parts, got = hashlib.sha256(), [], 0
        try:
            while got < size:  # hash each chunk as it lands (hashlib releases the GIL; iroh keeps receiving)
                async with asyncio.timeout(self.stall_timeout):
                    part = await recv.read_exact(min(CHUNK, size - got))
                hasher.update(part)
                parts.append(part)
                got += len(part)
                if progress is not None:
                    progress(got, size)
        except Exception as e:
            self.node.forget(peer, BLOBS_ALPN)
            why = f"no data for {self.stall_timeout}s" if isinstance(e, TimeoutError) else exception_text(e)
            raise BlobError(f"transfer broke after {got} of {size} bytes: {why}") from None
        if checked and hasher.digest() != h:
            raise BlobError("bytes do not hash to the requested sha256")
        data = b"".join(parts)
        return data

    async def fetch(self, h: bytes, providers: list[bytes], step: int = 0, max_size: int | None = None,
                    progress: Progress | None = None) -> bytes:
        """Local store first, then each provider in order (the announcer first); stores the verified bytes."""
        local = self.store.get(h)
        if local is not None:
            return local
        reasons: dict[str, str] = {}
        async with self._downloads:
            for peer in providers:
                if peer == self.node.public:
                    continue
                try:
                    data = await self.fetch_from(peer, h, max_size, progress)
                except Exception as e:
                    reasons[peer.hex()[:10]] = exception_text(e)
                    self.stats["failed_attempts"] += 1
                    continue
                self.store.put(data, step)
                self.stats["fetched"] += 1
                self.stats["bytes_fetched"] += len(data)
                return data
        raise BlobUnavailable(h, reasons or {"-": "no providers"})
