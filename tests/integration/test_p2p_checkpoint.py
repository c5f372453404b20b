"""Checkpoint sharing: a late joiner learns the manifest from gossip and loads the serving peer's exact model."""
from __future__ import annotations

import asyncio
import copy
import json

import pytest
import torch
from p2p_helpers import cluster, introduce, make_peer, wait_for
from training_helpers import llama_config, mla_config

from client.p2p.checkpoint_share import ManifestError, fetch_model, parse_manifest, publish_model
from client.p2p.identity import P2PIdentity
from client.training.config import ModelConfig
from client.training.model import build_model


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_late_joiner_loads_a_model_identical_to_the_serving_peer(dtype: str) -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0.2) as (peers, members):
            server, other = peers
            model = build_model(ModelConfig.from_dict(mla_config().to_dict() | {"dtype": dtype}), seed=11)
            with torch.no_grad():  # a model that has trained: weights differ from any fresh init
                for p in model.parameters():
                    p.add_(torch.randn(p.shape).to(p.dtype) * 0.01)
            manifest = publish_model(model, server.blobs.store, step=5)
            await server.gossip.publish("checkpoint", manifest)

            late = P2PIdentity.generate()
            members.update(members.members() | {late.public})  # the next epoch lists the joiner
            joiner = await make_peer(members, identity=late, rebroadcast_s=0)
            try:
                introduce([server, other, joiner])
                await wait_for(lambda: joiner.gossip.delivered >= 1, 5.0, "the checkpoint announcement")
                msg = joiner.gossip.inbox.get_nowait()
                assert msg.kind == "checkpoint" and msg.sender == server.key
                loaded = await fetch_model(joiner.blobs, msg.payload, [msg.sender, other.key])
            finally:
                await joiner.node.close()
            assert loaded.cfg == model.cfg
            for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
                assert a.dtype == b.dtype and torch.equal(a, b), name
    asyncio.run(main())


def _manifest_bytes() -> tuple[bytes, dict]:
    from client.p2p.blob_store import BlobStore

    store = BlobStore()
    h = publish_model(build_model(llama_config()), store)
    raw = store.get(h)
    return raw, json.loads(raw)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["tensors"][0].update(shape=[1, 2]), "manifest says"),
    (lambda m: m["tensors"][0].update(dtype="bfloat16"), "manifest says"),
    (lambda m: m["tensors"][0].update(size=3), "size 3 is wrong"),
    (lambda m: m["tensors"][0].update(sha256="zz"), "bad sha256"),
    (lambda m: m["tensors"].pop(), "exactly the model's tensors"),
    (lambda m: m["config"].update(dim=-1), "dim must be positive"),
    (lambda m: m.update(format="x"), "format"),
])
def test_tampered_manifests_are_rejected(edit, message: str) -> None:
    _, manifest = _manifest_bytes()
    edit(manifest)
    with pytest.raises((ManifestError, ValueError), match=message):
        parse_manifest(json.dumps(manifest).encode())


def test_manifest_lists_every_tensor_with_its_hash() -> None:
    raw, manifest = _manifest_bytes()
    model, entries = parse_manifest(raw)
    assert [e["name"] for e in entries] == list(model.state_dict())
    assert all(len(e["sha256"]) == 64 for e in entries)
    with pytest.raises(ManifestError, match="not JSON"):
        parse_manifest(b"\xff")


def test_a_corrupt_tensor_blob_never_reaches_the_model() -> None:
    async def main() -> None:
        async with cluster(2, rebroadcast_s=0) as (peers, _):
            server, joiner = peers
            model = build_model(llama_config(), seed=1)
            manifest = publish_model(model, server.blobs.store)
            entry = json.loads(server.blobs.store.get(manifest))["tensors"][3]
            h = bytes.fromhex(entry["sha256"])
            server.blobs.store._blobs[h] = copy.copy(server.blobs.store._blobs[h])
            server.blobs.store._blobs[h].data = b"\x00" * entry["size"]
            with pytest.raises(Exception, match="do not hash"):
                await fetch_model(joiner.blobs, manifest, [server.key])
    asyncio.run(main())


def test_a_replaced_checkpoint_is_released_to_gc_and_shared_tensors_stay() -> None:
    from client.p2p.blob_store import BlobStore
    from client.p2p.checkpoint_share import unpin_model

    store = BlobStore()
    first = build_model(llama_config(), seed=0)
    old = publish_model(first, store)
    second = copy.deepcopy(first)
    with torch.no_grad():
        next(second.parameters()).add_(1.0)  # one tensor changes, the others are shared with `old`
    unpin_model(store, old)
    new = publish_model(second, store)
    store.gc(current_step=10, keep_steps=0)
    assert old not in store and new in store
    kept = {e["sha256"] for e in json.loads(store.get(new))["tensors"]}
    assert all(bytes.fromhex(h) in store for h in kept)
    assert len(store) == len(kept) + 1
