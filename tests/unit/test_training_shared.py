"""The shared coefficient selection (issue 26): a seeded draw every client derives alike, the error
feedback that takes out what was sent, and its wire format (no indices) with every check of top-k's kept."""
from __future__ import annotations

import copy
import functools
import hashlib

import msgpack
import pytest
import torch
from training_helpers import llama_config, mla_config, pydoc_samples

from client.training.compress import scatter_mean, shared_indices
from client.training.dct import decode, encode, plan_for
from client.training.distro import Distro, DistroConfig, DistroResult, result_layout
from client.training.model import build_model
from client.training.result_codec import (
    FORMAT_SHARED,
    ResultError,
    commitment,
    decode_result,
    encode_result,
)

CFG = DistroConfig(chunk=16, topk=5, selection="shared", seed=11)
SENDER = b"\x07" * 32


@functools.cache
def _trained(quantize: bool) -> tuple[torch.nn.Module, DistroResult]:
    cfg = DistroConfig(chunk=16, topk=5, selection="shared", seed=11, quantize_1bit=quantize)
    model = build_model(llama_config(), seed=5)
    distro = Distro(model, cfg)
    model.loss(pydoc_samples()[:4]).backward()
    return model, distro.generate(7, 1e-3)


def _layout() -> dict:
    return result_layout(_trained(True)[0], CFG)


def _bytes(quantize: bool = True, value_dtype: str = "bf16") -> bytes:
    return encode_result(_trained(quantize)[1], _layout(), CFG, value_dtype, sender=SENDER)


def _tamper(data: bytes, fn) -> bytes:
    env = msgpack.unpackb(data, raw=False)
    fn(env)
    return msgpack.packb(env, use_bin_type=True)


def test_the_draw_is_k_distinct_ascending_indices_per_block_and_depends_on_seed_step_and_name() -> None:
    plan = plan_for((64, 48), 16)
    idx = shared_indices(3, 9, "w", plan, 15)
    assert idx.shape == (4, 3, 15) and idx.dtype == torch.int64
    assert bool((idx[..., 1:] > idx[..., :-1]).all()) and int(idx.min()) >= 0 and int(idx.max()) < 256
    assert len({tuple(b.tolist()) for b in idx.reshape(-1, 15)}) > 1  # blocks draw independently
    for other in (shared_indices(4, 9, "w", plan, 15), shared_indices(3, 10, "w", plan, 15),
                  shared_indices(3, 9, "v", plan, 15)):
        assert not torch.equal(idx, other)
    assert shared_indices(0, 0, "b", plan_for((3,), 16), 15).shape == (1, 1, 3)  # k clamps to the block


def test_the_draw_is_pinned() -> None:
    """Clients on different machines must draw alike: the algorithm (sha256 seed → PCG64 floats → stable
    argsort) is pinned by the digest of one draw, so a change to it (or to numpy's stream) fails here."""
    idx = shared_indices(7, 123, "layers.0.attn.wq.weight", plan_for((128, 128), 16), 15)
    assert idx[0, 0].tolist() == [4, 20, 52, 70, 74, 75, 104, 116, 155, 161, 167, 173, 190, 200, 240]
    assert hashlib.sha256(idx.numpy().astype("<i8").tobytes()).hexdigest()[:16] == "dec359eaae320df4"


@pytest.mark.parametrize(("shape", "k"), [((64, 48), 15), ((7,), 3), ((16, 16), 255), ((16, 16), 256), ((5, 9), 1)])
def test_the_draw_is_the_k_smallest_keys_in_stable_order(shape: tuple, k: int) -> None:
    """The fast path (argpartition) gives what its definition says: the first k of a stable argsort."""
    import numpy as np

    from client.training.compress import SHARED_DRAW

    plan = plan_for(shape, 16)
    digest = hashlib.sha256(f"{SHARED_DRAW}:1:2:p".encode()).digest()
    keys = np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little"))).random(
        (*plan.blocks_shape, plan.totalk))
    want = np.sort(np.argsort(keys, axis=-1, kind="stable")[..., :min(k, plan.totalk)], axis=-1)
    assert np.array_equal(shared_indices(1, 2, "p", plan, k).numpy(), want)


def test_trainers_with_different_gradients_send_the_same_coefficients() -> None:
    base = build_model(mla_config(), seed=2)
    models = [copy.deepcopy(base) for _ in range(3)]
    results = []
    for i, m in enumerate(models):
        distro = Distro(m, CFG)
        m.loss(pydoc_samples()[4 * i:4 * i + 4]).backward()
        results.append(distro.generate(3, 1e-3))
    for n, lay in result_layout(base, CFG).items():
        want = shared_indices(CFG.seed, 3, n, lay.plan, lay.k)
        assert all(torch.equal(r.params[n].idx, want) for r in results), n
    assert any(not torch.equal(results[0].params[n].val, results[1].params[n].val) for n in results[0].params)


def test_residual_removes_what_was_sent() -> None:
    """δ_t = β(δ_{t−1} − Q) + η·g with Q the chosen coefficients of δ_{t−1}: with zero gradients exactly those
    vanish from δ's DCT and every other coefficient stays."""
    model = build_model(llama_config(), seed=3)
    cfg = DistroConfig(chunk=16, topk=5, decay=1.0, quantize_1bit=False, selection="shared")
    distro = Distro(model, cfg)
    model.loss(pydoc_samples()[:4]).backward()
    first = distro.generate(0, 1.0)
    before = {n: d.clone() for n, d in distro.delta.items()}
    model.zero_grad(set_to_none=True)
    distro.generate(1, 1.0)
    for n, lay in distro.layout.items():
        sent = decode(scatter_mean(lay.plan, [first.params[n]]), lay.plan)
        assert torch.allclose(distro.delta[n], before[n] - sent, atol=1e-6), n
        left = encode(distro.delta[n], lay.plan).gather(-1, first.params[n].idx)
        assert float(left.abs().max()) < 1e-5, n


@pytest.mark.parametrize(("quantize", "vdt"), [(True, "bf16"), (False, "bf16"), (False, "f32")])
def test_round_trip_carries_no_indices(quantize: bool, vdt: str) -> None:
    _, result = _trained(quantize)
    data = _bytes(quantize, vdt)
    env = msgpack.unpackb(data, raw=False)
    assert env["format"] == FORMAT_SHARED and "idx" not in env and env["seed"] == CFG.seed
    got = decode_result(data, _layout(), CFG, expected_commitment=commitment(data), expected_step=7,
                        expected_sender=SENDER)
    assert got.step == 7 and got.quantized == quantize and got.ef == result.ef and got.sender == SENDER
    for name, q in result.params.items():
        assert torch.equal(got.params[name].idx, q.idx)
        want = q.signs().val if quantize else q.val.to(torch.bfloat16).float() if vdt == "bf16" else q.val
        assert torch.equal(got.params[name].val, want), name
    assert data == _bytes(quantize, vdt)


def test_shared_result_is_smaller_than_top_k_at_the_same_k() -> None:
    top = DistroConfig(chunk=16, topk=5)
    model = build_model(llama_config(), seed=5)
    distro = Distro(model, top)
    model.loss(pydoc_samples()[:4]).backward()
    top_bytes = encode_result(distro.generate(7, 1e-3), result_layout(model, top), top, sender=SENDER)
    assert len(_bytes()) < 0.6 * len(top_bytes)  # u8 indices dominate 1-bit values


@pytest.mark.parametrize(("name", "fn", "message"), [
    ("short signs", lambda e: e["val"].__setitem__(0, e["val"][0][:-1]), "sign bytes"),
    ("long signs", lambda e: e["val"].__setitem__(0, e["val"][0] + b"\x00"), "sign bytes"),
    ("missing parameter", lambda e: e["val"].pop(), "val carries"),
    ("text values", lambda e: e["val"].__setitem__(0, "text"), "binary"),
    ("forged indices", lambda e: e.update(idx=[b"\x00"]), "keys"),
    ("top-k format", lambda e: e.update(format="psyche-distro/2"), "format"),
    ("other seed", lambda e: e.update(seed=12), "seed 12"),
    ("text seed", lambda e: e.update(seed="11"), "seed"),
    ("missing seed", lambda e: e.pop("seed"), "keys"),
    ("other k", lambda e: e.update(topk=6), "topk=6"),
    ("other layout", lambda e: e.update(layout=b"\x00" * 16), "model layout"),
    ("short ef", lambda e: e.update(ef=b"\x01" * 31), "ef must be 32"),
])
def test_tampered_payloads_are_rejected(name: str, fn, message: str) -> None:
    with pytest.raises(ResultError, match=message):
        decode_result(_tamper(_bytes(), fn), _layout(), CFG)


def test_padding_nan_sender_and_step_checks_are_kept() -> None:
    layout = _layout()
    pos = next(i for i, lay in enumerate(layout.values()) if (lay.plan.num_blocks * lay.k) % 8)
    with pytest.raises(ResultError, match="padding bits"):
        decode_result(_tamper(_bytes(), lambda e: e["val"].__setitem__(pos, e["val"][pos][:-1] + b"\xff")),
                      layout, CFG)
    nan = _tamper(_bytes(False), lambda e: e["val"].__setitem__(0, b"\xc0\x7f" * (len(e["val"][0]) // 2)))
    with pytest.raises(ResultError, match="NaN"):
        decode_result(nan, layout, CFG)
    with pytest.raises(ResultError, match="not to its announcer"):
        decode_result(_bytes(), layout, CFG, expected_sender=b"\x08" * 32)
    with pytest.raises(ResultError, match="expected step 8"):
        decode_result(_bytes(), layout, CFG, expected_step=8)


def test_modes_do_not_decode_each_other() -> None:
    top = DistroConfig(chunk=16, topk=5)
    with pytest.raises(ResultError, match="keys"):
        decode_result(_bytes(), _layout(), top)
    with pytest.raises(ValueError, match="not the shared draw"):  # a top-k result cannot pose as shared
        model = build_model(llama_config(), seed=5)
        distro = Distro(model, top)
        model.loss(pydoc_samples()[:4]).backward()
        encode_result(distro.generate(7, 1e-3), _layout(), CFG, sender=SENDER)


def test_config_rejects_unknown_selection_and_bad_seed() -> None:
    with pytest.raises(ValueError, match="selection"):
        DistroConfig(selection="random")
    with pytest.raises(ValueError, match="seed"):
        DistroConfig(seed=-1)


def test_trainers_stay_bit_identical_through_the_wire() -> None:
    """Three trainers with their own shards, results through the codec, applied one step late."""
    base = build_model(llama_config(), seed=1)
    ts = [(m := copy.deepcopy(base), Distro(m, CFG)) for _ in range(3)]
    layout, samples = result_layout(base, CFG), pydoc_samples()
    for step in range(3):
        wire = []
        for i, (m, d) in enumerate(ts):
            m.zero_grad(set_to_none=True)
            m.loss(samples[4 * (3 * step + i):4 * (3 * step + i) + 4]).backward()
            wire.append(encode_result(d.generate(step, 1e-3), layout, CFG, sender=bytes([i]) * 32))
        for _, d in ts:
            assert d.apply([decode_result(w, layout, CFG, expected_step=step) for w in wire], 1e-3)
    ref = ts[0][0].state_dict()
    assert all(torch.equal(ref[k], m.state_dict()[k]) for m, _ in ts[1:] for k in ref)
    assert any(not torch.equal(ref[k], base.state_dict()[k]) for k in ref)


def test_simulated_results_send_the_shared_draw() -> None:
    from client.training.simulated import simulated_result

    layout = _layout()
    result = simulated_result(layout, CFG, "run", 4, SENDER)
    for n, lay in layout.items():
        assert torch.equal(result.params[n].idx, shared_indices(CFG.seed, 4, n, lay.plan, lay.k)), n
    decode_result(encode_result(result, layout, CFG, sender=SENDER), layout, CFG, expected_step=4)


@pytest.mark.parametrize("chunk", [8, 16, 32])
@pytest.mark.parametrize("arch", ["llama", "deepseek"])
def test_the_error_feedback_state_commits_at_every_block_size(arch: str, chunk: int) -> None:
    """The commitment splits the state into DCT blocks with the chosen coefficients: where k covers a whole
    block (a norm vector's 1 x chunk blocks here) the shared selection's indices are a broadcast view, which
    crashed the commitment (the deepseek bench at 56 of 32x32), and every leaf must equal the one a verifier
    derives for it (`leaves_of`)."""
    from client.training.ef_parts import leaves_of, split

    model = build_model(llama_config() if arch == "llama" else mla_config(), seed=2)
    distro = Distro(model, DistroConfig(chunk=chunk, topk=2 * chunk, decay=0.95, selection="shared", seed=5))
    for step in range(2):
        model.loss(pydoc_samples()[4 * step:4 * step + 4]).backward()
        res = distro.generate(step, 1e-3)
        model.zero_grad(set_to_none=True)
        assert res.state is not None and res.state.sent == (step > 0)
    parts = split(distro)
    drawn = list(range(0, len(parts.leaves), 7))
    assert {i: bytes(parts.leaves[i]) for i in drawn} == leaves_of(distro, drawn)
