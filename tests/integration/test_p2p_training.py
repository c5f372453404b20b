"""Training over the P2P layer: three DisTrO trainers announce result commitments by gossip, fetch each
other's results as blobs over iroh, validate them against the commitment and the model, and apply them in
one agreed order. They must end bit-identical, with the loss going down."""
from __future__ import annotations

import asyncio
import copy

import pytest
import torch
from p2p_helpers import cluster
from training_helpers import llama_config, pydoc_samples

from client.p2p.blobs import BlobError
from client.p2p.result_exchange import ResultExchange
from client.training.data import ShardedBatches
from client.training.distro import DistroConfig, result_layout
from client.training.ef_parts import opening_limit, parse_opening
from client.training.model import build_model
from client.training.result_codec import encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer

STEPS = 6
DCFG = DistroConfig(chunk=64, topk=8)


def test_trainers_exchange_results_over_iroh_and_stay_identical() -> None:
    torch.set_num_threads(2)

    async def main() -> None:
        async with cluster(3, rebroadcast_s=0.3) as (peers, _):
            base = build_model(llama_config(), seed=0)
            layout = result_layout(base, DCFG)
            trainers = [Trainer(copy.deepcopy(base), Constant(base_lr=2e-3, warmup_steps=2), "distro", DCFG)
                        for _ in peers]
            data = ShardedBatches(pydoc_samples(), len(peers))
            exchanges = [ResultExchange(p.gossip, p.blobs, layout, DCFG) for p in peers]
            keys = {p.key for p in peers}
            losses = []
            for step in range(STEPS):
                for i, (peer, trainer, ex) in enumerate(zip(peers, trainers, exchanges, strict=True)):
                    peer.gossip.set_step(step)
                    out = trainer.train_step(step, data.batch(i, step, 4))
                    await ex.publish(step, encode_result(out.result, layout, DCFG, sender=peer.key))
                    losses.append(out.loss)
                for peer, trainer, ex in zip(peers, trainers, exchanges, strict=True):
                    got = await ex.gather(step, keys)
                    assert [k for k, _ in got] == sorted(keys) and not ex.rejected
                    trainer.apply([r for _, r in got], step)
                    peer.blobs.store.gc(step, keep_steps=1)
            ref = trainers[0].model.state_dict()
            for t in trainers[1:]:
                for name, v in t.model.state_dict().items():
                    assert torch.equal(ref[name], v), name
            assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
            assert all(p.gossip.dropped["forged"] == 0 for p in peers)

    asyncio.run(main())


def test_a_result_that_fails_validation_is_left_out_and_named() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            honest, cheat = peers
            base = build_model(llama_config(), seed=0)
            layout = result_layout(base, DCFG)
            me = ResultExchange(honest.gossip, honest.blobs, layout, DCFG)
            bad = ResultExchange(cheat.gossip, cheat.blobs, layout, DCFG)
            await bad.publish(0, b"\x93\x01\x02\x03")  # committed, signed, served: but not a result
            got = await me.gather(0, {cheat.key}, timeout=10.0)
            assert got == [] and "result envelope has keys" in me.rejected[cheat.key]
    asyncio.run(main())


def test_a_result_re_announced_by_another_peer_is_rejected_and_its_state_is_served() -> None:
    """Issue 25: a result names its trainer in the committed bytes, so re-announcing another trainer's blob
    as one's own fails at every peer; the trainer serves openings of its error-feedback state (drawn blocks and
    their Merkle proof, checked against the result's `ef`) and its sign map by hash; it refuses openings of
    states it never committed to and leaf indices out of range."""
    async def main() -> None:
        async with cluster(3, rebroadcast_s=0) as (peers, _):
            honest, cheat, me_peer = peers
            base = build_model(llama_config(), seed=0)
            layout = result_layout(base, DCFG)
            out = Trainer(copy.deepcopy(base), Constant(base_lr=2e-3), "distro", DCFG).train_step(
                0, pydoc_samples()[:4])
            wire = encode_result(out.result, layout, DCFG, sender=honest.key)
            good = ResultExchange(honest.gossip, honest.blobs, layout, DCFG)
            honest.blobs.opener = good.open_state  # as P2PSession.set_model installs it
            bad = ResultExchange(cheat.gossip, cheat.blobs, layout, DCFG)
            me = ResultExchange(me_peer.gossip, me_peer.blobs, layout, DCFG)
            await good.publish(0, wire, out.result.state)
            await bad.publish(0, wire)  # the same bytes, announced as its own
            got = await me.gather(0, {honest.key, cheat.key}, timeout=10.0)
            assert [k for k, _ in got] == [honest.key]
            assert "not to its announcer" in me.rejected[cheat.key]
            parts = out.result.state
            assert parts is not None and parts.signs is not None
            ef, total = got[0][1].ef, len(parts.leaves)
            drawn = [0, 7, total - 1]
            blob = await me_peer.blobs.open_from(honest.key, ef, drawn, True, opening_limit(layout, 3))
            opening = parse_opening(blob, layout, ef, drawn)
            assert opening.leaves == {i: parts.leaves[i] for i in drawn}
            assert await me_peer.blobs.fetch_from(honest.key, parts.signs_hash) == parts.signs
            proof = await me_peer.blobs.open_from(honest.key, ef, drawn, False, opening_limit(layout, 3, False))
            assert parse_opening(proof, layout, ef, drawn, with_leaves=False).leaves == {}
            for bad_ef, leaves in ((b"\x01" * 32, drawn), (ef, [total])):
                with pytest.raises(BlobError, match="does not have it"):
                    await me_peer.blobs.open_from(honest.key, bad_ef, leaves, True, 1 << 20)
            # malformed requests are answered "unknown" by the serving side: no leaves, an odd length, a flag
            # other than 0/1, another prefix
            good_req = b"O" + ef + b"\x01" + (0).to_bytes(4, "little")
            assert honest.blobs._open(good_req) == parts.open([0])
            for bad in (b"O" + ef + b"\x01", good_req + b"\x00", good_req[:33] + b"\x02" + good_req[34:],
                        b"X" + good_req[1:]):
                assert honest.blobs._open(bad) is None
    asyncio.run(main())
