"""The runner against an in-process chain (the reference model behind the Backend interface): several real
clients (own wallet, own iroh node, own torch trainer) in this process, faults injected from the test.

Each test asserts what a fault may cost: nothing of the survivors' work (every honest result applied,
weights bit-identical), no points of honest clients, and at most one slow round."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from run_client_helpers import prepare_data

from client.cli_common import ExitCode
from client.runner.round_work import RoundWork
from coordinator_sdk.model import Config
from devtools.inproc import InProcessRun, SimClient

pytestmark = pytest.mark.slow


def config(**kw: int) -> Config:
    base = dict(warmup_time=10, cooldown_time=2, max_round_train_time=8, round_witness_time=1, epoch_time=12,
                total_steps=13, max_seq_len=32, global_batch_size_start=6, global_batch_size_end=6,
                init_min_clients=3, min_clients=2, witness_nodes=0, waiting_for_members_extra_time=1)
    return Config(**{**base, **kw})


def weights(c: SimClient) -> str:
    done = c.of_kind("finished")
    assert done, (c.name, c.out.events[-10:])
    return done[-1]["weights_sha256"]


def round_times(c: SimClient) -> list[tuple[int, float]]:
    """(step, time the client finished its round) within epochs: a gap across an epoch boundary is not a round."""
    return [(e["step"] + 1000 * e["epoch"], e["t"]) for e in c.of_kind("round")]


def run(coro) -> None:
    asyncio.run(coro)


@pytest.mark.parametrize("per_mille", [3000, 0])
def test_three_clients_two_epochs_bit_identical(tmp_path: Path, per_mille: int) -> None:
    """With verifiers (the model's default 3000 per mille) every trainer keeps its committed states for them;
    without (0), no trainer pays for a state commitment: its results carry a zero `ef` and nothing is kept."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(verifiers_per_mille=per_mille))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            assert len({weights(c) for c in cs}) == 1
            pts = net.points()
            assert all(pts[bytes(c.wallet.pubkey())][1] == 0 for c in cs), pts
            assert len({pts[bytes(c.wallet.pubkey())][0] for c in cs}) == 1
            adopted = [e for c in cs for e in c.of_kind("checkpoint") if e["adopted"]]
            assert adopted, "no checkpoint was adopted"
            for c in cs:
                kept = c.client.work.ctx.p2p.exchange._states
                assert (len(kept) > 0) == (per_mille > 0), (c.name, len(kept))
            if per_mille == 0:
                assert not any(e["kind"] == "verify" for c in cs for e in c.out.events)
        finally:
            await net.close()
    run(body())


def _median_gap(times: list[tuple[int, float]]) -> float:
    gaps = sorted(b[1] - a[1] for a, b in zip(times, times[1:], strict=False) if b[0] == a[0] + 1)
    return gaps[len(gaps) // 2] if gaps else 0.0


def test_kill_costs_one_slow_round_and_the_same_wallet_rejoins_at_full_speed(tmp_path: Path) -> None:
    """A client dies mid-epoch (no withdraw, its node gone): the round completes with the others' results,
    the dead one is dropped, survivors lose no points and stay bit-identical; restarted on the same wallet it
    rejoins the next epoch and rounds after its return are as fast as before the crash."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=30, epoch_time=12))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            victim = cs[2]
            await net.until(lambda: len(victim.of_kind("round")) >= 4, 60, "the victim's fourth round")
            killed_at = int(net.chain.state.step) + 1000 * int(net.chain.state.epoch)
            await net.kill(victim)
            await asyncio.sleep(2)
            again = net.client("c2-again", victim.wallet)
            codes = await net.wait([*cs[:2], again], 180)
            assert codes == [0, 0, 0], [c.out.events[-6:] for c in [*cs[:2], again]]
            assert len({weights(c) for c in [*cs[:2], again]}) == 1
            pts = net.points()
            for c in cs[:2]:
                assert pts[bytes(c.wallet.pubkey())][1] == 0, ("a survivor was penalised", pts)
            survivor = round_times(cs[0])
            before = _median_gap([t for t in survivor if t[0] < killed_at])
            slow = [(a[0], round(b[1] - a[1], 1)) for a, b in zip(survivor, survivor[1:], strict=False)
                    if b[0] == a[0] + 1 and b[1] - a[1] > before + 2.5]
            assert len(slow) <= 1, f"more than one slow round after one kill: {slow} (normal {before:.2f} s)"
            assert again.of_kind("warmup"), again.out.events[-6:]
            back = min(e["epoch"] for e in again.of_kind("warmup"))
            after = _median_gap([(e["step"] + 1000 * e["epoch"], e["t"]) for e in cs[0].of_kind("round")
                                 if e["epoch"] > back])
            assert after <= before + 0.5, f"rounds after the return take {after:.2f} s, before {before:.2f} s"
            no_loss = [e for e in cs[0].of_kind("round") if e["step"] > killed_at % 1000 + 2 and e["height"] >= 2
                       and e["applied"] < e["expected"] - 1]
            assert not no_loss, f"honest results were not applied: {no_loss}"
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    run(body())


def test_second_process_on_a_running_wallet_refuses_and_harms_nobody(tmp_path: Path) -> None:
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=8))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            await net.until(lambda: len(cs[1].of_kind("round")) >= 2, 60, "two rounds")
            dup = net.client("dup", cs[1].wallet)
            await net.wait([dup], 30)
            assert dup.code == ExitCode.ALREADY_RUNNING, dup.out.events
            assert not dup.of_kind("join") and not dup.of_kind("round") and not dup.of_kind("checkpoint")
            assert "already running" in dup.of_kind("exit")[0]["reason"]
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            assert len({weights(c) for c in cs}) == 1
            assert all(s == 0 for _, s in net.points().values())
        finally:
            await net.close()
    run(body())


def test_ctrl_c_does_not_cost_the_others_a_round_timeout(tmp_path: Path) -> None:
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=20, max_round_train_time=10,
                                                                     epoch_time=30, warmup_time=10))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            await net.until(lambda: len(cs[2].of_kind("round")) >= 3, 60, "three rounds")
            left_at = int(net.chain.state.step)
            net.leave(cs[2])
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            times = round_times(cs[0])
            gaps = [(a[0], round(b[1] - a[1], 1)) for a, b in zip(times, times[1:], strict=False)
                    if b[0] == a[0] + 1 and a[0] >= left_at - 1]
            assert all(g < 6 for _, g in gaps), f"a round waited for the client that left: {gaps}"
            assert len({weights(c) for c in cs[:2]}) == 1
        finally:
            await net.close()
    run(body())


def test_a_waiting_client_says_why(tmp_path: Path) -> None:
    """Below init_min_clients a client would wait for ever, and a paused run waits for its owner: the client
    says which (n of m; paused) at least every 10 s."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(init_min_clients=3))
        try:
            net.start()
            lone = net.client("lone")
            await net.until(lambda: bool(lone.of_kind("waiting")), 15, "a waiting line")
            assert "1 of 3" in lone.of_kind("waiting")[0]["reason"], lone.of_kind("waiting")
            net.chain.pause()
            await net.until(lambda: any("paused" in e["reason"] for e in lone.of_kind("waiting")), 15,
                            "a waiting line that says the run is paused")
        finally:
            await net.close()
    run(body())


class DivergedWork(RoundWork):
    """A client whose weights drift from everyone else's just before it checkpoints (a bug, bad hardware)."""

    async def cooldown(self, st) -> None:  # type: ignore[no-untyped-def]
        import torch

        if self.ts.model is not None:
            with torch.no_grad():
                for p in self.ts.model.parameters():
                    p.add_(1e-3)
        await super().cooldown(st)


def test_a_diverged_client_cannot_make_its_checkpoint_the_runs(tmp_path: Path) -> None:
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=20))
        try:
            net.start()
            honest = [net.client(f"c{i}") for i in range(2)]
            bad = net.client("bad", work=DivergedWork)
            codes = await net.wait([*honest, bad], 150)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in [*honest, bad]]
            for epoch in (0, 1):
                good = {e["digest"] for c in honest for e in c.of_kind("checkpoint") if e["epoch"] == epoch}
                mine = [e for e in bad.of_kind("checkpoint") if e["epoch"] == epoch]
                assert len(good) == 1 and mine and mine[0]["digest"] not in good, (good, mine)
                assert all(e["adopted"] for c in honest for e in c.of_kind("checkpoint") if e["epoch"] == epoch)
                assert not mine[0]["adopted"]
            ref = bytes(net.chain.state.checkpoint[:net.chain.state.checkpoint_len]).decode()
            assert good <= {ref.split(":")[1][:10]}, (ref, good)
            assert len({weights(c) for c in honest}) == 1
            healed = [e for e in bad.of_kind("model") if e["source"] == "peers"]
            assert healed, "the diverged client did not reload the run's checkpoint in the next epoch"
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    run(body())


def test_weights_nobody_serves_come_from_disk_or_the_client_sits_the_epoch_out(tmp_path: Path) -> None:
    """The run names weights no peer serves: a client holding them on disk (its own last checkpoint) uses
    them; one that has them nowhere withdraws from that epoch (nobody waits for it), never exits, and joins
    the next epoch, loading the adopted checkpoint from peers."""
    async def body() -> None:
        import shutil

        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=20, init_min_clients=2,
                                                                     min_clients=1), initial_on_p2p=True)
        try:
            (tmp_path / "keeper").mkdir()
            shutil.copytree(tmp_path / "initial", tmp_path / "keeper" / "step-000000")
            net.start()
            keeper, empty = net.client("keeper"), net.client("empty")
            codes = await net.wait([keeper, empty], 150)
            assert codes == [0, 0], [c.out.events[-6:] for c in (keeper, empty)]
            assert keeper.of_kind("model")[0]["source"] == "local checkpoint", keeper.of_kind("model")
            assert empty.of_kind("model_unavailable") and empty.of_kind("withdraw"), empty.out.events[:20]
            assert [e["source"] for e in empty.of_kind("model")] == ["peers"], empty.of_kind("model")
            assert min(e["epoch"] for e in empty.of_kind("warmup")) >= 1
            assert weights(keeper) == weights(empty)
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    run(body())


def test_an_rpc_outage_mid_round_loses_no_work_and_no_points(tmp_path: Path) -> None:
    async def body() -> None:
        import time

        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=12))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            await net.until(lambda: len(cs[0].of_kind("round")) >= 3, 60, "three rounds")
            net.chain.down_until = time.time() + 2.5
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-6:] for c in cs]
            assert len({weights(c) for c in cs}) == 1
            assert all(slashed == 0 for _, slashed in net.points().values()), net.points()
            assert any(who == "unreachable" for _, _, who in net.chain.log), "the outage hit no transaction"
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    run(body())


def _deaf_to_announcements(c: SimClient) -> None:
    """Cut `c` off from the result announcements on gossip (everything else still arrives): how a client
    that nobody forwards to, or whose links lost them, stands when it applies a step."""
    import msgpack

    g = c.client.p2p.gossip

    async def on_frame(wire: bytes, remote: bytes) -> None:
        if msgpack.unpackb(msgpack.unpackb(wire, raw=False)[0], raw=False)[5] == "result":
            g.dropped["cut_off"] += 1
            return
        await g.receive(wire, remote)

    g._on_frame = on_frame  # type: ignore[method-assign]


def test_a_client_cut_off_from_announcements_asks_for_the_vouched_ones_and_stays_bit_identical(tmp_path: Path) -> None:
    """The chain's witnesses vouch for results whose announcements never reached one client: it asks the
    trainers (and peers) for them over P2P before applying, so it applies the same set as everyone."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=8, epoch_time=30))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            _deaf_to_announcements(cs[2])
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            deaf = cs[2]
            assert deaf.client.p2p.gossip.dropped["cut_off"] > 0
            recovered = deaf.of_kind("recovered")
            assert recovered and all(e["got"] == e["asked"] for e in recovered), recovered
            assert not [e for c in cs for e in c.of_kind("error") if "DESYNC" in e.get("reason", "")]
            assert len({weights(c) for c in cs}) == 1
        finally:
            await net.close()
    run(body())


def test_a_client_that_cannot_get_a_vouched_announcement_reports_desync(tmp_path: Path) -> None:
    """Same cut, and nobody answers its asks either: it must say DESYNC, not silently apply a subset."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=6, epoch_time=30))
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            deaf = cs[2]
            _deaf_to_announcements(deaf)

            async def no_answer(*_a: object, **_k: object) -> int:
                return 0

            deaf.client.p2p.gossip.ask = no_answer  # type: ignore[method-assign]
            await net.wait(cs, 120)
            desync = [e for e in deaf.of_kind("error") if "DESYNC" in e.get("reason", "")]
            assert desync and "never received" in desync[0]["reason"], deaf.out.events[-10:]
            assert not [e for c in cs[:2] for e in c.of_kind("error") if "DESYNC" in e.get("reason", "")]
        finally:
            await net.close()
    run(body())
