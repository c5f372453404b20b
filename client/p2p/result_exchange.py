"""One trainer's side of a DisTrO round over P2P: publish a result, gather and validate the peers' results.

A result's bytes go in the blob store; only its sha256 (the commitment a witness also checks) is gossiped,
so gossip stays small whatever the model size. Gathering waits for the announcements of the expected
trainers of the step, fetches each blob from its announcer first (then from the other peers, who may have
fetched it already), and validates it against the commitment, the step and the local model before it is
returned. Results are returned in sender-key order, the order every client applies them in.
"""
from __future__ import annotations

import asyncio
import time

from client.errors import exception_text
from client.p2p.blobs import BlobService
from client.p2p.envelope import Message
from client.p2p.gossip import Gossip
from client.training.distro import DistroConfig, DistroResult, ParamLayout
from client.training.result_codec import decode_result

RESULT_KIND = "result"


class ResultExchange:
    def __init__(self, gossip: Gossip, blobs: BlobService, layout: dict[str, ParamLayout], cfg: DistroConfig) -> None:
        self.gossip, self.blobs, self.layout, self.cfg = gossip, blobs, layout, cfg
        self._announced: dict[int, dict[bytes, bytes]] = {}
        self.rejected: dict[bytes, str] = {}
        self.other_messages: list[Message] = []  # gossip of other kinds, kept for the caller (it shares the inbox)

    async def publish(self, step: int, wire: bytes, state: bytes | None = None) -> bytes:
        """Store and announce a result; `state`, the error-feedback state the result commits to (its `ef` is
        the state's sha256, so the blob store serves it under that name), is kept for verifiers to fetch."""
        if state is not None:
            self.blobs.store.put(state, step)
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

    def forget(self, before_step: int) -> None:
        for step in [s for s in self._announced if s < before_step]:
            del self._announced[step]

    async def fetch_result(self, step: int, sender: bytes, h: bytes) -> DistroResult:
        """Download (announcer first, then anyone who announced that step) and validate one result;
        a failure is recorded in `rejected` under the sender and re-raised."""
        announced = self._announced.get(step, {})
        others = sorted(k for k in announced if k not in (sender, self.gossip.node.public))
        try:
            wire = await self.blobs.fetch(h, [sender, *others], step)
            return decode_result(wire, self.layout, self.cfg, expected_commitment=h, expected_step=step,
                                 expected_sender=sender)
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
