"""Top-k compression, 1-bit signs, the peers' scatter-mean, and the DisTrO apply built on them."""
from __future__ import annotations

import copy

import pytest
import torch
from training_helpers import llama_config, pydoc_samples

from client.training.compress import (
    SparseCoeffs,
    compress,
    index_dtype,
    pack_signs,
    scatter_mean,
    unpack_signs,
)
from client.training.dct import decode, encode, plan_for
from client.training.distro import Distro, DistroConfig, DistroResult
from client.training.model import build_model


def test_topk_keeps_the_largest_magnitudes_in_ascending_index_order() -> None:
    coeffs = torch.tensor([[0.1, -5.0, 0.2, 3.0, -0.3, 4.0]])
    q = compress(coeffs, 3)
    assert q.idx.tolist() == [[1, 3, 5]]
    assert q.val.tolist() == [[-5.0, 3.0, 4.0]]


def test_full_k_compress_then_scatter_is_lossless() -> None:
    plan = plan_for((64, 128), 64)
    x = torch.randn(64, 128)
    q = compress(encode(x, plan), plan.totalk)
    assert torch.allclose(decode(scatter_mean(plan, [q]), plan), x, atol=1e-5)


def test_scatter_mean_averages_overlapping_and_keeps_single_values() -> None:
    plan = plan_for((4,), 64)
    a = SparseCoeffs(torch.tensor([[[0, 2]]]), torch.tensor([[[1.0, 4.0]]]))
    b = SparseCoeffs(torch.tensor([[[2, 3]]]), torch.tensor([[[2.0, -6.0]]]))
    assert scatter_mean(plan, [a, b]).tolist() == [[[1.0, 0.0, 3.0, -6.0]]]


def test_mean_of_identical_results_equals_one_result() -> None:
    plan = plan_for((64, 64), 64)
    q = compress(encode(torch.randn(64, 64), plan), 8)
    assert torch.equal(scatter_mean(plan, [q, q, q, q]), scatter_mean(plan, [q]))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_sign_bits_round_trip_lsb_first(n: int) -> None:
    val = torch.randn(n, generator=torch.Generator().manual_seed(n))
    packed = pack_signs(val)
    assert len(packed) == (n + 7) // 8
    assert torch.equal(unpack_signs(packed, n), torch.where(val < 0, -1.0, 1.0))


def test_sign_bit_layout_is_lsb_first_and_one_means_negative() -> None:
    assert pack_signs(torch.tensor([-1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -2.0])) == bytes([0x01, 0x01])


def test_index_dtype_buckets() -> None:
    assert [index_dtype(n).itemsize for n in (1, 256, 257, 65536, 65537)] == [1, 1, 2, 2, 4]


def test_apply_of_identical_results_equals_apply_of_one() -> None:
    torch.manual_seed(0)
    model = build_model(llama_config(), seed=3)
    distro = Distro(model, DistroConfig(topk=4))
    model.loss(pydoc_samples()[:4]).backward()
    result = distro.generate(0, 1e-3)
    one, many = copy.deepcopy(model), copy.deepcopy(model)
    Distro(one, DistroConfig(topk=4)).apply([result], 1e-3)
    Distro(many, DistroConfig(topk=4)).apply([result] * 4, 1e-3)
    for (name, a), b in zip(one.state_dict().items(), many.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_apply_moves_every_weight_by_lr_along_the_sign() -> None:
    model = build_model(llama_config(), seed=3)
    before = copy.deepcopy(model.state_dict())
    distro = Distro(model, DistroConfig(topk=4))
    model.loss(pydoc_samples()[:4]).backward()
    assert distro.apply([distro.generate(0, 1e-3)], 1e-3)
    for name, p in model.state_dict().items():
        moved = (p - before[name]).abs()
        assert torch.all((moved < 2e-3) & (moved > 0) | (moved == 0)), name
        assert moved.max() > 0, name


def test_apply_with_no_results_skips_the_step() -> None:
    model = build_model(llama_config(), seed=3)
    before = copy.deepcopy(model.state_dict())
    assert not Distro(model, DistroConfig()).apply([], 1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_residual_removes_what_was_sent() -> None:
    """δ_t = β(δ_{t−1} − Q(δ_{t−1})) + η·g: with zero gradients the sent part must vanish from δ."""
    model = build_model(llama_config(), seed=3)
    distro = Distro(model, DistroConfig(topk=4, decay=1.0, quantize_1bit=False))
    model.loss(pydoc_samples()[:4]).backward()
    first: DistroResult = distro.generate(0, 1.0)
    before = {n: d.clone() for n, d in distro.delta.items()}
    model.zero_grad(set_to_none=True)
    distro.generate(1, 1.0)
    for n, lay in distro.layout.items():
        sent = decode(scatter_mean(lay.plan, [first.params[n]]), lay.plan)
        assert torch.allclose(distro.delta[n], before[n] - sent, atol=1e-6), n
