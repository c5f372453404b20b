"""An iroh endpoint owned by one client: its identity, its members-only accept loop, and dialling peers.

Protocols register an ALPN handler; every incoming connection is accepted only after the QUIC/TLS
handshake has proven the peer's key and that key is a member (a client of the current epoch). Others are
closed with code 403 and counted. Outgoing connections are cached per (peer, ALPN) and dialled by key +
the address hints from the coordinator account (or ones added by hand); non-members are never dialled.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import iroh

from client.errors import exception_text
from client.p2p.allowlist import Membership
from client.p2p.identity import P2PIdentity

log = logging.getLogger(__name__)
NOT_MEMBER = 403
Handler = Callable[[iroh.Connection, bytes], Awaitable[None]]


class NotMember(Exception):
    """The peer is not a client of the current epoch."""


class PeerUnreachable(Exception):
    """No address for the peer, or every address failed. `reason`: the transport's own words (without our
    prefix, which names the peer's key and addresses and so can contain any digits)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class P2PNode:
    def __init__(self, identity: P2PIdentity, membership: Membership, bind_addr: str = "127.0.0.1:0",
                 relay: str = "disabled", dial_timeout: float = 3.0) -> None:
        if relay not in ("disabled", "default"):
            raise ValueError(f"relay must be 'disabled' or 'default', got {relay!r}")
        self.identity, self.membership = identity, membership
        self.bind_addr, self.relay, self.dial_timeout = bind_addr, relay, dial_timeout
        self.handlers: dict[bytes, Handler] = {}
        self.addresses: dict[bytes, list[str]] = {}
        self.refused: Counter[str] = Counter()
        self._conns: dict[tuple[bytes, bytes], iroh.Connection] = {}
        self._dial_locks: dict[tuple[bytes, bytes], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()
        self.on_peer_dialled: list[Callable[[bytes], None]] = []  # a member dialled us: it is alive
        self.endpoint: iroh.Endpoint | None = None
        self.closed = False  # set by close(): timers still pending (gossip's forwards) must not send any more

    @property
    def public(self) -> bytes:
        return self.identity.public

    def register(self, alpn: bytes, handler: Handler) -> None:
        self.handlers[alpn] = handler

    async def start(self) -> P2PNode:
        relay_mode = iroh.RelayMode.disabled() if self.relay == "disabled" else iroh.RelayMode.default_mode()
        opts = iroh.EndpointOptions(preset=iroh.preset_minimal(), relay_mode=relay_mode, bind_addr=self.bind_addr,
                                    alpns=list(self.handlers), secret_key=self.identity.seed)
        self.endpoint = await iroh.Endpoint.bind(opts)
        if self.endpoint.id().to_bytes() != self.public:
            raise RuntimeError("iroh endpoint id differs from the P2P identity's public key")
        self.spawn(self._accept_loop())
        return self

    @property
    def address(self) -> str:
        """This node's IPv4 socket address, the hint it registers on chain."""
        assert self.endpoint is not None, "start() the node first"
        return next(a for a in self.endpoint.bound_sockets() if not a.startswith("["))

    def spawn(self, coro: Awaitable[None]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def add_peer(self, key: bytes, *addrs: str) -> None:
        self.addresses[key] = list(addrs)

    def known_peers(self) -> list[bytes]:
        """Members we know how to reach, excluding ourselves, in a stable order."""
        hints = getattr(self.membership, "hints", {})
        keys = (set(self.addresses) | set(hints)) & self.membership.members()
        return sorted(keys - {self.public})

    def _addrs_for(self, key: bytes) -> list[str]:
        return self.addresses.get(key) or getattr(self.membership, "hints", {}).get(key, [])

    async def _accept_loop(self) -> None:
        assert self.endpoint is not None
        while True:
            try:
                incoming = await self.endpoint.accept_next()
            except Exception as e:  # endpoint closed
                log.debug("accept loop ends: %s", e)
                return
            if incoming is None:
                return
            self.spawn(self._admit(incoming))

    async def _admit(self, incoming: iroh.Incoming) -> None:
        try:
            accepting = await incoming.accept()
            alpn = await accepting.alpn()
            conn = await accepting.connect()
        except Exception as e:
            self.refused["handshake"] += 1
            log.debug("incoming handshake failed: %s", e)
            return
        remote = conn.remote_id().to_bytes()
        if not self.membership.allows(remote):
            self.refused["not_member"] += 1
            conn.close(NOT_MEMBER, b"not a member of the current epoch")
            return
        handler = self.handlers.get(alpn)
        if handler is None:
            self.refused["unknown_alpn"] += 1
            conn.close(400, b"unknown protocol")
            return
        # QUIC is bidirectional: answer over the peer's own dial. The newest dial wins: a peer that restarted
        # with the same key dials us afresh, and a cached connection to its dead predecessor would swallow
        # everything we send until QUIC's idle timeout noticed. (The old one is left open, not closed: when
        # two peers dial each other at once, closing would make each drop the other's good connection.)
        self._conns[(remote, alpn)] = conn
        for fn in self.on_peer_dialled:
            fn(remote)
        await self._run_handler(handler, conn, remote)

    @staticmethod
    async def _run_handler(handler: Handler, conn: iroh.Connection, remote: bytes) -> None:
        with contextlib.suppress(Exception):
            await handler(conn, remote)

    async def connect(self, key: bytes, alpn: bytes) -> iroh.Connection:
        if not self.membership.allows(key):
            raise NotMember(f"peer {key.hex()[:10]} is not a member of the current epoch")
        slot = (key, alpn)
        lock = self._dial_locks.setdefault(slot, asyncio.Lock())
        async with lock:
            conn = self._conns.get(slot)
            if conn is not None and conn.close_reason() is None:
                return conn
            addrs = self._addrs_for(key)
            if not addrs:
                raise PeerUnreachable(f"no address known for peer {key.hex()[:10]}")
            assert self.endpoint is not None, "start() the node first"
            target = iroh.EndpointAddr(iroh.EndpointId.from_bytes(key), None, addrs)
            try:
                async with asyncio.timeout(self.dial_timeout):
                    conn = await self.endpoint.connect(target, alpn)
            except TimeoutError:
                raise PeerUnreachable(f"peer {key.hex()[:10]} at {addrs}: no answer in {self.dial_timeout}s") from None
            except Exception as e:
                raise PeerUnreachable(f"peer {key.hex()[:10]} at {addrs}: {exception_text(e)}",
                                      reason=exception_text(e)) from None
            self._conns[slot] = conn
            handler = self.handlers.get(alpn)
            if handler is not None:  # the peer may answer over our dial too (it caches incoming connections)
                self.spawn(self._run_handler(handler, conn, key))
            return conn

    def cached(self, key: bytes, alpn: bytes) -> iroh.Connection | None:
        """The connection `connect` would return without dialling, if any (not checked for liveness: a
        caller that writes on it learns of a dead one from the write)."""
        return self._conns.get((key, alpn))

    def evict_if_gone(self, conn: iroh.Connection, remote: bytes) -> bool:
        """Close a connection whose peer stopped being a member (the allowlist is refreshed each epoch)."""
        if self.membership.allows(remote):
            return False
        self.refused["no_longer_member"] += 1
        with contextlib.suppress(Exception):
            conn.close(NOT_MEMBER, b"no longer a member of the current epoch")
        return True

    async def serve_streams(self, conn: iroh.Connection, remote: bytes,
                            answer: Callable[[iroh.BiStream], Awaitable[None]]) -> None:
        """Answer each bi-stream a member opens on `conn` in its own task, until the connection ends or its
        peer stops being a member (the request/answer protocols, blobs and gossip asks, share this loop)."""
        while True:
            try:
                bi = await conn.accept_bi()
            except Exception:
                return
            if self.evict_if_gone(conn, remote):
                return
            self.spawn(answer(bi))

    def forget(self, key: bytes, alpn: bytes) -> None:
        conn = self._conns.pop((key, alpn), None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close(0, b"")

    async def close(self) -> None:
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close(0, b"bye")
        self._conns.clear()
        if self.endpoint is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.endpoint.close()
