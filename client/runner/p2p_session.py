"""The client's P2P side for one run: an iroh node keyed by its P2P identity, admitting only the current
epoch's clients as read from the chain, with gossip, blob transfer and the DisTrO result exchange on it.

The P2P key is derived from the wallet secret and the run id unless a key file is given, so a client that
restarts keeps its identity (its peers and the chain know it by that key) without another file to manage.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict

from solders.keypair import Keypair

from client.p2p.allowlist import EpochMembers
from client.p2p.blobs import BlobService
from client.p2p.gossip import Gossip
from client.p2p.identity import P2PIdentity
from client.p2p.node import P2PNode
from client.p2p.result_exchange import ResultExchange
from client.training.distro import DistroConfig, ParamLayout
from coordinator_sdk.account_view import CoordinatorView

KEY_DERIVATION = b"psyche/p2p-key/1"


def derive_p2p_identity(wallet: Keypair, run_id: str) -> P2PIdentity:
    """A P2P identity that only this wallet can produce for this run, stable across restarts."""
    seed = hashlib.sha256(KEY_DERIVATION + bytes(wallet)[:32] + run_id.encode()).digest()
    return P2PIdentity(seed)


class P2PSession:
    def __init__(self, identity: P2PIdentity, run_id: str, bind: str, relay: str) -> None:
        self.identity = identity
        self.members = EpochMembers()
        self.node = P2PNode(identity, self.members, bind_addr=bind, relay=relay)
        self.gossip = Gossip(self.node, run_id, fanout=3, rebroadcast_s=0.5)
        self.blobs = BlobService(self.node)
        self.exchange: ResultExchange | None = None
        self.seen: dict[tuple[str, int], set[bytes]] = defaultdict(set)  # (kind, step) -> senders
        self.said: dict[tuple[str, int], set[bytes]] = defaultdict(set)  # (kind, step) -> payloads
        self._epoch_members: frozenset[bytes] = frozenset()

    async def start(self) -> None:
        await self.node.start()
        self.gossip.start()

    @property
    def address(self) -> str:
        return self.node.address

    def set_model(self, layout: dict[str, ParamLayout], cfg: DistroConfig) -> None:
        self.exchange = ResultExchange(self.gossip, self.blobs, layout, cfg)
        self.blobs.opener = self.exchange.open_state  # verifiers open this trainer's committed states

    async def refresh(self, state: CoordinatorView) -> bool:
        """Adopt the chain's epoch members (and their address hints); True when the set changed."""
        keys = frozenset(self.members.refresh(state))
        if keys == self._epoch_members:
            return False
        self._epoch_members = keys
        if keys - {self.identity.public}:
            self.node.spawn(self.gossip.join())
        return True

    def poll(self) -> None:
        """Sort gossip that is not a result announcement into `seen` (who said `finished`/`warmup`, ...)."""
        if self.exchange is not None:
            self.exchange.drain()
            msgs, self.exchange.other_messages = self.exchange.other_messages, []
        else:
            msgs = []
            while not self.gossip.inbox.empty():
                msgs.append(self.gossip.inbox.get_nowait())
        for m in msgs:
            self.seen[(m.kind, m.step)].add(m.sender)
            if len(self.said[(m.kind, m.step)]) < 64:  # bounded: a peer cannot grow it without limit
                self.said[(m.kind, m.step)].add(m.payload)

    def senders(self, kind: str, step: int) -> set[bytes]:
        """Who announced `kind` for `step`, ourselves included once we have."""
        self.poll()
        return set(self.seen.get((kind, step), set()))

    def payloads(self, kind: str, step: int) -> set[bytes]:
        """The distinct payloads peers (and we) sent with `kind` for `step`."""
        self.poll()
        return set(self.said.get((kind, step), set()))

    async def say(self, kind: str, step: int, payload: bytes = b"") -> None:
        self.seen[(kind, step)].add(self.identity.public)
        self.said[(kind, step)].add(payload)
        await self.gossip.publish(kind, payload, step=step)

    def forget(self, before_step: int) -> None:
        for key in [k for k in self.seen if k[1] < before_step]:
            del self.seen[key]
        for key in [k for k in self.said if k[1] < before_step]:
            del self.said[key]
        if self.exchange is not None:
            self.exchange.forget(before_step)
        self.blobs.store.gc(before_step, keep_steps=0)

    @property
    def bytes_received(self) -> int:
        return int(self.blobs.stats.get("bytes_fetched", 0))

    @property
    def bytes_sent(self) -> int:
        return int(self.blobs.stats.get("bytes_served", 0))

    async def close(self) -> None:
        await self.node.close()
