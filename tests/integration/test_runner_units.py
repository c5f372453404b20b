"""Unit tests of the runner's small parts: the change notifier, when a witness posts, who ticks and when,
the participant bits and who they name, and the liveness probe that refuses a second process on a running wallet."""
from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest
import torch

from client.p2p.allowlist import StaticMembers
from client.p2p.gossip import GOSSIP_ALPN
from client.p2p.identity import P2PIdentity
from client.p2p.node import P2PNode
from client.runner.join_guard import Holder, JoinGuard
from client.runner.liveness import p2p_key_alive, rejected_as_non_member
from client.runner.phase_witness import chain_deadline, gather, post_lead_s
from client.runner.ticking import IN_FLIGHT_GRACE_S, TickPolicy
from client.runner.training_state import RoundBook
from client.runner.watch import Watch
from client.runner.witnessing import WitnessReport, consensus_results, round_signers, vouched_trainers
from client.training.compress import SparseCoeffs
from client.training.distro import DistroResult
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.bloom import Bloom
from coordinator_sdk.model.state import ClientState, RunState
from coordinator_sdk.participation import participant_indices, participants_bitmap


def test_watch_wakes_waiters_on_publish_and_poke_and_honours_deadlines() -> None:
    async def body() -> None:
        w = Watch()
        flag = {"v": False}
        waiter = asyncio.create_task(w.until(lambda: flag["v"]))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        flag["v"] = True
        w.poke()
        assert await asyncio.wait_for(waiter, 1.0) is True
        t0 = time.monotonic()
        assert await w.until(lambda: False, time.time() + 0.2) is False
        assert 0.15 < time.monotonic() - t0 < 1.0
        w.publish("state")
        assert w.state == "state"
    asyncio.run(body())


@pytest.mark.parametrize(("round_time", "lead"), [(2, 1.0), (8, 2.0), (11, 2.75), (60, 3.0)])
def test_witness_posts_before_the_round_deadline(round_time: int, lead: float) -> None:
    assert post_lead_s(round_time) == lead
    st = SimpleNamespace(config=SimpleNamespace(max_round_train_time=round_time), run_state_start_unix_timestamp=100)
    assert chain_deadline(st) == 100 + round_time - lead


def test_participant_bits_need_this_rounds_finished_and_the_previous_delivery() -> None:
    a, b, c, d = (os.urandom(32) for _ in range(4))
    trainers = [(b"k" + x[:31], x) for x in (a, b, c, d)]  # (p2p key, signer) in the round's order
    finished = {trainers[i][0] for i in (0, 2, 3)}
    r = WitnessReport()
    r.add(a, b"\x01" * 32)
    r.add(b, b"\x02" * 32)
    # b delivered S-1 but never finished S (it died); c finished S but did not deliver S-1; d is new
    assert participant_indices(r.participants(trainers, finished, {a, b, c})) == [0, 3]
    assert participant_indices(r.participants(trainers, finished, None)) == [0, 2, 3]  # the epoch's first round


def _epoch_client(signer: bytes, registry: int, exited: int = 0) -> SimpleNamespace:
    return SimpleNamespace(signer=signer, registry_index=registry, exited_height=exited)


def test_round_signers_rebuild_a_past_rounds_order_after_compaction() -> None:
    """Registry order 0..4: client r1 withdrew in Warmup (height 0), r3 was dropped at round 0's end, r4 at
    round 1's end. Round 0 had [r0 r2 r3 r4], round 1 [r0 r2 r4], round 2 [r0 r2]."""
    k = [bytes([i]) * 32 for i in range(5)]
    st = SimpleNamespace(num_epoch_clients=2, epoch_clients=[_epoch_client(k[0], 0), _epoch_client(k[2], 2)],
                         num_exited_clients=3, exited_clients=[_epoch_client(k[1], 1, 0), _epoch_client(k[3], 3, 0),
                                                               _epoch_client(k[4], 4, 1)])
    rounds = [SimpleNamespace(height=h, clients_len=n) for h, n in ((0, 4), (1, 3), (2, 2))]
    assert [round_signers(st, r) for r in rounds] == [[k[0], k[2], k[3], k[4]], [k[0], k[2], k[4]], [k[0], k[2]]]


def test_consensus_needs_the_witness_to_list_the_trainer_not_only_its_bloom() -> None:
    """A commitment every broadcast bloom holds counts only from witnesses whose exact participant bits list
    its trainer: a saturated bloom cannot vouch for a result its witness never received."""
    s0, s1 = b"S" * 32, b"T" * 32
    c0, c1 = b"\x10" * 32, b"\x11" * 32
    bloom = Bloom([1, 2, 3, 4, 5, 6, 7, 8])
    bloom.add(c0)
    bloom.add(c1)
    witnesses = [SimpleNamespace(participants=participants_bitmap(bits), broadcast_bloom=bloom.to_bytes())
                 for bits in ([0], [0], [0, 1])]
    rnd = SimpleNamespace(num_witnesses=3, witnesses=witnesses)
    trainers = [(b"p0", s0), (b"p1", s1)]
    chosen = consensus_results({b"p0": c0, b"p1": c1}, trainers, rnd, [s0, s1], 0)
    assert chosen == {b"p0": c0}  # p1: 1 witness of 3 listed it, under the quorum of 2
    # which trainers the witnesses vouch for does not depend on what this client heard: p0 is vouched for
    # even when its announcement never reached us (apply must then ask for it or report DESYNC)
    assert vouched_trainers(trainers, rnd, [s0, s1], 0) == [b"p0"]
    assert consensus_results({b"p1": c1}, trainers, rnd, [s0, s1], 0) == {}
    assert vouched_trainers(trainers, SimpleNamespace(num_witnesses=0, witnesses=[]), [s0, s1], 0) == []


class _P2P:
    def __init__(self, said: dict) -> None:
        self.said = said

    def senders(self, kind: str, step: int) -> set[bytes]:
        return set(self.said.get((kind, step), set()))

    def payloads(self, kind: str, step: int) -> set[bytes]:
        return set()


def _round_witness_state(me: bytes, other: bytes, posted: bool) -> SimpleNamespace:
    clients = [SimpleNamespace(signer=s, p2p=s, state=0) for s in (me, other)]
    witnesses = [SimpleNamespace(client_index=i) for i in ((0, 1) if posted else (0,))]
    rnd = SimpleNamespace(clients_len=2, random_seed=5, num_witnesses=len(witnesses), witnesses=witnesses)
    return SimpleNamespace(run_state=RunState.RoundWitness, step=4, num_epoch_clients=2, epoch_clients=clients,
                           config=SimpleNamespace(round_witness_time=1, witness_nodes=0, warmup_time=5,
                                                  max_round_train_time=5, cooldown_time=2),
                           run_state_start_unix_timestamp=1000, rounds=[rnd], rounds_head=0)


@pytest.mark.parametrize("posted", [False, True])
def test_ticker_holds_round_witness_open_while_a_witness_it_heard_of_is_in_flight(posted: bool) -> None:
    me, other = b"\x01" * 32, b"\x02" * 32
    st = _round_witness_state(me, other, posted)
    ctx = SimpleNamespace(me=me, in_flight=set(), p2p=_P2P({("witnessing", 4): {other}}))
    policy = TickPolicy(ctx)  # type: ignore[arg-type]
    due = 1001.0 + 1.0  # due at 1001; a ticker of rank 0 or 1 waits 0 or 0.8 s more
    assert policy.should_tick(st, due) is posted
    assert policy.should_tick(st, 1001.8 + IN_FLIGHT_GRACE_S + 0.1) is True  # never held for ever
    quiet = SimpleNamespace(me=me, in_flight=set(), p2p=_P2P({}))
    assert TickPolicy(quiet).should_tick(st, due) is True  # type: ignore[arg-type]
    own = SimpleNamespace(me=me, in_flight={("witness", 4)}, p2p=_P2P({}))
    assert TickPolicy(own).should_tick(st, due) is False  # type: ignore[arg-type]  # our own witness in flight


def test_liveness_probe_finds_a_live_key_and_not_a_dead_one() -> None:
    async def body() -> None:
        ident = P2PIdentity.generate()
        node = P2PNode(ident, StaticMembers(set()), bind_addr="127.0.0.1:0")
        node.register(GOSSIP_ALPN, lambda conn, remote: asyncio.sleep(0))  # what the probe dials
        await node.start()
        try:
            assert await p2p_key_alive(ident.public, [node.address], "127.0.0.1:0", timeout=5)
            other = P2PIdentity.generate()  # nobody holds this key at that address
            assert not await p2p_key_alive(other.public, [node.address], "127.0.0.1:0", timeout=2)
        finally:
            await node.close()
        assert not await p2p_key_alive(ident.public, [node.address], "127.0.0.1:0", timeout=2)  # gone now
        assert not await p2p_key_alive(ident.public, [], "127.0.0.1:0")
    asyncio.run(body())


def test_a_cancelled_waiter_ends_even_when_a_change_arrives_at_the_same_moment() -> None:
    async def body() -> None:
        w = Watch()
        for _ in range(50):
            waiter = asyncio.create_task(w.until(lambda: False, time.time() + 60))
            await asyncio.sleep(0)
            w.poke()  # the event fires ...
            waiter.cancel()  # ... and the cancellation arrives in the same loop iteration
            done, _ = await asyncio.wait({waiter}, timeout=1.0)
            assert done and waiter.cancelled(), "a waiter survived its cancellation"
    asyncio.run(body())


def test_a_client_exits_even_if_a_task_ignores_its_cancellation() -> None:
    from client.commands.run_client import run_bounded

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue  # a misbehaving library task

    async def main() -> int:
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0.05)
        return 7

    t0 = time.monotonic()
    assert run_bounded(main(), cleanup_s=0.5) == 7
    assert time.monotonic() - t0 < 30  # liveness: without the bound it never returns


def test_liveness_probe_of_a_dead_key_whose_hex_holds_403_says_dead() -> None:
    """A crashed client whose key's hex prefix contains "403" (the close code of a live holder refusing a
    non-member) must read as dead: its restart was refused with exit 10 once."""
    assert rejected_as_non_member("connection lost: closed by peer: 403 (not a member of the current epoch)")
    assert not rejected_as_non_member("timed out")
    assert not rejected_as_non_member("handshake with 609a331403ff failed")

    async def body() -> None:
        node = P2PNode(P2PIdentity.generate(), StaticMembers(set()), bind_addr="127.0.0.1:0")
        await node.start()
        address = node.address
        await node.close()  # the port is dead now
        dead = next(i for i in iter(P2PIdentity.generate, None) if "403" in i.public.hex()[:10])
        assert not await p2p_key_alive(dead.public, [address], "127.0.0.1:0", timeout=2)
    asyncio.run(body())


def _state(nonce: int, signer: bytes, hint: str) -> SimpleNamespace:
    entry = SimpleNamespace(signer=signer, active=1, p2p=b"k" * 32, addr_hint=hint.encode().ljust(64, b"\0"))
    return SimpleNamespace(nonce=nonce, num_clients=1, clients=[entry])


def test_join_guard_ignores_states_read_before_our_join_landed() -> None:
    """The CI failure: the stream had buffered a state newer than the one the join was decided on (nonce 11 > 10)
    but older than the join itself; it showed the crashed predecessor's hint and the restart exited 10."""
    me = b"w" * 32
    guard = JoinGuard(me)
    assert guard.holder(_state(10, me, "127.0.0.1:1111"))[0] is Holder.US  # not joined yet: nothing to conclude
    guard.joined("127.0.0.1:2222", nonce_after_landing=13)  # a read after the join confirmed saw nonce 13
    assert guard.holder(_state(11, me, "127.0.0.1:1111"))[0] is Holder.US  # buffered: predates our join
    assert guard.holder(_state(12, me, "127.0.0.1:1111"))[0] is Holder.US
    assert guard.holder(_state(13, me, "127.0.0.1:2222"))[0] is Holder.US
    holder, addrs = guard.holder(_state(14, me, "127.0.0.1:3333"))  # someone joined after us
    assert holder is Holder.OTHER and addrs == ["127.0.0.1:3333"]


def test_join_guard_without_a_post_join_read_trusts_only_states_after_our_own_hint() -> None:
    me = b"w" * 32
    guard = JoinGuard(me)
    guard.joined("127.0.0.1:2222", nonce_after_landing=None)
    assert guard.holder(_state(50, me, "127.0.0.1:1111"))[0] is Holder.US  # could still predate our join
    assert guard.holder(_state(51, me, "127.0.0.1:2222"))[0] is Holder.US
    assert guard.holder(_state(52, me, "127.0.0.1:1111"))[0] is Holder.OTHER  # after ours: a second process


class _Chain(CoordinatorView):
    """A chain state in RoundTrain at `step` whose epoch clients are `signers`, all healthy."""
    __slots__ = ()

    def __init__(self, step: int, signers: list[bytes]) -> None:
        object.__setattr__(self, "raw", SimpleNamespace(step=step, run_state=int(RunState.RoundTrain), signers=signers))

    def epoch_signers(self) -> list[bytes]:
        return list(self.raw.signers)

    def epoch_states(self) -> list[int]:
        return [int(ClientState.Healthy)] * len(self.raw.signers)


def _result(seed: int) -> DistroResult:
    g = torch.Generator().manual_seed(seed)
    idx = torch.rand(16, 64, generator=g).argsort(-1)[:, :4].sort(-1)[0]
    return DistroResult(1, {"w": SparseCoeffs(idx, torch.where(torch.rand(16, 4, generator=g) < 0.5, -1.0, 1.0))}, True)


def _gather_with(delays: dict[str, float], deadline_s: float) -> tuple[dict, list[dict], dict, dict]:
    """phase_witness.gather over announced results of senders named in `delays` (in announcement order; a
    "dead" one raises after its delay, a "copier" serves the honest result): (book results, rejected events,
    download spans, keys)."""
    keys = {name: bytes([i + 1]) * 32 for i, name in enumerate(delays)}
    honest = _result(1)
    spans: dict[str, tuple[float, float]] = {}

    class Exchange:
        rejected: dict[bytes, str] = {}

        def announced(self, step: int) -> dict[bytes, bytes]:
            return {k: bytes([k[0]]) * 32 for k in keys.values()}

        async def fetch_result(self, step: int, sender: bytes, h: bytes) -> DistroResult:
            name = next(n for n, k in keys.items() if k == sender)
            t0 = time.monotonic()
            try:
                await asyncio.sleep(delays[name])
                if name.startswith("dead"):
                    raise TimeoutError(f"peer {name}: no answer")
                return honest
            finally:
                spans[name] = (t0, time.monotonic())

    async def body() -> tuple[dict, list[dict]]:
        events: list[dict] = []
        ctx = SimpleNamespace(p2p=SimpleNamespace(exchange=Exchange(), identity=SimpleNamespace(public=b"\x00" * 32)),
                              state=_Chain(2, list(keys.values())), watch=Watch(),
                              report=SimpleNamespace(event=lambda kind, **kw: events.append({"kind": kind, **kw})))
        book = RoundBook()
        book.trainers_of[1] = [(k, k) for k in keys.values()]
        report = await gather(ctx, book, 1, 2, time.time() + deadline_s)
        assert report.delivered == list(book.results[1])
        return book.results[1], events
    got, events = asyncio.run(body())
    rejected = {e["peer"]: e["reason"] for e in events if e["kind"] == "rejected"}
    return got, rejected, spans, keys


def test_gather_downloads_at_once_and_judges_in_announcement_order() -> None:
    """Two senders that died after announcing (each download runs into a timeout), an honest result, and a copy of
    it announced later but downloaded first: the downloads overlap (one after another, dead announcers cost a
    timeout each, and a witness once posted too late and was penalised as idle), the honest result is kept and
    the later-announced copy is the one rejected."""
    got, rejected, spans, keys = _gather_with({"dead1": 0.6, "dead2": 0.6, "honest": 0.3, "copier": 0.05}, 30)
    assert list(got) == [keys["honest"]]
    assert set(rejected) == {keys[n].hex()[:16] for n in ("dead1", "dead2", "copier")}
    assert rejected[keys["copier"].hex()[:16]].startswith("copy:"), rejected
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())  # every download overlapped


def test_gather_waits_for_downloads_under_way_at_the_deadline() -> None:
    """A dead announcer first in line, its download still running at the deadline, an honest result behind it:
    both downloads are waited for (each bounds itself), so the honest result counts (dropped at the deadline,
    a slow honest result was left out of a witness's bits: a loaded run of test_kill_9_mid_round_then_rejoin)."""
    got, rejected, spans, keys = _gather_with({"dead": 1.5, "honest": 0.05}, 0.5)
    assert list(got) == [keys["honest"]] and set(rejected) == {keys["dead"].hex()[:16]}
    assert spans["honest"][0] < spans["dead"][1]  # downloaded while the dead one hung


def test_a_verdict_read_before_a_compaction_lands_on_its_trainer_or_nowhere() -> None:
    """The verifier's view of the epoch list can predate the compaction at a round's end: the index it read for
    its trainer then holds another client. The program refuses the verdict (WrongTrainer: it names the trainer
    by key too) and the verifier looks the index up again in a fresh state: the fail lands on the trainer it
    judged, and the client that moved into the stale index is untouched (before the key, an honest trainer took
    the fail meant for a cheater, and its vindication slashed the honest verifier)."""
    import copy

    from solders.keypair import Keypair

    from client.runner.phase_verify import Verifier
    from client.runner.run_model import model_description_fields
    from coordinator_sdk.model import Config
    from coordinator_sdk.model.state import EpochClient, RegisteredClient, Round, State
    from coordinator_sdk.verdicts import eligible
    from devtools.inproc import DISTRO, LR, MODEL
    from devtools.sim_chain import SimBackend, SimChain

    wallets = [Keypair() for _ in range(6)]
    s = State(run_state=RunState.RoundTrain, slashing_rate=7)
    s.clients = [RegisteredClient(bytes(w.pubkey()), bytes([2, i]) * 16) for i, w in enumerate(wallets)]
    s.epoch_state.clients = [EpochClient(c.signer, c.p2p, registry_index=i) for i, c in enumerate(s.clients)]
    s.epoch_state.rounds = [Round([], 0, 99 + h, h, 6) for h in range(3)] + [Round()]
    s.epoch_state.rounds_head = 2
    chain = SimChain("units", Config(), "x", model_description_fields(MODEL, LR, DISTRO, "local:/nowhere"))
    es = s.epoch_state
    seed, n = es.rounds[2].random_seed, es.rounds[1].clients_len
    v, t = next((v, t) for t in range(6) for v in range(6)
                if v != t and eligible(seed, es.clients[v].p2p, es.clients[t].p2p, n, s.config.verifiers_per_mille))
    other = next(i for i in range(6) if i not in (v, t))
    stale = copy.deepcopy(s)  # the verifier's view: the trainer sits where `other` sits now
    sc = stale.epoch_state.clients
    sc[t], sc[other] = sc[other], sc[t]
    chain.machine.state = s
    chain._state = chain.account.decode(s)
    events: list[tuple[str, dict]] = []
    ctx = SimpleNamespace(state=CoordinatorView(chain.account.decode(stale)), backend=SimBackend(chain, wallets[v]),
                          report=SimpleNamespace(event=lambda kind, **kw: events.append((kind, kw))))
    before_other = (list(es.clients[other].fails), list(es.clients[other].passes))
    asyncio.run(Verifier().post(ctx, es.clients[t].p2p, 2, 1, "fail", b"r" * 32, b"e" * 32))
    assert [k for k, _ in events] == ["error", "verdict_posted"], events
    assert events[0][1]["reason"].startswith("WrongTrainer"), events
    assert chain.machine.state.epoch_state.clients[t].fails[1] == 1
    assert (list(es.clients[other].fails), list(es.clients[other].passes)) == before_other
