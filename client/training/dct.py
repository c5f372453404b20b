"""Chunked orthonormal DCT-II of parameters (Psyche `TransformDCT`, facts §6.1).

A tensor is viewed as `[..., m, n]` (1-D as `[1, n]`), cut into `h×w` blocks with `h = c(m)`, `w = c(n)`
from the divisor rule, and each block becomes `C_h · B · C_wᵀ`. Momentum is smooth across neighbouring
weights, so its energy piles into a few low-frequency coefficients per block: that is what top-k keeps.

The basis is built in float64 and used in float32 (Psyche stores it in the model dtype, bf16), so a
bf16 model's transform does not round its coefficients to 8 bits of mantissa.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import torch


def smaller_split(size: int, target: int) -> int:
    """The largest divisor of `size` not above `target` (`size` itself when it is not above the target)."""
    if size < 1 or target < 1:
        raise ValueError(f"size and target must be positive, got {size}, {target}")
    if size <= target:
        return size
    best = 1
    for d in range(1, math.isqrt(size) + 1):
        if size % d == 0:
            for cand in (d, size // d):
                if best < cand <= target:
                    best = cand
    return best


@lru_cache(maxsize=64)
def _basis_cpu(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * j + 1) * k / (2 * n))
    c[0] *= math.sqrt(1.0 / n)
    c[1:] *= math.sqrt(2.0 / n)
    return c.float()


_device_cache: dict[tuple[int, str], torch.Tensor] = {}


def dct_matrix(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """`C_n[k, j] = α_k cos(π(2j+1)k / 2n)`: rows are the orthonormal DCT-II basis, `C_n⁻¹ = C_nᵀ`."""
    key = (n, str(device))
    if key not in _device_cache:
        _device_cache[key] = _basis_cpu(n).to(device)
    return _device_cache[key]


@dataclass(frozen=True)
class ChunkPlan:
    """How one parameter is cut: `shape` of the parameter, `h×w` block size, blocks on each axis."""

    shape: tuple[int, ...]
    h: int
    w: int

    @cached_property  # asked for per parameter per peer result: computed once per plan
    def matrix_shape(self) -> tuple[int, ...]:
        if len(self.shape) == 0:
            return (1, 1)
        if len(self.shape) == 1:
            return (1, self.shape[0])
        return tuple(self.shape)

    @cached_property  # asked for per parameter per peer result: computed once per plan
    def blocks_shape(self) -> tuple[int, ...]:
        """Leading dims of the encoded tensor; the last dim of the encoding is `totalk = h·w`."""
        *lead, m, n = self.matrix_shape
        return (*lead, m // self.h, n // self.w)

    @property
    def totalk(self) -> int:
        return self.h * self.w

    @cached_property  # asked for per parameter per peer result: computed once per plan
    def num_blocks(self) -> int:
        return math.prod(self.blocks_shape)


def plan_for(shape: tuple[int, ...] | torch.Size, chunk: int) -> ChunkPlan:
    shape = tuple(shape)
    probe = ChunkPlan(shape, 1, 1).matrix_shape
    return ChunkPlan(shape, smaller_split(probe[-2], chunk), smaller_split(probe[-1], chunk))


def to_blocks(x: torch.Tensor, plan: ChunkPlan) -> torch.Tensor:
    """Parameter-shaped tensor → its h×w blocks, `[*blocks_shape, h, w]` (a view where torch can make one);
    shared by the DCT and by the error-feedback state's commitment (ef_parts), which hashes block by block."""
    *lead, m, n = plan.matrix_shape
    return x.reshape(*lead, m // plan.h, plan.h, n // plan.w, plan.w).transpose(-3, -2)


def from_blocks(blocks: torch.Tensor, plan: ChunkPlan) -> torch.Tensor:
    """Inverse of `to_blocks`: `[*blocks_shape, h, w]` → the parameter's shape."""
    return blocks.transpose(-3, -2).reshape(plan.shape)


def encode(x: torch.Tensor, plan: ChunkPlan) -> torch.Tensor:
    """Parameter-shaped tensor → `[*blocks_shape, h·w]` float32 DCT coefficients."""
    *lead, m, n = plan.matrix_shape
    h, w = plan.h, plan.w
    blocks = to_blocks(x.float(), plan)  # [..., m/h, n/w, h, w]
    ch, cw = dct_matrix(h, x.device), dct_matrix(w, x.device)
    coeffs = ch @ blocks @ cw.T
    return coeffs.reshape(*lead, m // h, n // w, h * w)


def decode(coeffs: torch.Tensor, plan: ChunkPlan) -> torch.Tensor:
    """Inverse of `encode`: `[*blocks_shape, h·w]` → float32 tensor of the parameter's shape."""
    *lead, m, n = plan.matrix_shape
    h, w = plan.h, plan.w
    blocks = coeffs.float().reshape(*lead, m // h, n // w, h, w)
    ch, cw = dct_matrix(h, coeffs.device), dct_matrix(w, coeffs.device)
    spatial = ch.T @ blocks @ cw
    return from_blocks(spatial, plan)


def decode_sparse(idx: torch.Tensor, val: torch.Tensor, plan: ChunkPlan) -> torch.Tensor:
    """`decode` of coefficients given as `[*blocks, K]` indices and values, without densifying them.

    Each coefficient (r, c) of a block is the outer product of basis rows `C_h[r]` and `C_w[c]`, so a
    block with K non-zeros costs `2·K·h·w` flops instead of `2·h·w·(h+w)`: 16x less at K=8, chunk 64.
    """
    *lead, m, n = plan.matrix_shape
    h, w = plan.h, plan.w
    ch, cw = dct_matrix(h, val.device), dct_matrix(w, val.device)
    rows = ch[torch.div(idx, w, rounding_mode="floor")] * val.float()[..., None]  # [*blocks, K, h]
    cols = cw[idx % w]  # [*blocks, K, w]
    spatial = rows.transpose(-1, -2) @ cols  # [*blocks, h, w]
    return from_blocks(spatial, plan)
