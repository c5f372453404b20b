"""Weighted mixture: proportions, determinism, provider order, exhaustion; over real providers."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from data_helpers import SEQ_LEN, counting_dataset

from data_providers.http import HttpProvider, ManifestUrl
from data_providers.http_server import HttpDataServer
from data_providers.local import LocalProvider
from data_providers.manifest import Manifest, ManifestFile, sha256_file
from data_providers.types import BatchId, SampleIndexError
from data_providers.weighted import WeightedProvider, blend_pattern

OFFSET_B = 10_000_000  # dataset B's tokens are offset so every sample tells which dataset it came from


def two_datasets(tmp_path: Path) -> tuple[LocalProvider, LocalProvider]:
    a = counting_dataset(tmp_path / "a", [SEQ_LEN * 300])
    b = tmp_path / "b"
    b.mkdir()
    (b / "b.bin").write_bytes(np.arange(OFFSET_B, OFFSET_B + SEQ_LEN * 100, dtype="<u4").tobytes())
    return LocalProvider(a, SEQ_LEN, token_size=4), LocalProvider(b, SEQ_LEN, token_size=4)


def origin(sample_first_token: int) -> tuple[str, int]:
    if sample_first_token >= OFFSET_B:
        return "b", (sample_first_token - OFFSET_B) // SEQ_LEN
    return "a", sample_first_token // SEQ_LEN


def test_blend_pattern_follows_the_weights() -> None:
    p = blend_pattern([3, 1], 8)
    assert p.tolist() == [0, 0, 1, 0, 0, 0, 1, 0]  # spread out, not 6 of one then 2 of the other
    assert np.bincount(blend_pattern([0.2, 0.5, 0.3], 1000), minlength=3).tolist() == [200, 500, 300]
    for bad in ([], [-1, 2], [0, 0], [float("nan"), 1]):
        with pytest.raises(ValueError, match="weight"):
            blend_pattern(bad, 10)


def test_mixture_is_deterministic_proportional_and_in_order(tmp_path: Path) -> None:
    a, b = two_datasets(tmp_path)
    mix = WeightedProvider([(a, 3.0), (b, 1.0)], period=64)
    got = [origin(int(s.input_ids[0])) for s in asyncio.run(mix.get_samples(BatchId(0, 255)))]
    counts = {"a": sum(1 for o, _ in got if o == "a"), "b": sum(1 for o, _ in got if o == "b")}
    assert counts == {"a": 192, "b": 64}
    assert [i for o, i in got if o == "a"] == list(range(192))  # each provider is read in order
    assert [i for o, i in got if o == "b"] == list(range(64))
    # any sub-batch, fetched separately or by another instance, gives the same samples
    again = WeightedProvider([(a, 3.0), (b, 1.0)], period=64)
    part = [origin(int(s.input_ids[0])) for s in asyncio.run(again.get_samples(BatchId(100, 140)))]
    assert part == got[100:141]
    assert [mix.route(i) for i in range(100, 141)] == [("ab".index(o), i) for o, i in got[100:141]]


def test_mixture_exhaustion_is_exact_and_names_the_index(tmp_path: Path) -> None:
    a, b = two_datasets(tmp_path)
    mix = WeightedProvider([(a, 1.0), (b, 1.0)], period=2)
    assert mix.num_samples == 201  # b (100 samples, odd slots) is first asked for its sample 100 at 201
    assert len(asyncio.run(mix.get_samples(BatchId(190, 200)))) == 11
    with pytest.raises(SampleIndexError, match=r"global batch B\[195, 201\]: .*b: sample index 100 of batch"):
        asyncio.run(mix.get_samples(BatchId(195, 201)))


def test_mixture_of_local_and_http_equals_mixture_of_locals(tmp_path: Path) -> None:
    a, b = two_datasets(tmp_path)
    bdir = tmp_path / "b"
    f = bdir / "b.bin"
    Manifest(4, {"kind": "test"}, [ManifestFile("b.bin", SEQ_LEN * 100, f.stat().st_size, sha256_file(f))]
             ).save(bdir)

    async def run() -> None:
        async with HttpDataServer(bdir) as srv, HttpProvider(ManifestUrl(srv.url), SEQ_LEN) as hb:
            remote = WeightedProvider([(a, 2.0), (hb, 1.0)], period=30)
            local = WeightedProvider([(a, 2.0), (b, 1.0)], period=30)
            batch = BatchId(17, 150)
            assert await remote.get_samples(batch) == await local.get_samples(batch)
            assert hb.requests_made <= 2  # b's samples in a batch are contiguous: coalesced

    asyncio.run(run())
