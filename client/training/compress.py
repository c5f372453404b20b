"""Top-k per DCT block, compact index/sign packing, and the peers' scatter-mean (Psyche `CompressDCT`, §6.2)."""
from __future__ import annotations

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
