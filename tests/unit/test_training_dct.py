"""Chunked DCT: the divisor rule, orthonormality, agreement with the DCT-II formula, exact round trips."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from client.training.dct import dct_matrix, decode, encode, plan_for, smaller_split


@pytest.mark.parametrize(("size", "target", "want"), [
    (100, 26, 25), (1_000_000_007, 500_000_000, 1), (64, 64, 64), (50, 64, 50), (192, 64, 64),
    (96, 64, 48), (4096, 64, 64), (7, 3, 1), (1, 64, 1),
])
def test_smaller_split_follows_the_divisor_rule(size: int, target: int, want: int) -> None:
    assert smaller_split(size, target) == want


def test_smaller_split_rejects_non_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        smaller_split(0, 64)


@pytest.mark.parametrize("n", [1, 2, 7, 48, 64])
def test_dct_basis_is_orthonormal(n: int) -> None:
    c = dct_matrix(n).double()
    assert torch.allclose(c @ c.T, torch.eye(n, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(c.T @ c, torch.eye(n, dtype=torch.float64), atol=1e-6)


def test_dct_matches_the_dct_ii_formula() -> None:
    n = 16
    x = np.random.default_rng(0).standard_normal(n)
    direct = np.array([sum(x[j] * math.cos(math.pi * (2 * j + 1) * k / (2 * n)) for j in range(n))
                       * (math.sqrt(1 / n) if k == 0 else math.sqrt(2 / n)) for k in range(n)])
    got = encode(torch.tensor(x, dtype=torch.float32), plan_for((n,), 64)).reshape(-1).double().numpy()
    assert np.allclose(got, direct, atol=1e-5)


@pytest.mark.parametrize("shape", [(), (64,), (100,), (128, 192), (96, 64), (3, 96, 64), (100, 26)])
def test_encode_decode_round_trip_and_energy(shape: tuple[int, ...]) -> None:
    plan = plan_for(shape, 64)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    coeffs = encode(x, plan)
    assert coeffs.shape == (*plan.blocks_shape, plan.totalk)
    assert torch.allclose(decode(coeffs, plan), x, atol=1e-5)
    assert torch.allclose(coeffs.norm(), x.norm(), rtol=1e-5)  # orthonormal: Parseval


def test_blocks_are_transformed_independently() -> None:
    plan = plan_for((128, 64), 64)
    x = torch.zeros(128, 64)
    x[64:] = torch.randn(64, 64)
    coeffs = encode(x, plan)
    assert torch.count_nonzero(coeffs[0]) == 0 and torch.count_nonzero(coeffs[1]) > 0
