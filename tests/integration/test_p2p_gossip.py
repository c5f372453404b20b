"""Gossip over real iroh endpoints: reach, dedupe, every drop reason, neighbour repair, membership."""
from __future__ import annotations

import asyncio

from p2p_helpers import RUN, cluster, introduce, make_peer, raw_send, raw_stream, wait_for

import client.p2p.envelope as envelope
from client.p2p.allowlist import EpochMembers, StaticMembers
from client.p2p.envelope import seal
from client.p2p.gossip_wire import HEADER, frame
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
                # the overlay rule: a node keeps its own `fanout` picks and adopts EVERY member that picked it
                # (no cap), so each node is some other node's neighbour and nobody is left unheard
                assert 2 <= len(p.gossip.neighbours) <= 3
                assert any(p.key in q.gossip.neighbours for q in peers if q is not p)
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


def _forge(wire: bytes) -> bytes:
    bad = bytearray(wire)
    bad[-1] ^= 1  # flip a signature bit: same body (so the same id), signature no longer valid
    return bytes(bad)


def test_a_duplicate_is_recognised_before_its_signature_is_checked_and_a_forgery_cannot_poison_the_seen_set(
        monkeypatch) -> None:
    checks = []
    real = envelope.verify_signature

    def counting(*a):
        checks.append(1)
        return real(*a)

    monkeypatch.setattr(envelope, "verify_signature", counting)

    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            a, b = peers
            g = b.gossip
            # a forgery of a message nobody has seen yet: checked, dropped as forged and NOT recorded as seen
            genuine = seal(a.identity, RUN, 0, "result", b"genuine")
            before = len(checks)
            await raw_send(a, b, _forge(genuine.wire))
            await wait_for(lambda: g.dropped["forged"] == 1, 5.0, "the forgery dropped")
            assert len(checks) == before + 1 and g.delivered == 0
            # ... so the genuine message with that id is still delivered
            await raw_send(a, b, genuine.wire)
            await wait_for(lambda: g.delivered == 1, 5.0, "the genuine message after its forgery")
            # copies of a verified id, exact or forged, are duplicates without any signature check
            before = len(checks)
            for i, wire in enumerate([genuine.wire, _forge(genuine.wire), genuine.wire]):
                await raw_send(a, b, wire)
                await wait_for(lambda i=i: g.dropped["duplicate"] == i + 1, 5.0, "a duplicate")
            assert len(checks) == before and g.delivered == 1 and g.dropped["forged"] == 1
            # only the byte-identical copies count as "a holds it" (a forged copy proves nothing)
            assert a.key in g._recent[genuine.id].heard_from
    asyncio.run(main())


def test_own_messages_are_re_sent_a_few_times_with_backoff_not_forever() -> None:
    async def main() -> None:
        async with cluster(4, fanout=2, rebroadcast_s=0.05, max_resends=3) as (peers, _):
            await asyncio.sleep(0.3)  # neighbours settled
            src = peers[0]
            base = {id(p): p.gossip.sent for p in peers}
            await src.gossip.publish("hello", b"x")
            for p in peers[1:]:
                await wait_for(lambda p=p: p.gossip.delivered == 1, 10.0, "delivery")
            await asyncio.sleep(0.05 * (1 + 4 + 16) + 1.0)  # every backoff elapsed (x4 each time)
            sent = {id(p): p.gossip.sent - base[id(p)] for p in peers}
            degree = len(src.gossip.neighbours)
            # the original plus at most 3 re-sends to each neighbour (none to a neighbour that sent it back)
            assert degree <= sent[id(src)] <= 4 * degree, (sent, degree)
            # forwarders send each message once per neighbour that lacks it, never again
            assert all(sent[id(p)] <= len(p.gossip.neighbours) for p in peers[1:]), sent
            total = sum(sent.values())
            await asyncio.sleep(1.0)
            assert sum(p.gossip.sent - base[id(p)] for p in peers) == total  # quiet once spread
    asyncio.run(main())


def test_a_late_joiner_gets_the_recent_messages_of_every_sender_and_is_heard() -> None:
    async def main() -> None:
        async with cluster(5, fanout=2, rebroadcast_s=0.1, max_resends=0) as (peers, members):
            for p in peers:
                await p.gossip.publish("early", p.key)
            for p in peers:
                await wait_for(lambda p=p: p.gossip.delivered == 4, 10.0, "the early messages")
            late = await make_peer(members, fanout=2, rebroadcast_s=0.1, max_resends=0)
            try:
                members.update(members.members() | {late.key})
                introduce([*peers, late])
                await late.gossip.join()
                # no re-sends at all here: the backlog of the step window is pushed to a new neighbour once
                await wait_for(lambda: late.gossip.delivered == 5, 10.0, "every early message at the latecomer")
                assert any(late.key in p.gossip.neighbours for p in peers)  # adopted, though everyone had picked
                await late.gossip.publish("late", b"hi")
                for p in peers:
                    await wait_for(lambda p=p: p.gossip.delivered == 5, 10.0, "the latecomer's message")
            finally:
                await late.node.close()
    asyncio.run(main())


async def _quiet(peers, hold_s: float = 1.0, limit_s: float = 20.0) -> None:
    """Wait until every copy sent has been received (delivered or recognised as a duplicate) and nothing
    changed for `hold_s`: forwards wait a random delay, so "delivered everywhere" is not "done"."""
    def state() -> tuple[int, int]:
        return (sum(p.gossip.sent for p in peers),
                sum(p.gossip.delivered + p.gossip.dropped["duplicate"] for p in peers))
    loop = asyncio.get_running_loop()
    end, last, since = loop.time() + limit_s, None, loop.time()
    while loop.time() < end:
        now = state()
        if now != last:
            last, since = now, loop.time()
        elif now[0] == now[1] and loop.time() - since >= hold_s:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gossip never went quiet: sent/received {last}")


def test_ask_fetches_a_missed_message_from_a_peer_and_checks_it() -> None:
    async def main() -> None:
        async with cluster(3, rebroadcast_s=0) as (peers, _):
            a, b, c = peers
            msg = await a.gossip.publish("result", b"h" * 32, step=0)
            await wait_for(lambda: b.gossip.delivered == 1 and c.gossip.delivered == 1, 5.0, "delivery")
            await _quiet(peers)  # a forward still in flight would re-deliver it to c after c "forgets" it
            late = c.gossip
            late._seen.clear()  # c "missed" it (e.g. cut off): forget it and empty its inbox
            late._nonces.clear()
            late.inbox.get_nowait()
            # generous timeouts: the ask dials a new protocol, which takes seconds on a loaded 2-core machine
            assert await late.ask(b.key, "result", 0, a.key, timeout=20) == 1  # b holds a's message, hands it over
            got = late.inbox.get_nowait()
            assert got.id == msg.id and got.sender == a.key
            assert await late.ask(b.key, "result", 0, a.key, timeout=20) == 0  # now a duplicate
            assert await late.ask(b.key, "result", 1, a.key, timeout=20) == 0  # nothing held for that step
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


def test_messages_to_a_neighbour_share_one_long_lived_stream() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            a, b = peers
            before = b.gossip.streams_in
            for i in range(30):
                await a.gossip.publish("hello", bytes([i]))
            await wait_for(lambda: b.gossip.delivered == 30, 10.0, "thirty messages")
            assert b.gossip.streams_in - before <= 1  # not one stream per message
    asyncio.run(main())


def test_bad_frames_on_a_stream_are_dropped_one_by_one_and_the_stream_carries_the_honest_ones_after_them() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            a, b = peers
            g = b.gossip
            honest = [seal(a.identity, RUN, 0, "result", bytes([i])) for i in range(3)]
            bad = [(_forge(seal(a.identity, RUN, 0, "result", b"f").wire), "forged"),
                   (b"\xc1not msgpack", "malformed"),
                   (seal(a.identity, "other-run", 0, "result", b"x").wire, "wrong_run"),
                   (seal(P2PIdentity.generate(), RUN, 0, "result", b"x").wire, "not_member")]
            chunks = [frame(honest[0].wire)] + [frame(w) for w, _ in bad] + [frame(m.wire) for m in honest[1:]]
            # one stream, the frames cut at odd places and written with pauses between the pieces
            data = b"".join(chunks)
            pieces = [data[i:i + 37] for i in range(0, len(data), 37)]
            await raw_stream(a, b, *pieces, pause_s=0.002)
            await wait_for(lambda: g.delivered == 3, 5.0, "the honest messages around the bad ones")
            assert {m.payload for m in [g.inbox.get_nowait() for _ in range(3)]} == {b"\x00", b"\x01", b"\x02"}
            for _, reason in bad:
                assert g.dropped[reason] == 1, (reason, g.dropped)
    asyncio.run(main())


def test_an_oversized_frame_stops_only_its_stream_and_a_truncated_one_is_counted() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            a, b = peers
            g = b.gossip
            first, after = (seal(a.identity, RUN, 0, "result", p) for p in (b"first", b"after"))
            huge = HEADER.pack(g.max_message + 1) + b"\x00" * 1000  # the header alone condemns it
            await raw_stream(a, b, frame(first.wire) + huge + frame(after.wire))
            await wait_for(lambda: g.dropped["oversized"] == 1, 5.0, "the oversized frame refused")
            await asyncio.sleep(0.2)
            assert g.delivered == 1  # what came before it; nothing after it on that stream is trusted
            # a stream that ends inside a frame
            await raw_stream(a, b, frame(seal(a.identity, RUN, 0, "result", b"cut").wire)[:-5])
            await wait_for(lambda: g.dropped["truncated"] == 1, 5.0, "the truncated frame counted")
            # the sender's own long-lived link is another stream: honest gossip still flows
            await a.gossip.publish("result", b"later")
            await wait_for(lambda: g.delivered == 2, 5.0, "gossip after the bad streams")
    asyncio.run(main())
