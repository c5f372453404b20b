"""A stand-in for forward/backward + DisTrO `generate` (Psyche's `--dummy-training-delay-secs`): a correctly
shaped result drawn from a seed, so that many clients can share one machine's cores and still speak the whole
protocol (codec, publish, validation, witnessing, apply) exactly as trainers do.

The result is a pure function of (run id, step, the trainer's P2P key) and the model's layout, so a simulated
run is reproducible and every client applying the same set of results still holds bit-identical weights.
"""
from __future__ import annotations

import hashlib

import torch

from client.training.compress import SparseCoeffs, shared_indices
from client.training.distro import DistroConfig, DistroResult, ParamLayout

DOMAIN = b"psyche/simulated-result/1"


def simulated_seed(run_id: str, step: int, key: bytes) -> int:
    h = hashlib.sha256(DOMAIN + len(run_id).to_bytes(2, "little") + run_id.encode() + step.to_bytes(8, "little")
                       + key).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def simulated_result(layout: dict[str, ParamLayout], cfg: DistroConfig, run_id: str, step: int,
                     key: bytes) -> DistroResult:
    """Per parameter and DCT block: k distinct ascending indices and values drawn from the seed (±1 when the run
    sends 1-bit results), the shape `encode_result` and every peer's `decode_result` expect."""
    g = torch.Generator().manual_seed(simulated_seed(run_id, step, key))
    params = {}
    for name, lay in layout.items():
        shape = (*lay.plan.blocks_shape, lay.plan.totalk)
        idx = torch.rand(shape, generator=g).topk(lay.k, dim=-1).indices.sort(dim=-1).values
        if cfg.selection == "shared":  # the draw every trainer of the step sends (the random one keeps g's stream)
            idx = shared_indices(cfg.seed, step, name, lay.plan, lay.k)
        val = torch.randn((*lay.plan.blocks_shape, lay.k), generator=g)
        q = SparseCoeffs(idx, val)
        params[name] = q.signs() if cfg.quantize_1bit else q
    return DistroResult(step, params, cfg.quantize_1bit)
