"""Training over the P2P layer: three DisTrO trainers announce result commitments by gossip, fetch each
other's results as blobs over iroh, validate them against the commitment and the model, and apply them in
one agreed order. They must end bit-identical, with the loss going down."""
from __future__ import annotations

import asyncio
import copy

import torch

from client.p2p.envelope import Message
from client.training.data import ShardedBatches
from client.training.distro import DistroConfig, result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer
from tests.p2p_helpers import Peer, cluster, wait_for
from tests.training_helpers import llama_config, pydoc_samples

STEPS = 6
DCFG = DistroConfig(chunk=64, topk=8)


async def _collect(peer: Peer, step: int, want: int, pending: dict[int, list[Message]]) -> list[Message]:
    """Announcements for `step` from every other trainer (later steps are kept for later)."""
    def ready() -> bool:
        while not peer.gossip.inbox.empty():
            msg = peer.gossip.inbox.get_nowait()
            pending.setdefault(msg.step, []).append(msg)
        return len({m.sender for m in pending.get(step, [])}) >= want
    await wait_for(ready, 15.0, f"step {step} announcements at {peer.identity.short}")
    return pending.pop(step)


def test_trainers_exchange_results_over_iroh_and_stay_identical() -> None:
    torch.set_num_threads(2)

    async def main() -> None:
        async with cluster(3, rebroadcast_s=0.3) as (peers, _):
            base = build_model(llama_config(), seed=0)
            layout = result_layout(base, DCFG)
            trainers = [Trainer(copy.deepcopy(base), Constant(base_lr=2e-3, warmup_steps=2), "distro", DCFG)
                        for _ in peers]
            data = ShardedBatches(pydoc_samples(), len(peers))
            pending: list[dict[int, list[Message]]] = [{} for _ in peers]
            losses = []
            for step in range(STEPS):
                own = {}
                for i, (peer, trainer) in enumerate(zip(peers, trainers, strict=True)):
                    peer.gossip.set_step(step)
                    out = trainer.train_step(step, data.batch(i, step, 4))
                    wire = encode_result(out.result, layout, DCFG)
                    own[peer.key] = wire
                    h = peer.blobs.store.put(wire, step)
                    await peer.gossip.publish("result", h)
                    losses.append(out.loss)
                for i, (peer, trainer) in enumerate(zip(peers, trainers, strict=True)):
                    wires = {peer.key: own[peer.key]}
                    for msg in await _collect(peer, step, len(peers) - 1, pending[i]):
                        others = [p.key for p in peers if p.key not in (msg.sender, peer.key)]
                        wires[msg.sender] = await peer.blobs.fetch(msg.payload, [msg.sender, *others], step)
                        decode_result(wires[msg.sender], layout, DCFG, expected_commitment=msg.payload,
                                      expected_step=step)
                    results = [decode_result(wires[k], layout, DCFG) for k in sorted(wires)]  # agreed order
                    trainer.apply(results, step)
                    peer.blobs.store.gc(step, keep_steps=1)
            ref = trainers[0].model.state_dict()
            for t in trainers[1:]:
                for name, v in t.model.state_dict().items():
                    assert torch.equal(ref[name], v), name
            assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
            assert all(p.gossip.dropped["forged"] == 0 for p in peers)

    asyncio.run(main())
