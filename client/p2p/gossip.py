"""Epidemic broadcast of signed messages on one run's topic, over our own ALPN.

Each node keeps a bounded neighbour set drawn from the members it can reach. A new valid message is
delivered locally and forwarded to every neighbour except the one it came from; ids already seen are
dropped, so each message crosses each link at most about once per direction. Own messages of recent
steps are re-sent every `rebroadcast_s` so peers that joined late or lost a link still get them. A
neighbour whose send fails is replaced by another reachable member (repair).

Each message travels on its own QUIC uni-stream, read with a hard size limit. Receivers drop, and count
by reason: oversized, malformed, unsigned, forged, wrong_run, wrong_step (outside the step window),
not_member (signer not in the epoch), duplicate (id seen), replay ((sender, nonce) already used).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable

import iroh

from client.p2p.envelope import DEFAULT_MAX_MESSAGE, Dropped, Message, open_envelope, seal
from client.p2p.node import P2PNode

log = logging.getLogger(__name__)
GOSSIP_ALPN = b"psyche/gossip/1"


class Gossip:
    def __init__(self, node: P2PNode, run_id: str, fanout: int = 3, max_message: int = DEFAULT_MAX_MESSAGE,
                 step_window: int = 2, rebroadcast_s: float = 1.0, seen_capacity: int = 4096,
                 send_timeout: float = 3.0, inbox_size: int = 10_000, seed: int | None = None) -> None:
        self.node, self.run_id = node, run_id
        self.fanout, self.max_message, self.step_window = fanout, max_message, step_window
        self.rebroadcast_s, self.seen_capacity, self.send_timeout = rebroadcast_s, seen_capacity, send_timeout
        self.step = 0
        self.dropped: Counter[str] = Counter()
        self.delivered = 0
        self.neighbours: list[bytes] = []
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(maxsize=inbox_size)
        self.listeners: list[Callable[[Message], Awaitable[None] | None]] = []
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._nonces: dict[tuple[bytes, int], int] = {}
        self._own: list[Message] = []
        self._rng = random.Random(seed)
        self._failed_at: dict[bytes, float] = {}
        self.retry_after_s = 10.0
        node.register(GOSSIP_ALPN, self._serve)
        node.on_peer_dialled.append(self._revived)

    def _revived(self, key: bytes) -> None:
        """A member that dialled us is reachable again (e.g. restarted): usable as a neighbour at once."""
        self._failed_at.pop(key, None)

    def start(self) -> None:
        self.node.spawn(self.join())
        if self.rebroadcast_s > 0:
            self.node.spawn(self._rebroadcast_loop())

    def set_step(self, step: int) -> None:
        """Advance the window; forget nonces and own messages that fell out of it."""
        self.step = step
        low = step - self.step_window
        self._nonces = {k: s for k, s in self._nonces.items() if s >= low}
        self._own = [m for m in self._own if m.step >= low]

    # --- neighbours ---------------------------------------------------------------------------------
    def _usable(self, key: bytes, now: float) -> bool:
        return self.node.membership.allows(key) and now - self._failed_at.get(key, -1e9) > self.retry_after_s

    def _refresh_neighbours(self) -> list[bytes]:
        """Keep live member neighbours; top up to `fanout` with random reachable members."""
        now = time.monotonic()
        self.neighbours = [n for n in self.neighbours if self._usable(n, now)]
        spare = [k for k in self.node.known_peers() if k not in self.neighbours and self._usable(k, now)]
        self._rng.shuffle(spare)
        self.neighbours += spare[:max(0, self.fanout - len(self.neighbours))]
        return self.neighbours

    def _adopt(self, remote: bytes) -> None:
        """Neighbourhood is symmetric: a member that chose us becomes our neighbour (up to 2x fanout), so
        the overlay is an undirected graph and no node is left with nobody forwarding to it."""
        if remote not in self.neighbours and len(self.neighbours) < 2 * self.fanout and \
                self._usable(remote, time.monotonic()):
            self.neighbours.append(remote)

    async def join(self) -> None:
        """Dial the current neighbours so they adopt us; called at start and on every maintenance tick."""
        for peer in list(self._refresh_neighbours()):
            try:
                await asyncio.wait_for(self.node.connect(peer, GOSSIP_ALPN), self.send_timeout)
            except Exception as e:
                log.debug("gossip join of %s failed: %s", peer.hex()[:10], e)
                self._drop_neighbour(peer)

    def _drop_neighbour(self, key: bytes) -> None:
        """Replace a neighbour that failed; it is not picked again for `retry_after_s`."""
        self._failed_at[key] = time.monotonic()
        if key in self.neighbours:
            self.neighbours.remove(key)
        self.node.forget(key, GOSSIP_ALPN)

    # --- sending ------------------------------------------------------------------------------------
    async def _send_once(self, peer: bytes, wire: bytes) -> None:
        conn = await self.node.connect(peer, GOSSIP_ALPN)
        stream = await conn.open_uni()
        await stream.write_all(wire)
        await stream.finish()

    async def _send(self, peer: bytes, wire: bytes) -> bool:
        try:
            await asyncio.wait_for(self._send_once(peer, wire), self.send_timeout)
            return True
        except Exception as e:
            log.debug("gossip to %s failed: %s", peer.hex()[:10], e)
            self._drop_neighbour(peer)
            return False

    async def _fan_out(self, msg: Message, exclude: set[bytes]) -> int:
        sent = 0
        for _ in range(2):  # a second pass sends to replacements for neighbours that just failed
            targets = [n for n in self._refresh_neighbours() if n not in exclude]
            results = await asyncio.gather(*(self._send(n, msg.wire) for n in targets))
            sent += sum(results)
            exclude |= set(targets)
            if all(results):
                break
        return sent

    async def publish(self, kind: str, payload: bytes, step: int | None = None) -> Message:
        msg = seal(self.node.identity, self.run_id, self.step if step is None else step, kind, payload)
        if len(msg.wire) > self.max_message:
            raise ValueError(f"message of {len(msg.wire)} bytes exceeds the {self.max_message}-byte limit")
        self._remember(msg)
        self._own.append(msg)
        await self._fan_out(msg, {self.node.public})
        return msg

    async def _rebroadcast_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rebroadcast_s)
            await self.join()
            for msg in list(self._own):
                await self._fan_out(msg, {self.node.public})

    # --- receiving ----------------------------------------------------------------------------------
    def _remember(self, msg: Message) -> None:
        self._seen[msg.id] = None
        if len(self._seen) > self.seen_capacity:
            self._seen.popitem(last=False)
        self._nonces[(msg.sender, msg.nonce)] = msg.step

    def check(self, wire: bytes) -> Message:
        """All stateless and stateful checks; raises `Dropped`. Does not record the message."""
        msg = open_envelope(wire, self.max_message)
        if msg.id in self._seen:
            raise Dropped("duplicate")
        if msg.run != self.run_id:
            raise Dropped("wrong_run", f"{msg.run!r}")
        if abs(msg.step - self.step) > self.step_window:
            raise Dropped("wrong_step", f"step {msg.step}, ours {self.step}")
        if not self.node.membership.allows(msg.sender):
            raise Dropped("not_member", msg.sender.hex()[:10])
        if (msg.sender, msg.nonce) in self._nonces:
            raise Dropped("replay", f"nonce {msg.nonce} of {msg.sender.hex()[:10]} already used")
        return msg

    async def receive(self, wire: bytes, from_peer: bytes) -> Message | None:
        try:
            msg = self.check(wire)
        except Dropped as d:
            self.dropped[d.reason] += 1
            return None
        self._remember(msg)
        self.delivered += 1
        if self.inbox.full():  # a consumer that fell behind loses the oldest, not the network's newest
            self.inbox.get_nowait()
            self.dropped["inbox_full"] += 1
        self.inbox.put_nowait(msg)
        for fn in self.listeners:
            out = fn(msg)
            if asyncio.iscoroutine(out):
                await out
        self.node.spawn(self._fan_out(msg, {from_peer, msg.sender, self.node.public}))
        return msg

    async def _serve(self, conn: iroh.Connection, remote: bytes) -> None:
        self._adopt(remote)
        while True:
            try:
                stream = await conn.accept_uni()
            except Exception:
                return
            if self.node.evict_if_gone(conn, remote):
                return
            self.node.spawn(self._read_one(stream, remote))

    async def _read_one(self, stream: iroh.RecvStream, remote: bytes) -> None:
        try:
            wire = await stream.read_to_end(self.max_message)
        except Exception:  # longer than the limit (or the stream broke): never buffered past the limit
            self.dropped["oversized"] += 1
            with contextlib.suppress(Exception):
                await stream.stop(1)
            return
        await self.receive(wire, remote)
