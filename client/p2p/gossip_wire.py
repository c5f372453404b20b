"""Gossip's wire: length-prefixed frames on one long-lived QUIC uni-stream per (sender, neighbour).

Why: one uni-stream per message cost ~170 us to open, write and finish and ~65 us to accept and read on this
machine (issue 24), paid for every copy of every message, and under flooding most copies are duplicates. A
stream per neighbour that stays open carries each message as a frame (u32 little-endian length, then the
signed envelope); frames queued while a write is in flight leave together in one write (one call into the
bindings for many messages), and the receiver reads whatever has arrived in one call and splits it.

Limits, so a long-lived stream is no easier to abuse than one stream per message: a frame longer than the
receiver's `max_frame` is refused from its 4-byte header, before its payload is kept (at most one read's
worth of it was ever in memory), and the stream is then stopped: its framing can no longer be trusted, and an
honest sender never writes one (`Gossip.publish` refuses oversized messages, and a forwarded message passed
the same limit). Every frame is checked on its own by the gossip layer, so a forged, malformed, replayed or
wrong-run frame is dropped and counted and the stream goes on carrying the frames after it. A stream that ends
inside a frame is counted once as `truncated`.
"""
from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable

import iroh

HEADER = struct.Struct("<I")
READ_CHUNK = 256 * 1024  # bytes asked for per read: many frames per call into the bindings when they queue up


def frame(wire: bytes) -> bytes:
    """One message as it travels on a gossip stream."""
    return HEADER.pack(len(wire)) + wire


class FrameSplitter:
    """Reassembles frames from a stream's reads, whatever the read boundaries; refuses a frame over
    `max_frame` from its header alone."""

    def __init__(self, max_frame: int) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self.too_large = False  # set once a header announced more than max_frame; nothing is split after it

    @property
    def pending(self) -> int:
        """Bytes held of a frame that has not fully arrived."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames `data` finishes, in order. After an oversized header the frames before it are
        still returned, `too_large` is set and the rest is discarded."""
        if self.too_large:
            return []
        self._buf += data
        out, off, size = [], 0, len(self._buf)
        view = memoryview(self._buf)
        try:
            while size - off >= HEADER.size:
                (n,) = HEADER.unpack_from(view, off)
                if n > self.max_frame:
                    self.too_large = True
                    break
                if size - off - HEADER.size < n:
                    break
                out.append(bytes(view[off + HEADER.size:off + HEADER.size + n]))
                off += HEADER.size + n
        finally:
            view.release()
        if self.too_large:
            self._buf = bytearray()
        elif off:
            del self._buf[:off]
        return out


async def _reset(stream: iroh.SendStream) -> None:
    with contextlib.suppress(Exception):
        await stream.reset(0)


class Link:
    """Our long-lived stream to one neighbour and the frames waiting for it. `send` queues a frame; one writer
    task at a time drains the queue, so frames queued while a write is in flight go out together. A failed
    write (timeout, connection gone) resolves every frame of its batch as not sent and drops the stream: a
    half-written frame must never be followed by another on the same stream."""

    def __init__(self, connect: Callable[[], Awaitable[iroh.Connection]], cached: Callable[[], iroh.Connection | None],
                 spawn: Callable[..., asyncio.Task], timeout: float, coalesce_s: float = 0.005) -> None:
        self._connect, self._cached, self._spawn, self.timeout = connect, cached, spawn, timeout
        self.coalesce_s = coalesce_s  # a writer waits this long first, so the frames of a burst share a write
        self._queue: list[bytes] = []
        self._done: asyncio.Future[int] | None = None
        self._writer: asyncio.Task | None = None
        self._conn: iroh.Connection | None = None
        self._stream: iroh.SendStream | None = None
        self.closed = False

    def enqueue(self, wire: bytes) -> asyncio.Future[int]:
        """Queue one message; the future gives how many frames the write that carried it delivered (as the old
        finished stream did: into QUIC's hands, which retransmits), 0 when that write failed. The future is
        the whole batch's: await it through `asyncio.shield` (or add a callback), never cancel it."""
        loop = asyncio.get_running_loop()
        if self.closed:
            failed: asyncio.Future[int] = loop.create_future()
            failed.set_result(0)
            return failed
        self._queue.append(frame(wire))
        if self._done is None:
            self._done = loop.create_future()
        if self._writer is None or self._writer.done():
            self._writer = self._spawn(self._write_loop())
        return self._done

    async def _stream_for_batch(self) -> iroh.SendStream:
        if self._stream is not None and self._cached() is self._conn:  # no dial, no lock, no call into iroh
            return self._stream
        conn = await self._connect()
        if conn is not self._conn or self._stream is None:  # first use, or the peer's newest dial replaced ours
            self._conn, self._stream = conn, await conn.open_uni()
        return self._stream

    async def _write_loop(self) -> None:
        while self._queue and not self.closed:
            if self.coalesce_s > 0:
                await asyncio.sleep(self.coalesce_s)
            batch, done = self._queue, self._done
            self._queue, self._done = [], None
            sent = len(batch)
            try:
                async with asyncio.timeout(self.timeout):
                    stream = await self._stream_for_batch()
                    await stream.write_all(b"".join(batch) if len(batch) > 1 else batch[0])
            except Exception:
                sent = 0
                self._drop_stream()
            if done is not None and not done.done():
                done.set_result(sent)

    def _drop_stream(self) -> None:
        stream, self._stream, self._conn = self._stream, None, None
        if stream is not None:
            self._spawn(_reset(stream))

    def close(self) -> None:
        """No more sends on this link (the neighbour was dropped); queued frames resolve as not sent."""
        self.closed = True
        self._drop_stream()
        if self._done is not None and not self._done.done():
            self._done.set_result(0)
        self._queue, self._done = [], None
