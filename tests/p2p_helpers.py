"""Clusters of real iroh nodes on 127.0.0.1 for the P2P tests (run them inside scripts/loopback-only)."""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import client.p2p  # noqa: F401  (applies the FFI write patch)
from client.p2p.allowlist import StaticMembers
from client.p2p.blobs import BlobService
from client.p2p.gossip import GOSSIP_ALPN, Gossip
from client.p2p.gossip_wire import frame
from client.p2p.identity import P2PIdentity
from client.p2p.node import P2PNode

RUN = "run-test"


@dataclass
class Peer:
    identity: P2PIdentity
    node: P2PNode
    gossip: Gossip
    blobs: BlobService

    @property
    def key(self) -> bytes:
        return self.identity.public


async def make_peer(members: StaticMembers, fanout: int = 2, rebroadcast_s: float = 0.3,
                    identity: P2PIdentity | None = None, **gossip_kw: object) -> Peer:
    ident = identity or P2PIdentity.generate()
    node = P2PNode(ident, members)
    gossip = Gossip(node, RUN, fanout=fanout, rebroadcast_s=rebroadcast_s, **gossip_kw)  # type: ignore[arg-type]
    blobs = BlobService(node)
    await node.start()
    gossip.start()
    return Peer(ident, node, gossip, blobs)


def introduce(peers: list[Peer]) -> None:
    for p in peers:
        for q in peers:
            if p is not q:
                p.node.add_peer(q.key, q.node.address)


@contextlib.asynccontextmanager
async def cluster(n: int, **kw: object) -> AsyncIterator[tuple[list[Peer], StaticMembers]]:
    idents = [P2PIdentity.generate() for _ in range(n)]
    members = StaticMembers({i.public for i in idents})
    peers = [await make_peer(members, identity=i, **kw) for i in idents]  # type: ignore[arg-type]
    introduce(peers)
    for p in peers:  # what a client does once it has read the epoch's members: dial its neighbours
        await p.gossip.join()
    try:
        yield peers, members
    finally:
        for p in peers:
            await p.node.close()


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    """Seconds until `cond` held; fails the test with `what` after `timeout` (a bound, not a benchmark)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def raw_send(sender: Peer, target: Peer, wire: bytes) -> None:
    """Put one message on a fresh gossip stream as a frame, bytes as-is: how a misbehaving member would."""
    await raw_stream(sender, target, frame(wire))


async def raw_stream(sender: Peer, target: Peer, *chunks: bytes, pause_s: float = 0.0) -> None:
    """Write `chunks` (already framed, or deliberately not) on one new gossip stream, pausing between them."""
    conn = await sender.node.connect(target.key, GOSSIP_ALPN)
    stream = await conn.open_uni()
    with contextlib.suppress(Exception):  # the receiver may stop an oversized stream mid-write
        for i, chunk in enumerate(chunks):
            if i and pause_s:
                await asyncio.sleep(pause_s)
            await stream.write_all(chunk)
        await stream.finish()
