"""Epidemic broadcast of signed messages on one run's topic, over our own ALPN.

Each node keeps a neighbour set drawn from the members it can reach: `fanout` it picks at random, plus every
member that picked it (adoption is never refused, so a latecomer that dials anyone is heard: a cap on
adoption left a client that arrived after the others had chosen with nobody forwarding to it; see
devtools/gossip_overlay_model.py). A new valid message is delivered locally and forwarded to every neighbour
that is not known to hold it already (it came from them, or we delivered it to them); ids already seen are
dropped, so each message crosses each link at most about once. Delivery stays robust without periodic
re-sends of everything: QUIC retransmits lost packets on a stream; every recent message (own or forwarded,
within the step window) is pushed once to each neighbour that joins later or replaces a failed one; and
own messages are re-sent to the neighbours that did not send them back to us a few times with exponential
backoff (after `rebroadcast_s`, then x4, `max_resends` times), for receivers that dropped them while their
epoch members or step lagged. A received message is forwarded after a random delay of up to
`forward_delay_s`, so two neighbours that got it at about the same time rarely send it to each other. A
neighbour whose send fails is replaced by another reachable member (repair).

A duplicate is recognised by its id (sha256 of the signed body) BEFORE its signature is checked (a
signature check is most of a message's cost and most messages are duplicates); an id is recorded as seen
only once a copy with that id verified, so a forged copy cannot poison the seen set, and an unverified copy
of a verified id is dropped as a duplicate (the genuine one was delivered already).

Messages to a neighbour travel as length-prefixed frames on one long-lived QUIC uni-stream (gossip_wire.py:
a stream per message cost more than everything else a duplicate costs); a frame over `max_message` is
refused from its header and stops that stream, and every other frame is checked on its own, so a bad frame
never costs the honest frames after it. Receivers drop, and count by reason: oversized, truncated (a stream
ended inside a frame), malformed, unsigned, forged, wrong_run, wrong_step (outside the step window),
not_member (signer not in the epoch), duplicate (id seen), replay ((sender, nonce) already used).

A member can also ask a peer for the messages it holds of one (kind, step, sender) (`ask`, on its own ALPN):
how a client that missed an announcement the chain's witnesses vouch for gets it before applying the step.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import iroh
import msgpack

from client.p2p.envelope import DEFAULT_MAX_MESSAGE, Dropped, Message, open_envelope, peek_id, seal
from client.p2p.gossip_wire import READ_CHUNK, FrameSplitter, Link
from client.p2p.node import P2PNode

log = logging.getLogger(__name__)
GOSSIP_ALPN = b"psyche/gossip/2"  # 2: framed long-lived streams (1: a stream per message)
ASK_ALPN = b"psyche/gossip-ask/1"
ASK_MAX_ANSWERS = 4


@dataclass
class _Recent:
    """A message of the step window and which peers are known to hold it."""
    msg: Message
    own: bool
    heard_from: set[bytes] = field(default_factory=set)  # sent it to us: they hold it for sure
    pushed: set[bytes] = field(default_factory=set)  # we delivered it to them (the write carrying it completed)
    resends: int = 0
    resend_at: float = 0.0


class Gossip:
    def __init__(self, node: P2PNode, run_id: str, fanout: int = 3, max_message: int = DEFAULT_MAX_MESSAGE,
                 step_window: int = 2, rebroadcast_s: float = 1.0, seen_capacity: int = 4096,
                 send_timeout: float = 3.0, inbox_size: int = 10_000, seed: int | None = None,
                 max_resends: int = 2, forward_delay_s: float = 0.05) -> None:
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
        self.max_resends, self.forward_delay_s = max_resends, forward_delay_s
        self._recent: OrderedDict[bytes, _Recent] = OrderedDict()  # id -> message of the step window
        self._synced: set[bytes] = set()  # neighbours that were pushed the recent backlog
        self.sent = 0  # successful sends (one message to one neighbour)
        self.streams_in = 0  # gossip streams neighbours opened to us (one per neighbour while links hold)
        self._rng = random.Random(seed)
        self._failed_at: dict[bytes, float] = {}
        self._links: dict[bytes, Link] = {}  # neighbour -> our long-lived stream to it
        self.retry_after_s = 10.0
        node.register(GOSSIP_ALPN, self._serve)
        node.register(ASK_ALPN, self._serve_ask)
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
        for mid in [i for i, r in self._recent.items() if r.msg.step < low]:
            del self._recent[mid]

    # --- neighbours ---------------------------------------------------------------------------------
    def _usable(self, key: bytes, now: float) -> bool:
        return self.node.membership.allows(key) and now - self._failed_at.get(key, -1e9) > self.retry_after_s

    def _refresh_neighbours(self) -> list[bytes]:
        """Keep live member neighbours; top up to `fanout` with random reachable members."""
        now = time.monotonic()
        self.neighbours = [n for n in self.neighbours if self._usable(n, now)]
        if len(self.neighbours) < self.fanout:  # the member scan is O(N): only when there is a gap to fill
            spare = [k for k in self.node.known_peers() if k not in self.neighbours and self._usable(k, now)]
            self._rng.shuffle(spare)
            self.neighbours += spare[:self.fanout - len(self.neighbours)]
        return self.neighbours

    def _adopt(self, remote: bytes) -> None:
        """Neighbourhood is symmetric and adoption is never refused: a member that chose us becomes our
        neighbour whatever our degree, so everyone a node picks forwards to it and no latecomer is left
        unheard (each node picks `fanout`, so the mean degree stays ~2 x fanout)."""
        if remote not in self.neighbours and self._usable(remote, time.monotonic()):
            self.neighbours.append(remote)

    async def join(self) -> None:
        """Dial the current neighbours so they adopt us; called at start and on every maintenance tick."""
        for peer in list(self._refresh_neighbours()):
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.node.connect(peer, GOSSIP_ALPN)
            except Exception as e:
                log.debug("gossip join of %s failed: %s", peer.hex()[:10], e)
                self._drop_neighbour(peer)

    def _drop_neighbour(self, key: bytes) -> None:
        """Replace a neighbour that failed; it is not picked again for `retry_after_s`."""
        self._failed_at[key] = time.monotonic()
        if key in self.neighbours:
            self.neighbours.remove(key)
        self._synced.discard(key)
        link = self._links.pop(key, None)
        if link is not None:
            link.close()
        self.node.forget(key, GOSSIP_ALPN)

    # --- sending ------------------------------------------------------------------------------------
    def _link(self, peer: bytes) -> Link:
        link = self._links.get(peer)
        if link is None or link.closed:
            link = self._links[peer] = Link(lambda: self.node.connect(peer, GOSSIP_ALPN),
                                            lambda: self.node.cached(peer, GOSSIP_ALPN), self.node.spawn,
                                            self.send_timeout)
        return link

    def _sent(self, peer: bytes, ok: int) -> bool:
        if ok:
            self.sent += 1
            return True
        log.debug("gossip to %s failed", peer.hex()[:10])
        self._drop_neighbour(peer)
        return False

    async def _push(self, entry: _Recent, peers: list[bytes]) -> list[bool]:
        """Queue on every peer's link at once (futures, no task per send), then wait for their writes."""
        if not peers:
            return []
        waits = [asyncio.shield(self._link(n).enqueue(entry.msg.wire)) for n in peers]
        results = [self._sent(n, ok) for n, ok in zip(peers, await asyncio.gather(*waits), strict=True)]
        entry.pushed.update(n for n, ok in zip(peers, results, strict=True) if ok)
        return results

    async def _fan_out(self, entry: _Recent) -> int:
        """Send to every neighbour not known to hold the message; a second pass reaches the replacements of
        neighbours that just failed."""
        sent = 0
        for _ in range(2):
            targets = [n for n in self._refresh_neighbours() if n not in entry.heard_from and n not in entry.pushed]
            results = await self._push(entry, targets)
            sent += sum(results)
            if all(results):
                break
        return sent

    def _keep(self, msg: Message, own: bool, heard_from: set[bytes]) -> _Recent:
        entry = _Recent(msg, own, heard_from={*heard_from, self.node.public, msg.sender},
                        resend_at=time.monotonic() + self.rebroadcast_s)
        self._recent[msg.id] = entry
        while len(self._recent) > self.seen_capacity:
            self._recent.popitem(last=False)
        return entry

    async def publish(self, kind: str, payload: bytes, step: int | None = None) -> Message:
        msg = seal(self.node.identity, self.run_id, self.step if step is None else step, kind, payload)
        if len(msg.wire) > self.max_message:
            raise ValueError(f"message of {len(msg.wire)} bytes exceeds the {self.max_message}-byte limit")
        self._remember(msg)
        await self._fan_out(self._keep(msg, True, set()))
        return msg

    async def _rebroadcast_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rebroadcast_s)
            await self.join()
            await self.maintain()

    async def maintain(self) -> None:
        """One maintenance tick: push the recent backlog to neighbours new since the last tick, and re-send
        own messages whose backoff is due to the neighbours that did not send them back."""
        neighbours = self._refresh_neighbours()
        new = [n for n in neighbours if n not in self._synced]
        now = time.monotonic()
        jobs = []
        for entry in list(self._recent.values()) if new else [r for r in self._recent.values() if r.own]:
            targets = [n for n in new if n not in entry.heard_from and n not in entry.pushed]
            if entry.own and entry.resends < self.max_resends and now >= entry.resend_at:
                entry.resends += 1
                entry.resend_at = now + self.rebroadcast_s * 4 ** entry.resends
                targets = [n for n in neighbours if n not in entry.heard_from]
            if targets:
                jobs.append(self._push(entry, targets))
        self._synced = set(neighbours)
        if jobs:
            await asyncio.gather(*jobs)

    # --- receiving ----------------------------------------------------------------------------------
    def _remember(self, msg: Message) -> None:
        self._seen[msg.id] = None
        if len(self._seen) > self.seen_capacity:
            self._seen.popitem(last=False)
        self._nonces[(msg.sender, msg.nonce)] = msg.step

    def check(self, wire: bytes) -> Message:
        """All stateless and stateful checks; raises `Dropped`. Does not record the message. A known id is a
        duplicate before any signature check (ids are recorded only after one verified)."""
        if peek_id(wire, self.max_message) in self._seen:
            raise Dropped("duplicate")
        return self._check_new(wire)

    def _check_new(self, wire: bytes) -> Message:
        msg = open_envelope(wire, self.max_message)
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
            mid = peek_id(wire, self.max_message)
            if mid in self._seen:
                self._heard(mid, wire, from_peer)
                raise Dropped("duplicate")
            msg = self._check_new(wire)
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
        entry = self._keep(msg, False, {from_peer})
        delay = self._rng.uniform(0, self.forward_delay_s) if self.forward_delay_s > 0 else 0.0
        asyncio.get_running_loop().call_later(delay, self._forward, entry, 2)
        return msg

    def _forward(self, entry: _Recent, passes: int) -> None:
        """Queue a received message for every neighbour not known to hold it; a timer callback, no task.
        Scheduled after a random delay in [0, forward_delay_s]: of two neighbours that got a message at about
        the same time, the first to forward usually reaches the other before its own timer fires, so the link
        carries one copy instead of one each way (the copy received marks the peer as holding it). A failed
        send drops that neighbour and forwards once more, to its replacement (`passes`)."""
        if self.node.closed:
            return
        for n in self._refresh_neighbours():
            if n not in entry.heard_from and n not in entry.pushed:
                self._link(n).enqueue(entry.msg.wire).add_done_callback(
                    functools.partial(self._forwarded, entry, n, passes))

    def _forwarded(self, entry: _Recent, peer: bytes, passes: int, done: asyncio.Future[int]) -> None:
        if self._sent(peer, 0 if done.cancelled() else done.result()):
            entry.pushed.add(peer)
        elif passes > 1:
            self._forward(entry, passes - 1)

    def _heard(self, mid: bytes, wire: bytes, from_peer: bytes) -> None:
        """A peer sent us a message we hold: it needs no copy from us. Only a byte-identical copy counts
        (an unverified one with a known id proves nothing about the sender)."""
        entry = self._recent.get(mid)
        if entry is not None and entry.msg.wire == wire:
            entry.heard_from.add(from_peer)

    # --- asking for missed messages ----------------------------------------------------------------
    def held(self, kind: str, step: int, sender: bytes) -> list[Message]:
        return [r.msg for r in self._recent.values()
                if r.msg.kind == kind and r.msg.step == step and r.msg.sender == sender][:ASK_MAX_ANSWERS]

    async def _serve_ask(self, conn: iroh.Connection, remote: bytes) -> None:
        await self.node.serve_streams(conn, remote, self._answer_ask)

    async def _answer_ask(self, bi: iroh.BiStream) -> None:
        try:
            kind, step, sender = msgpack.unpackb(await bi.recv().read_to_end(256), raw=False)
            answer = [m.wire for m in self.held(str(kind), int(step), bytes(sender))]
            send = bi.send()
            await send.write_all(msgpack.packb(answer, use_bin_type=True))
            await send.finish()
        except Exception as e:  # a malformed request or a requester gone: nothing to clean up but the stream
            log.debug("gossip ask answer failed: %s", e)

    async def ask(self, peer: bytes, kind: str, step: int, sender: bytes, timeout: float = 3.0) -> int:
        """Ask `peer` for the messages it holds of (kind, step, sender); each answer goes through `receive`
        (every check, delivery to the inbox, forwarding). Returns how many were new to us."""
        async def go() -> int:
            conn = await self.node.connect(peer, ASK_ALPN)
            bi = await conn.open_bi()
            await bi.send().write_all(msgpack.packb([kind, step, sender], use_bin_type=True))
            await bi.send().finish()
            raw = await bi.recv().read_to_end(ASK_MAX_ANSWERS * (self.max_message + 16) + 16)
            wires = msgpack.unpackb(raw, raw=False, max_bin_len=self.max_message)
            if not isinstance(wires, list):
                return 0
            got = 0
            for wire in wires[:ASK_MAX_ANSWERS]:
                if isinstance(wire, bytes) and await self.receive(wire, peer) is not None:
                    got += 1
            return got

        try:
            async with asyncio.timeout(timeout):
                return await go()
        except Exception as e:
            log.debug("gossip ask of %s failed: %s", peer.hex()[:10], e)
            self.node.forget(peer, ASK_ALPN)
            return 0

    async def _serve(self, conn: iroh.Connection, remote: bytes) -> None:
        self._adopt(remote)
        while True:
            try:
                stream = await conn.accept_uni()
            except Exception:
                return
            if self.node.evict_if_gone(conn, remote):
                return
            self.streams_in += 1
            self.node.spawn(self._read_stream(stream, conn, remote))

    async def _read_stream(self, stream: iroh.RecvStream, conn: iroh.Connection, remote: bytes) -> None:
        """Read a neighbour's stream until it ends, handling each frame as it completes. An oversized header
        stops the stream (counted once); a bad frame is only that frame's loss. The stream outlives epochs,
        so membership is checked on every read: a peer dropped from the epoch has its connection closed."""
        splitter = FrameSplitter(self.max_message)
        while True:
            try:
                data = await stream.read(READ_CHUNK)
            except Exception:  # reset by the sender or the connection ended
                return
            if self.node.evict_if_gone(conn, remote):
                return
            if not data:
                if splitter.pending:
                    self.dropped["truncated"] += 1
                return
            for wire in splitter.feed(data):
                await self._on_frame(wire, remote)
            if splitter.too_large:
                self.dropped["oversized"] += 1
                with contextlib.suppress(Exception):
                    await stream.stop(1)
                return

    async def _on_frame(self, wire: bytes, remote: bytes) -> None:
        """One message from a neighbour's stream (a separate hook from `receive`, which asks also use)."""
        await self.receive(wire, remote)
