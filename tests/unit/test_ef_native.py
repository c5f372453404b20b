"""The commitment's hashing in C (client/training/native) against the Python reference: every level of the
tree, every leaf and every opening byte-identical, whatever the model, block size and selection; a build older
than its source, or PSYCHE_NATIVE=0, is not loaded; arrays of the wrong shape are refused before the C runs."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from training_helpers import llama_config, mla_config, pydoc_samples

from client.training import ef_parts, native
from client.training.distro import Distro, DistroConfig
from client.training.model import build_model


@pytest.fixture(scope="module")
def lib():  # type: ignore[no-untyped-def]
    got = native.library()
    if got is None:
        # setup.sh builds it wherever a C compiler is: a missing build there is a failure, not a skip
        assert shutil.which("cc") is None or os.environ.get("PSYCHE_NATIVE") == "0", \
            "client/training/native/_merkle.so is not built (or older than merkle.c): run scripts/setup.sh"
        pytest.skip("no C compiler here: the commitment hashes in Python")
    return got


def _same(a: ef_parts.StateParts, b: ef_parts.StateParts) -> None:
    assert a.ef == b.ef and a.root == b.root and a.sent == b.sent and a.signs == b.signs
    assert [list(x) for x in a.levels] == [list(x) for x in b.levels]
    assert [bytes(x) for x in a.leaves] == [bytes(x) for x in b.leaves]
    drawn = list(range(0, len(a.leaves), 5))
    assert a.open(drawn) == b.open(drawn) and a.open(drawn, False) == b.open(drawn, False)


@pytest.mark.parametrize("arch,cfg", [
    ("llama", DistroConfig(chunk=16, topk=1, quantize_1bit=True)),  # the demo's
    ("llama", DistroConfig(chunk=8, topk=3)),
    ("llama", DistroConfig(chunk=16, topk=32, selection="shared", seed=5)),  # k covers a norm's whole 1 x 16 block
    ("deepseek", DistroConfig(chunk=16, topk=14, selection="shared", seed=3)),
    ("deepseek", DistroConfig(chunk=32, topk=2)),
])
def test_native_commitment_is_the_python_one(lib, arch: str, cfg: DistroConfig) -> None:  # type: ignore[no-untyped-def]
    model = build_model(llama_config() if arch == "llama" else mla_config(), seed=4)
    distro = Distro(model, cfg)
    for step in range(3):  # before the first step (no Q), then with Q
        model.loss(pydoc_samples()[4 * step:4 * step + 4]).backward()
        for signs in (False, True):
            _same(ef_parts.split(distro, signs), ef_parts.split(distro, signs, use_native=False))
        res = distro.generate(step, 1e-3)
        model.zero_grad(set_to_none=True)
        assert res.state is not None and res.state.sent == (step > 0)
    native_parts = ef_parts.split(distro)
    layout = distro.layout
    drawn = ef_parts.choose_leaves(b"s" * 8, b"v", b"t", len(native_parts.leaves), 6)
    opened = ef_parts.parse_opening(native_parts.open(drawn), layout, native_parts.ef, drawn)
    assert opened.leaves == ef_parts.leaves_of(distro, drawn)


def test_the_kept_state_does_not_move_with_the_trainer(lib) -> None:  # type: ignore[no-untyped-def]
    """The rows the C writes are the state's copy: the next step changes δ in place, not the served leaves."""
    model = build_model(llama_config(), seed=1)
    distro = Distro(model, DistroConfig(chunk=16, topk=2))
    model.loss(pydoc_samples()[:4]).backward()
    distro.generate(0, 1e-3)
    parts = ef_parts.split(distro)
    before = [bytes(x) for x in parts.leaves]
    for d in distro.delta.values():
        d.add_(1.0)
    assert [bytes(x) for x in parts.leaves] == before
    assert ef_parts.split(distro).root != parts.root


def test_hash_blocks_refuses_arrays_of_the_wrong_shape(lib) -> None:  # type: ignore[no-untyped-def]
    delta = np.zeros((32, 32), np.float32)
    idx, val = np.zeros((4, 2), np.int64), np.zeros((4, 2), np.float32)
    rows, hashes = native.hash_blocks(lib, delta, 16, 16, idx, val)
    assert rows.shape == (4, 1 + 4 * 256 + 24) and len(hashes) == 4 * 32
    bad = {
        "δ not f32": (delta.astype(np.float64), idx, val, 16),
        "δ not contiguous": (np.zeros((32, 64), np.float32)[:, ::2], idx, val, 16),
        "partial blocks": (np.zeros((24, 32), np.float32), idx, val, 16),
        "indices not i64": (delta, idx.astype(np.int32), val, 16),
        "values missing": (delta, idx, None, 16),
        "too few blocks of Q": (delta, idx[:3], val[:3], 16),
        "Q shapes differ": (delta, idx, np.zeros((4, 3), np.float32), 16),
        "block size zero": (delta, idx, val, 0),
    }
    for why, (d, i, v, h) in bad.items():
        with pytest.raises(ValueError):
            native.hash_blocks(lib, d, h, 16, i, v)
            pytest.fail(why)


def test_a_stale_or_switched_off_build_is_not_loaded(lib, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    so, src = tmp_path / "_merkle.so", tmp_path / "merkle.c"
    shutil.copy(native.LIBRARY, so)
    src.write_text("/* edited after the build */\n")
    os.utime(so, (1_000_000, 1_000_000))
    monkeypatch.setattr(native, "LIBRARY", so)
    monkeypatch.setattr(native, "SOURCE", src)
    native.library.cache_clear()
    try:
        assert native.library() is None  # the source changed since: its bytes may no longer be the reference's
        os.utime(so, None)
        os.utime(src, (1_000_000, 1_000_000))
        native.library.cache_clear()
        assert native.library() is not None
        monkeypatch.setenv("PSYCHE_NATIVE", "0")
        native.library.cache_clear()
        assert native.library() is None
        model = build_model(llama_config(), seed=1)  # and the commitment still works, in Python
        assert len(ef_parts.split(Distro(model, DistroConfig(chunk=16, topk=2))).root) == 32
    finally:
        monkeypatch.undo()
        native.library.cache_clear()
    assert native.library() is not None
