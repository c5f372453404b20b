"""The Merkle tree behind a state commitment (client/training/merkle.py): multiproofs of every subset lead to
the root and nothing else, and the C tree (client/training/native) has the Python one's every level, odd
carries included."""
from __future__ import annotations

import itertools

import pytest

from client.training import merkle, native


def test_merkle_multiproofs_lead_to_the_root_and_nothing_else() -> None:
    """Every subset of leaves of trees of 1 to 9 leaves proves against the root with exactly the proof `prove`
    gives; a changed leaf, a leaf at another index, a short or long proof lead elsewhere."""
    for count in range(1, 10):
        hashes = [merkle.leaf_hash(bytes([i])) for i in range(count)]
        levels = merkle.build_tree(hashes)
        root = levels[-1][0]
        for size in range(1, count + 1):
            for subset in itertools.islice(itertools.combinations(range(count), size), 40):
                proof = merkle.prove(levels, list(subset))
                known = {i: hashes[i] for i in subset}
                assert merkle.root_of(known, count, proof) == root
                assert merkle.root_of({**known, subset[0]: merkle.leaf_hash(b"x")}, count, proof) != root
                assert merkle.root_of(known, count, proof + [bytes(32)]) is None
                if proof:
                    assert merkle.root_of(known, count, proof[:-1]) is None
                if size < count:
                    moved = next(j for j in range(count) if j not in subset)
                    swapped = {**{k: v for k, v in known.items() if k != subset[0]}, moved: hashes[subset[0]]}
                    assert merkle.root_of(swapped, count, merkle.prove(levels, sorted(swapped))) != root
    assert merkle.root_of({}, 3, []) is None and merkle.root_of({5: hashes[0]}, 3, []) is None


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 9, 33, 1448])
def test_the_c_tree_has_every_level_of_the_python_one(count: int) -> None:
    lib = native.library()
    if lib is None:
        pytest.skip("the C library is not built here (tests/unit/test_ef_native.py says whether it must be)")
    hashes = [merkle.leaf_hash(i.to_bytes(4, "little")) for i in range(count)]
    want = merkle.build_tree(hashes)
    got = [merkle.HashLevel(x) for x in native.build_levels(lib, b"".join(hashes))]
    assert [list(x) for x in got] == want
    drawn = list(range(0, count, 7))
    assert merkle.prove(got, drawn) == merkle.prove(want, drawn)
