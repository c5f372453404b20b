"""Property tests of the index arithmetic every provider shares."""
from __future__ import annotations

import pytest
from data_helpers import counting_dataset
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from data_providers.http import coalesce
from data_providers.layout import SequenceLayout
from data_providers.local import LocalProvider
from data_providers.token_files import TokenFileInfo
from data_providers.types import BatchId, SampleIndexError
from data_providers.weighted import WeightedProvider


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=6), seq_len=st.integers(1, 50),
       seed=st.none() | st.integers(0, 2**32))
def test_every_index_is_a_distinct_whole_sequence_inside_one_file(sizes: list[int], seq_len: int,
                                                                   seed: int | None) -> None:
    files = [TokenFileInfo(f"f{i}", 2, 0, n) for i, n in enumerate(sizes)]
    assume(sum(n // seq_len for n in sizes) > 0)
    layout = SequenceLayout(files, seq_len, shuffle_seed=seed)
    assert layout.num_samples == sum(n // seq_len for n in sizes)
    spans = set()
    for i in range(layout.num_samples):
        loc = layout.locate(i)
        assert loc.token_offset % seq_len == 0
        assert loc.token_offset + seq_len <= sizes[loc.file_index]
        spans.add((loc.file_index, loc.token_offset))
    assert len(spans) == layout.num_samples  # a permutation: no sequence twice, none skipped
    with pytest.raises(SampleIndexError, match=f"sample index {layout.num_samples} "):
        layout.locate(layout.num_samples)
    wrapped = SequenceLayout(files, seq_len, shuffle_seed=seed, wrap="wrap")
    assert wrapped.locate(layout.num_samples + 3) == layout.locate(3 % layout.num_samples)
    batch = BatchId(0, layout.num_samples - 1)
    runs = coalesce(layout.locate_batch(batch), seq_len)
    assert sum(c for _, _, c in runs) == layout.num_samples
    if seed is None:
        assert len(runs) == sum(1 for n in sizes if n >= seq_len)  # one request per file


SIZES = (1, 7, 60)


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> dict[int, LocalProvider]:
    """Real local datasets of 1, 7 and 60 samples (of 4 tokens)."""
    root = tmp_path_factory.mktemp("mix")
    return {n: LocalProvider(counting_dataset(root / str(n), [4 * n]), 4, token_size=4) for n in SIZES}


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(1, 9), min_size=1, max_size=4), period=st.integers(1, 64),
       n=st.sampled_from(SIZES))
def test_weighted_routing_reads_each_provider_in_order(providers: dict[int, LocalProvider],
                                                       weights: list[int], period: int, n: int) -> None:
    mix = WeightedProvider([(providers[n], float(w)) for w in weights], period=period)
    seen: dict[int, list[int]] = {}
    for i in range(3 * period + 5):
        p, local = mix.route(i)
        seen.setdefault(p, []).append(local)
    for locals_ in seen.values():
        assert locals_ == list(range(len(locals_)))
    limit = mix.num_samples
    assert all(mix.route(i)[1] < n for i in range(limit))
    assert mix.route(limit)[1] == n  # the first index past the limit asks a provider for one too many
