"""Serving the current model to late joiners as blobs, and loading it with every tensor verified.

A server puts each tensor's raw bytes in its blob store and a JSON manifest (model config, then per
tensor: name, shape, dtype, size, sha256) as one more blob; the manifest's hash is what it announces
(gossip kind `checkpoint`). A joiner fetches the manifest, builds the model the config describes, checks
every listed tensor against that model's names, shapes and dtypes, fetches each tensor blob (verified
against the manifest hash) and only then copies anything into the model.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from client.p2p.blob_store import BlobStore
from client.p2p.blobs import BlobService
from client.training.checkpoint import load_state_into
from client.training.config import ModelConfig
from client.training.model import Decoder, build_model

MANIFEST_FORMAT = "psyche-checkpoint/1"
DTYPES = {"float32": (torch.float32, "<f4"), "bfloat16": (torch.bfloat16, "<i2")}


class ManifestError(ValueError):
    """A checkpoint manifest or tensor that does not describe the model it claims to."""


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def bytes_tensor(data: bytes, dtype: str, shape: list[int]) -> torch.Tensor:
    torch_dtype, np_dtype = DTYPES[dtype]
    arr = torch.from_numpy(np.frombuffer(data, dtype=np_dtype).copy()).reshape(shape)
    return arr.view(torch_dtype) if torch_dtype == torch.bfloat16 else arr


def publish_model(model: Decoder, store: BlobStore, step: int = 0) -> bytes:
    """Put the model in `store` (pinned: a late joiner may ask at any time); returns the manifest hash."""
    entries = []
    for name, t in model.state_dict().items():
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in DTYPES:
            raise ManifestError(f"tensor {name}: dtype {dtype} cannot be shared")
        data = tensor_bytes(t)
        entries.append({"name": name, "shape": list(t.shape), "dtype": dtype, "size": len(data),
                        "sha256": store.put(data, step, pinned=True).hex()})
    manifest = {"format": MANIFEST_FORMAT, "step": step, "config": model.cfg.to_dict(), "tensors": entries}
    return store.put(json.dumps(manifest, sort_keys=True).encode(), step, pinned=True)


def unpin_model(store: BlobStore, manifest_hash: bytes) -> None:
    """Release a published model (manifest and tensors) to GC; a newer publish re-pins shared tensors."""
    data = store.get(manifest_hash)
    if data is None:
        return
    for e in json.loads(data).get("tensors", []):
        store.unpin(bytes.fromhex(e["sha256"]))
    store.unpin(manifest_hash)


def parse_manifest(data: bytes) -> tuple[Decoder, list[dict[str, Any]]]:
    """The model the manifest's config describes (fresh weights) and its tensor entries, cross-checked."""
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"manifest is not JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"manifest format is not {MANIFEST_FORMAT}")
    model = build_model(ModelConfig.from_dict(manifest.get("config"), "manifest config"))
    want = model.state_dict()
    entries = manifest.get("tensors")
    if not isinstance(entries, list) or [e.get("name") for e in entries if isinstance(e, dict)] != list(want):
        raise ManifestError("manifest tensors do not list exactly the model's tensors in order")
    for e in entries:
        t = want[e["name"]]
        dtype = str(t.dtype).removeprefix("torch.")
        if e.get("shape") != list(t.shape) or e.get("dtype") != dtype:
            raise ManifestError(f"tensor {e['name']}: manifest says {e.get('dtype')}{e.get('shape')},"
                                f" the config's model has {dtype}{list(t.shape)}")
        if e.get("size") != t.numel() * t.element_size():
            raise ManifestError(f"tensor {e['name']}: manifest size {e.get('size')} is wrong")
        sha = e.get("sha256")
        if not isinstance(sha, str) or len(sha) != 64:
            raise ManifestError(f"tensor {e['name']}: bad sha256 {sha!r}")
    return model, entries


async def fetch_model(blobs: BlobService, manifest_hash: bytes, providers: list[bytes]) -> Decoder:
    """Download and verify a shared model; raises before touching any weights if anything is off."""
    model, entries = parse_manifest(await blobs.fetch(manifest_hash, providers, max_size=16 << 20))
    tensors = {}
    for e in entries:
        h = bytes.fromhex(e["sha256"])
        data = await blobs.fetch(h, providers, max_size=e["size"])
        if len(data) != e["size"]:
            raise ManifestError(f"tensor {e['name']}: got {len(data)} bytes, manifest says {e['size']}")
        tensors[e["name"]] = bytes_tensor(data, e["dtype"], e["shape"])
    load_state_into(model, tensors, f"checkpoint {manifest_hash.hex()[:12]}")
    return model
