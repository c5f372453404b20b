"""Simulated training (`--simulate-training`): the seeded result is a valid wire result, reproducible, and
distinct per trainer and step; the CPU meter attributes a coroutine's own steps only."""
from __future__ import annotations

import asyncio

import torch

from client.cpu_meter import CpuMeter
from client.training.config import ModelConfig
from client.training.distro import Distro, DistroConfig, result_layout
from client.training.model import build_model
from client.training.result_codec import commitment, decode_result, encode_result
from client.training.simulated import simulated_result

MODEL = dict(arch="llama", vocab_size=256, dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=32)


def _layout(cfg: DistroConfig):
    return result_layout(build_model(ModelConfig.from_dict(MODEL), seed=0), cfg)


def test_simulated_result_round_trips_the_codec_and_is_reproducible() -> None:
    for cfg in (DistroConfig(chunk=16, topk=2), DistroConfig(chunk=16, topk=3, quantize_1bit=False)):
        layout = _layout(cfg)
        a = encode_result(simulated_result(layout, cfg, "run", 5, b"k" * 32), layout, cfg)
        assert a == encode_result(simulated_result(layout, cfg, "run", 5, b"k" * 32), layout, cfg)
        assert a != encode_result(simulated_result(layout, cfg, "run", 6, b"k" * 32), layout, cfg)
        assert a != encode_result(simulated_result(layout, cfg, "run", 5, b"j" * 32), layout, cfg)
        back = decode_result(a, layout, cfg, expected_commitment=commitment(a), expected_step=5)
        assert back.quantized == cfg.quantize_1bit
        for name, lay in layout.items():
            assert back.params[name].idx.shape == (*lay.plan.blocks_shape, lay.k)


def test_applying_simulated_results_moves_weights_identically() -> None:
    cfg = DistroConfig(chunk=16, topk=1)
    digests = set()
    for _ in range(2):
        model = build_model(ModelConfig.from_dict(MODEL), seed=0)
        d = Distro(model, cfg)
        layout = result_layout(model, cfg)
        before = [p.detach().clone() for p in model.parameters()]
        results = [simulated_result(layout, cfg, "run", 1, bytes([i]) * 32) for i in range(3)]
        assert d.apply(results, 1e-2)
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
        digests.add(tuple(float(p.sum()) for p in model.parameters()))
    assert len(digests) == 1


def test_cpu_meter_counts_only_its_coroutine() -> None:
    meter = CpuMeter()

    async def busy(n: int) -> int:
        s = 0
        for _ in range(3):
            s += sum(range(n))
            await asyncio.sleep(0)
        return s

    async def main() -> None:
        other = asyncio.create_task(busy(400_000))  # interleaves with the metered one, not counted
        assert await meter.run("mine", busy(10)) == 3 * sum(range(10))
        await other

    asyncio.run(main())
    assert meter.take()["mine"] < 0.005
    assert meter.take() == {}
