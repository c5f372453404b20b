"""Top-k per DCT block, the shared seeded selection, compact index/sign packing, and the peers' scatter-mean
(Psyche `CompressDCT`, §6.2)."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from client.training.dct import ChunkPlan


def index_dtype(totalk: int) -> np.dtype:
    """Narrowest unsigned integer that holds every index of a block: u8 ≤ 256, u16 ≤ 65536, else u32."""
    if totalk <= 1 << 8:
        return np.dtype("<u1")
    if totalk <= 1 << 16:
        return np.dtype("<u2")
    if totalk <= 1 << 32:
        return np.dtype("<u4")
    raise ValueError(f"a DCT block of {totalk} coefficients is larger than any index type supports")


def topk_for(plan: ChunkPlan, topk: int) -> int:
    return max(1, min(topk, plan.totalk))


@dataclass
class SparseCoeffs:
    """The k largest-magnitude coefficients of each block: int64 `idx` and float32 `val`, `[*blocks, k]`."""

    idx: torch.Tensor
    val: torch.Tensor

    def signs(self) -> SparseCoeffs:
        """The 1-bit form peers receive: each value replaced by ±1 (0 counts as positive, as signbit does)."""
        return SparseCoeffs(self.idx, torch.where(self.val < 0, -1.0, 1.0).to(torch.float32))


def compress(coeffs: torch.Tensor, k: int) -> SparseCoeffs:
    """Deterministic top-k by magnitude; indices are sorted ascending so the same block always encodes alike."""
    _, idx = coeffs.abs().topk(k, dim=-1, sorted=True)
    idx, _ = idx.sort(dim=-1)
    return SparseCoeffs(idx, coeffs.gather(-1, idx).float())


SHARED_DRAW = "psyche-shared-draw/1"
_DRAW_STEPS = 4  # (seed, step) draws kept: a step's own generate + decodes, late applies, a verifier's recompute
_draws: OrderedDict[tuple[int, int], dict[tuple, torch.Tensor]] = OrderedDict()
_draws_lock = threading.Lock()


def _draw(seed: int, step: int, name: str, blocks: tuple[int, ...], totalk: int, k: int) -> torch.Tensor:
    digest = hashlib.sha256(f"{SHARED_DRAW}:{seed}:{step}:{name}".encode()).digest()
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))
    keys = rng.random((*blocks, totalk))
    if k < totalk:  # the k smallest keys per block; argpartition is ~3x cheaper than a full argsort
        part = np.argpartition(keys, k, axis=-1)
        chosen = np.take_along_axis(keys, part[..., :k], axis=-1).max(axis=-1, keepdims=True)
        if not bool((chosen < np.take_along_axis(keys, part[..., k:k + 1], axis=-1)).all()):  # a tie at the cut:
            part = np.argsort(keys, axis=-1, kind="stable")  # resolve it as the stable order does (p ~ 2^-40)
        sel = part[..., :k]
    else:
        sel = np.broadcast_to(np.arange(totalk), keys.shape)
    return torch.from_numpy(np.sort(sel, axis=-1).astype(np.int64))


def shared_indices(seed: int, step: int, name: str, plan: ChunkPlan, k: int) -> torch.Tensor:
    """The k coefficients of each block that every trainer sends at `step` in the shared selection mode.

    A uniform draw without replacement per block, seeded by sha256(run seed, step, parameter name): every
    client derives the same indices without talking, so none travel, and every chosen coefficient gets a
    vote from every trainer (with own top-k, peers' choices barely coincide). The chosen coefficients are
    those with the k smallest of PCG64 uniform keys (ties, never seen, resolved by index): bit-identical on
    every platform numpy supports, and pinned by a test. The draws of the last few steps are cached
    (a client decodes K peers' results of one step: one draw, not K), so the returned int64 tensor
    `[*blocks, k]`, ascending per block, must not be modified.
    """
    k = topk_for(plan, k)
    key = (tuple(plan.blocks_shape), plan.totalk, k, name)
    with _draws_lock:
        hit = _draws.get((int(seed), int(step)), {}).get(key)
    if hit is not None:
        return hit
    idx = _draw(int(seed), int(step), name, *key[:3])
    with _draws_lock:
        _draws.setdefault((int(seed), int(step)), {})[key] = idx
        _draws.move_to_end((int(seed), int(step)))
        while len(_draws) > _DRAW_STEPS:
            _draws.popitem(last=False)
    return idx


def select(coeffs: torch.Tensor, idx: torch.Tensor) -> SparseCoeffs:
    """The coefficients at given (shared) indices, in the same form `compress` returns."""
    idx = idx.to(coeffs.device)
    return SparseCoeffs(idx, coeffs.gather(-1, idx).float())


def on_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`t.to(device)` without the call when it is there already (applying N results makes ~4N per parameter)."""
    return t if t.device == torch.device(device) else t.to(device)


def scatter_mean(plan: ChunkPlan, parts: list[SparseCoeffs], device: torch.device | str = "cpu") -> torch.Tensor:
    """Each coefficient becomes the mean of the values peers sent for it; coefficients nobody sent stay 0."""
    out = torch.zeros(*plan.blocks_shape, plan.totalk, dtype=torch.float32, device=device)
    if not parts:
        return out
    idx = torch.cat([on_device(p.idx, device) for p in parts], dim=-1)
    val = torch.cat([on_device(p.val, device) for p in parts], dim=-1)
    return out.scatter_reduce_(-1, idx, val, reduce="mean", include_self=False)


def pack_signs(val: torch.Tensor) -> bytes:
    """Sign bits, 8 per byte, least significant bit first; bit 1 means negative (signbit)."""
    bits = (val.reshape(-1) < 0).cpu().numpy().astype(np.uint8)
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_signs(data: bytes, count: int) -> torch.Tensor:
    """Inverse of `pack_signs` → float32 ±1 of length `count`; the caller checks lengths and padding."""
    return torch.from_numpy(unpack_signs_np(data, count))


def unpack_signs_np(data: bytes, count: int) -> np.ndarray:
    """`unpack_signs` as a numpy array (a decoder reshapes it there, cheaper per call than in torch)."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count, bitorder="little")
    return 1.0 - 2.0 * bits.astype(np.float32)


def packed_sign_bytes(count: int) -> int:
    return (count + 7) // 8
