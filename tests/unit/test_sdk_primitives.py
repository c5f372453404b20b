"""Deterministic primitives shared by chain and clients: properties from the spec plus golden values
(regression guards; the on-chain program is checked against these same functions in its own tests)."""
from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator_sdk.assignment import assign_batches, batch_size
from coordinator_sdk.bloom import N_BITS, SIZE, Bloom, fnv1a64
from coordinator_sdk.consensus import consensus_commitment, witness_quorum
from coordinator_sdk.merkle import EMPTY_ROOT, merkle_root
from coordinator_sdk.participation import absentees, has_participant, in_range, participant_indices, participants_bitmap
from coordinator_sdk.shuffle import (
    Lcg,
    compute_shuffled_index,
    deterministic_shuffle,
    elected_witnesses,
    election_seed,
    witness_slots,
)

SEED = hashlib.sha256(b"psyche").digest()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), seed=st.binary(min_size=32, max_size=32))
def test_swap_or_not_is_a_permutation(n: int, seed: bytes) -> None:
    assert sorted(compute_shuffled_index(i, n, seed) for i in range(n)) == list(range(n))


def test_swap_or_not_golden_and_argument_checks() -> None:
    assert [compute_shuffled_index(i, 10, SEED) for i in range(10)] == GOLDEN_SHUFFLE_10
    assert compute_shuffled_index(0, 1, SEED) == 0
    with pytest.raises(ValueError):
        compute_shuffled_index(5, 5, SEED)
    with pytest.raises(ValueError):
        compute_shuffled_index(0, 5, b"short")


def test_witness_election_sizes_and_spread() -> None:
    assert witness_slots(0, 4) == 4 and witness_slots(0, 100) == 32 and witness_slots(3, 100) == 3
    assert witness_slots(8, 5) == 5
    counts: Counter[int] = Counter()
    for seed in range(200):
        chosen = elected_witnesses(16, seed, 4)
        assert len(chosen) == 4
        counts.update(chosen)
    assert min(counts.values()) > 20  # every client gets elected sometimes (expected 50 each)
    assert election_seed(1, b"witness") != election_seed(1, b"committee") != election_seed(2, b"committee")


def test_lcg_and_fisher_yates_golden() -> None:
    rng = Lcg(42)
    assert [rng.next_u64() for _ in range(3)] == GOLDEN_LCG_42
    assert deterministic_shuffle(list(range(8)), 7) == GOLDEN_SHUFFLE_8
    assert deterministic_shuffle([], 7) == [] and deterministic_shuffle(["a"], 7) == ["a"]


def test_bloom_layout_membership_and_roundtrip() -> None:
    assert fnv1a64(0xCBF29CE484222325, b"a") == 0xAF63DC4C8601EC8C  # the standard FNV-1a-64 vector
    b = Bloom(list(range(1, 9)))
    items = [hashlib.sha256(bytes([i])).digest() for i in range(20)]
    for x in items[:10]:
        b.add(x)
    assert all(b.contains(x) for x in items[:10])
    assert sum(b.contains(x) for x in items[10:]) <= 1
    raw = b.to_bytes()
    assert len(raw) == SIZE == 192 and Bloom.from_bytes(raw) == b
    assert raw[:8] == (1).to_bytes(8, "little")
    assert all(0 <= p < N_BITS for p in b.positions(b"x"))
    with pytest.raises(ValueError):
        Bloom.from_bytes(raw[:-1])


def test_merkle_root_shape() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).digest() for i in range(3))
    leaf = lambda x: hashlib.sha256(b"\x00" + x).digest()  # noqa: E731
    node = lambda left, right: hashlib.sha256(b"\x01" + left + right).digest()  # noqa: E731
    assert merkle_root([]) == EMPTY_ROOT
    assert merkle_root([a]) == leaf(a)
    assert merkle_root([a, b]) == node(leaf(a), leaf(b))
    assert merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), node(leaf(c), leaf(c)))


def test_batch_size_ramp() -> None:
    assert batch_size(0, 2048, 8, 64, 2048 * 100) == 8
    assert batch_size(50, 2048, 8, 64, 2048 * 100) == 36
    assert batch_size(25, 2048, 8, 64, 2048 * 100) == 22  # 8 + 56/4 = 22
    assert batch_size(100, 2048, 8, 64, 2048 * 100) == 64
    assert batch_size(10**12, 2048, 8, 64, 2048 * 100) == 64
    assert batch_size(3, 1, 1, 2, 2) == 2 and batch_size(1, 1, 1, 2, 2) == 2  # 1.5 rounds half up
    with pytest.raises(ValueError):
        batch_size(0, 1, 5, 4, 10)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), extra=st.integers(0, 200), start=st.integers(0, 10**12), seed=st.integers(0, 2**64 - 1))
def test_assignment_covers_the_batch_exactly_once(n: int, extra: int, start: int, seed: int) -> None:
    total = n + extra
    out = assign_batches(list(range(n)), seed, start, total)
    assert sorted(t for t, _, _ in out) == list(range(n))
    spans = [(a, b) for _, a, b in out]
    assert spans[0][0] == start and spans[-1][1] == start + total - 1
    assert all(b1 + 1 == a2 for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False))
    sizes = [b - a + 1 for a, b in spans]
    assert max(sizes) - min(sizes) <= 1 and all(s >= 1 for s in sizes)


def test_assignment_refuses_fewer_samples_than_trainers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        assign_batches([1, 2, 3], 0, 0, 2)


@pytest.mark.parametrize("w,q", [(1, 1), (2, 2), (3, 2), (4, 2), (5, 3), (6, 4), (32, 21)])
def test_witness_quorum_table(w: int, q: int) -> None:
    assert witness_quorum(w) == q
    assert witness_quorum(1, witness_nodes=w) == q  # configured count wins over the received count


def _bloom_with(*items: bytes) -> Bloom:
    b = Bloom([11, 22, 33, 44, 55, 66, 77, 88])
    for x in items:
        b.add(x)
    return b


def test_consensus_commitment() -> None:
    good, bad = b"G" * 32, b"B" * 32
    blooms = [_bloom_with(good), _bloom_with(good), _bloom_with(bad)]
    assert consensus_commitment([bad, good], blooms) == good      # 2 of 3 >= quorum 2
    assert consensus_commitment([bad], blooms) is None             # 1 < quorum
    assert consensus_commitment([], blooms) is None


def test_participant_bits_layout_range_and_absentees() -> None:
    bits = participants_bitmap([0, 9, 63, 64, 255])
    assert len(bits) == 32 and bits[0] == 1 and bits[1] == 2 and bits[7] == 0x80 and bits[8] == 1 and bits[31] == 0x80
    assert int.from_bytes(bits[:8], "little") == 1 | 1 << 9 | 1 << 63  # u64 word i // 64, bit i % 64 (the program's)
    assert participant_indices(bits) == [0, 9, 63, 64, 255]
    assert has_participant(bits, 9) and not has_participant(bits, 8)
    assert in_range(bits, 256) and not in_range(bits, 255) and in_range(participants_bitmap([3]), 4)
    with pytest.raises(ValueError):
        participants_bitmap([256])
    posted = [participants_bitmap([0, 1, 2]), participants_bitmap([0, 1]), participants_bitmap([0])]
    assert absentees(posted, 4, 2) == [2, 3]   # 2: left out by 2 of 3; 3 (never listed) by all
    assert absentees(posted[:1], 4, 2) == []   # fewer posts than the quorum decide nothing


GOLDEN_SHUFFLE_10 = [0, 6, 4, 5, 2, 9, 7, 8, 3, 1]
GOLDEN_LCG_42 = [10481999410520546993, 4159066171780167020, 7615522811268512075]
GOLDEN_SHUFFLE_8 = [6, 0, 1, 5, 3, 7, 4, 2]
