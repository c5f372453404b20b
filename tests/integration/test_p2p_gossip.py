"""Gossip over real iroh endpoints: reach, dedupe, every drop reason, neighbour repair, membership."""
from __future__ import annotations

import asyncio

from p2p_helpers import RUN, cluster, make_peer, raw_send, wait_for

from client.p2p.allowlist import EpochMembers, StaticMembers
from client.p2p.envelope import seal
from client.p2p.identity import P2PIdentity
from client.p2p.node import NotMember


def test_four_nodes_each_message_reaches_all_within_a_bound() -> None:
    async def main() -> None:
        async with cluster(4, fanout=2) as (peers, _):
            assert all(p.node.endpoint.id().to_bytes() == p.key for p in peers)  # iroh id = signing key
            sent = [await p.gossip.publish("hello", p.key) for p in peers]
            for p in peers:
                await wait_for(lambda p=p: p.gossip.delivered == 3, 15.0, "every message at every node")
            await asyncio.sleep(0.8)  # re-broadcasts and echoes arrive, none is delivered twice
            for p in peers:
                got = []
                while not p.gossip.inbox.empty():
                    got.append(p.gossip.inbox.get_nowait())
                assert sorted(m.payload for m in got) == sorted(q.key for q in peers if q is not p)
                assert {m.id for m in got} <= {m.id for m in sent}
                assert p.gossip.dropped["duplicate"] > 0  # echoes are recognised, not re-delivered
                assert len(p.gossip.neighbours) <= 4  # fanout 2, plus peers that chose us (symmetric)
    asyncio.run(main())


def test_forged_replayed_oversized_wrong_run_wrong_step_and_non_member_messages_are_dropped() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0, seen_capacity=2) as (peers, _):
            a, b = peers
            g = b.gossip
            original = await a.gossip.publish("result", b"first")
            await wait_for(lambda: g.delivered == 1, 5.0, "the first message")

            outer_forged = bytearray(seal(a.identity, RUN, 0, "result", b"x").wire)
            outer_forged[-1] ^= 1  # flip a signature bit
            outsider = P2PIdentity.generate()
            cases = [
                (bytes(outer_forged), "forged"),
                (original.wire, "duplicate"),
                (seal(a.identity, "other-run", 0, "result", b"x").wire, "wrong_run"),
                (seal(a.identity, RUN, 50, "result", b"x").wire, "wrong_step"),
                (seal(outsider, RUN, 0, "result", b"x").wire, "not_member"),
                (b"\x00" * (g.max_message + 1), "oversized"),
            ]
            for wire, reason in cases:
                before = g.dropped[reason]
                await raw_send(a, b, wire)
                await wait_for(lambda r=reason, n=before: g.dropped[r] == n + 1, 5.0, f"a {reason} drop")
            # push the original out of the bounded dedupe cache, then replay its exact bytes
            for i in range(3):
                await a.gossip.publish("result", bytes([i]))
            await wait_for(lambda: g.delivered == 4, 5.0, "three fresh messages")
            await raw_send(a, b, original.wire)
            await wait_for(lambda: g.dropped["replay"] == 1, 5.0, "a replay drop")
            assert g.delivered == 4
    asyncio.run(main())


def test_neighbour_repair_after_a_peer_leaves() -> None:
    async def main() -> None:
        async with cluster(5, fanout=2, rebroadcast_s=0, seed=1) as (peers, members):
            src = peers[0]
            await src.gossip.publish("warm", b"0")
            for p in peers[1:]:  # the warm-up reached everyone before a peer dies (rebroadcast is off here:
                # a message the victim was still forwarding would otherwise be lost for good)
                await wait_for(lambda p=p: p.gossip.delivered == 1, 20.0, "the warm-up message")
            gone = src.gossip.neighbours[0]
            victim = next(p for p in peers if p.key == gone)
            await victim.node.close()
            members.update(members.members())  # still listed on chain until the next epoch
            await src.gossip.publish("after", b"1")
            alive = [p for p in peers[1:] if p is not victim]
            for p in alive:
                await wait_for(lambda p=p: p.gossip.delivered == 2, 20.0, "delivery after a neighbour died")
            assert gone not in src.gossip.neighbours and 2 <= len(src.gossip.neighbours) <= 4
    asyncio.run(main())


def test_non_member_cannot_connect_or_be_dialled() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, members):
            a, b = peers
            stranger = await make_peer(StaticMembers({a.key, b.key}), rebroadcast_s=0)
            try:
                stranger.node.add_peer(a.key, a.node.address)
                await stranger.gossip.publish("hi", b"let me in")
                await wait_for(lambda: a.node.refused["not_member"] >= 1, 5.0, "the stranger refused")
                await asyncio.sleep(0.2)
                assert a.gossip.delivered == 0
                try:
                    await a.node.connect(stranger.key, b"psyche/gossip/1")
                    raise AssertionError("dialled a non-member")
                except NotMember:
                    pass
            finally:
                await stranger.node.close()
    asyncio.run(main())


def test_a_peer_dropped_from_the_epoch_is_cut_off() -> None:
    async def main() -> None:
        async with cluster(3, rebroadcast_s=0) as (peers, members):
            a, b, c = peers
            await c.gossip.publish("hi", b"1")
            await wait_for(lambda: a.gossip.delivered == 1 and b.gossip.delivered == 1, 5.0, "first delivery")
            members.update(members.members() - {c.key})  # next epoch: c is gone
            await c.gossip.publish("hi", b"2")
            await asyncio.sleep(0.5)
            assert a.gossip.delivered == 1 and b.gossip.delivered == 1
            assert a.node.refused["no_longer_member"] + b.node.refused["no_longer_member"] >= 1
    asyncio.run(main())


def test_membership_from_a_real_coordinator_account() -> None:
    from solders.keypair import Keypair

    from coordinator_sdk.model import Config
    from devtools.differential import DiffRun

    cfg = Config(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2, epoch_time=30,
                 total_steps=20, init_min_clients=2, min_clients=2, witness_nodes=0, global_batch_size_start=8,
                 global_batch_size_end=8, waiting_for_members_extra_time=1, max_seq_len=512)
    d = DiffRun(cfg)
    users = [d.h.fund(Keypair()) for _ in range(2)]
    members = EpochMembers()
    d.set_paused(False)
    for u in users:
        d.join(u)
    assert members.refresh(d.chain_state()) == set()  # no epoch yet: nobody may connect
    d.h.advance(2)
    d.client("tick", users[0])
    keys = members.refresh(d.chain_state())
    assert keys == {bytes(u.pubkey()) for u in users}
    assert all(members.hints[k] == ["127.0.0.1:4000"] for k in keys)
    assert members.allows(bytes(users[0].pubkey())) and not members.allows(bytes(32))
