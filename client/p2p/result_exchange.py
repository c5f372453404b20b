"""One trainer's side of a DisTrO round over P2P: publish a result, gather and validate the peers' results.

A result's bytes go in the blob store; only its sha256 (the commitment a witness also checks) is gossiped,
so gossip stays small whatever the model size. Gathering waits for the announcements of the expected
trainers of the step, fetches each blob from its announcer first (then from the other peers, who may have
fetched it already), and validates it against the commitment, the step and the local model before it is
returned. Results are returned in sender-key order, the order every client applies them in.
"""
from __future__ import annotations

import asyncio
import random
import time

from client.cpu_meter import CpuMeter
from client.errors import exception_text
from client.p2p.blobs import BlobService
from client.p2p.envelope import Message
from client.p2p.gossip import Gossip
from client.training.distro import DistroConfig, DistroResult, ParamLayout
from client.training.ef_parts import StateParts
from client.training.result_codec import ResultError, commitment, decode_result, max_encoded_size

RESULT_KIND = "result"


class ResultExchange:
    def __init__(self, gossip: Gossip, blobs: BlobService, layout: dict[str, ParamLayout], cfg: DistroConfig) -> None:
        self.gossip, self.blobs, self.layout, self.cfg = gossip, blobs, layout, cfg
        self._announced: dict[int, dict[bytes, bytes]] = {}
        self.rejected: dict[bytes, str] = {}
        self.other_messages: list[Message] = []  # gossip of other kinds, kept for the caller (it shares the inbox)
        self.cpu = CpuMeter()  # validate (the commitment's sha256) and decode (checks + tensors), per round event
        self._limit = max_encoded_size(layout)
        self._states: dict[bytes, tuple[int, StateParts]] = {}  # ef -> (step, this trainer's committed state)

    async def publish(self, step: int, wire: bytes, state: StateParts | None = None) -> bytes:
        """Store and announce a result; `state`, the error-feedback state the result commits to, is kept for
        verifiers: openings of it (`open_state`) and its sign map by hash from the blob store."""
        if state is not None:
            self._states[state.ef] = (step, state)
            for blob, h in state.hashed():
                self.blobs.store.put(blob, step, known=h)
        h = self.blobs.store.put(wire, step)
        self._announced.setdefault(step, {})[self.gossip.node.public] = h
        await self.gossip.publish(RESULT_KIND, h, step=step)
        return h

    def drain(self) -> None:
        """Sort what gossip delivered: result announcements by step, anything else to `other_messages`."""
        while not self.gossip.inbox.empty():
            msg: Message = self.gossip.inbox.get_nowait()
            if msg.kind == RESULT_KIND and len(msg.payload) == 32:
                self._announced.setdefault(msg.step, {}).setdefault(msg.sender, msg.payload)
            elif msg.kind != RESULT_KIND:
                self.other_messages.append(msg)

    def announced(self, step: int) -> dict[bytes, bytes]:
        """sender -> commitment of every result announced for `step` so far (kept until `forget`)."""
        self.drain()
        return dict(self._announced.get(step, {}))

    def open_state(self, ef: bytes, leaves: list[int], with_leaves: bool) -> bytes | None:
        """An opening of one of this trainer's kept states (the blob service's `opener`)."""
        kept = self._states.get(ef)
        return None if kept is None else kept[1].open(leaves, with_leaves)

    def forget(self, before_step: int) -> None:
        for step in [s for s in self._announced if s < before_step]:
            del self._announced[step]
        for ef in [e for e, (s, _) in self._states.items() if s < before_step]:
            del self._states[ef]

    async def recover(self, step: int, sender: bytes, timeout: float = 3.0, helpers: int = 3) -> bytes | None:
        """The commitment `sender` announced for `step`, asking over P2P when its announcement never reached
        us: the sender itself and up to `helpers` random peers (neighbours and the step's announcers) at once.
        The answers go through every gossip check (signature, run, step window, membership, replay)."""
        self.drain()
        known = self._announced.get(step, {}).get(sender)
        if known is not None:
            return known
        me = self.gossip.node.public
        others = sorted({*self.gossip.neighbours, *self._announced.get(step, {})} - {sender, me})
        random.shuffle(others)
        await asyncio.gather(*(self.gossip.ask(p, RESULT_KIND, step, sender, timeout)
                               for p in [sender, *others[:helpers]] if p != me))
        self.drain()
        return self._announced.get(step, {}).get(sender)

    async def fetch_result(self, step: int, sender: bytes, h: bytes) -> DistroResult:
        """Download (announcer first, then anyone who announced that step) and validate one result;
        a failure is recorded in `rejected` under the sender and re-raised."""
        announced = self._announced.get(step, {})
        others = sorted(k for k in announced if k not in (sender, self.gossip.node.public))
        try:
            wire = await self.blobs.fetch(h, [sender, *others], step)
            t0 = time.thread_time()
            # an oversized payload is refused unhashed by decode_result
            matches = len(wire) > self._limit or commitment(bytes(wire)) == h
            self.cpu.add("validate", time.thread_time() - t0)
            if not matches:
                raise ResultError("result bytes do not match the committed sha256")
            return self.cpu.timed("decode", decode_result, wire, self.layout, self.cfg, None, step, sender)
        except Exception as e:  # a bad or missing result is left out, with the reason kept (ResultError, …)
            self.rejected[sender] = exception_text(e)
            raise

    async def gather(self, step: int, trainers: set[bytes], timeout: float = 30.0) -> list[tuple[bytes, DistroResult]]:
        """(sender, result) for every trainer whose valid result arrived in time, in sender-key order."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            if trainers <= set(self._announced.get(step, {})) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        announced = self._announced.get(step, {})
        out = []
        for sender in sorted(set(announced) & trainers):
            try:
                out.append((sender, await self.fetch_result(step, sender, announced[sender])))
            except Exception:
                continue
        self._announced.pop(step, None)
        return out
