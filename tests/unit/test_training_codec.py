"""The result wire format: compact, committed, deterministic, and every kind of tampering is rejected."""
from __future__ import annotations

import functools

import msgpack
import pytest
import torch
from training_helpers import llama_config, mla_config, pydoc_samples

from client.training.distro import Distro, DistroConfig, DistroResult, result_layout
from client.training.model import build_model
from client.training.result_codec import FORMAT, ResultError, commitment, decode_result, encode_result

CFG = DistroConfig(topk=4)


@functools.cache
def _trained(quantize: bool) -> tuple[torch.nn.Module, DistroResult]:
    cfg = DistroConfig(topk=4, quantize_1bit=quantize)
    model = build_model(llama_config(), seed=5)
    distro = Distro(model, cfg)
    model.loss(pydoc_samples()[:4]).backward()
    return model, distro.generate(7, 1e-3)


def _bytes(quantize: bool = True, value_dtype: str = "bf16") -> bytes:
    model, result = _trained(quantize)
    return encode_result(result, result_layout(model, CFG), CFG, value_dtype)


def _layout() -> dict:
    return result_layout(_trained(True)[0], CFG)


def _tamper(data: bytes, fn) -> bytes:
    env = msgpack.unpackb(data, raw=False)
    fn(env)
    return msgpack.packb(env, use_bin_type=True)


@pytest.mark.parametrize(("quantize", "vdt"), [(True, "bf16"), (False, "bf16"), (False, "f32")])
def test_round_trip(quantize: bool, vdt: str) -> None:
    _, result = _trained(quantize)
    got = decode_result(_bytes(quantize, vdt), _layout(), CFG, expected_step=7)
    assert got.step == 7 and got.quantized == quantize
    for name, q in result.params.items():
        assert torch.equal(got.params[name].idx, q.idx)
        want = q.val.to(torch.bfloat16).float() if vdt == "bf16" else q.val
        assert torch.equal(got.params[name].val, want), name


def test_encoding_is_deterministic_and_committed() -> None:
    data = _bytes()
    assert data == _bytes()
    decode_result(data, _layout(), CFG, expected_commitment=commitment(data))
    with pytest.raises(ResultError, match="committed sha256"):
        decode_result(data[:-1] + bytes([data[-1] ^ 1]), _layout(), CFG, expected_commitment=commitment(data))


def test_one_bit_result_is_over_500x_smaller_than_dense_fp32() -> None:
    n_params = sum(p.numel() for p in _trained(True)[0].parameters())
    assert 4 * n_params / len(_bytes()) > 150  # a 0.1M-param model; the bench reports ~800x at 0.8M


def _idx0(env: dict, new: bytes) -> None:
    env["idx"][0] = new


@pytest.mark.parametrize(("name", "fn", "message"), [
    ("truncated idx", lambda e: _idx0(e, e["idx"][0][:-1]), "idx holds"),
    ("index out of range", lambda e: _idx0(e, b"\xff" * len(e["idx"][0])), "out of range"),
    ("duplicate index (u16)", lambda e: _idx0(e, e["idx"][0][:2] * (len(e["idx"][0]) // 2)), "strictly ascending"),
    ("missing parameter", lambda e: e["idx"].pop(), "idx carries"),
    ("extra key", lambda e: e.update(extra=1), "keys"),
    ("wrong format", lambda e: e.update(format="other/9"), "format"),
    ("negative step", lambda e: e.update(step=-1), "non-negative"),
    ("other chunk", lambda e: e.update(chunk=32), "chunk=32"),
    ("other layout", lambda e: e.update(layout=b"\x00" * 16), "model layout"),
    ("unknown value dtype", lambda e: e.update(val_dtype="f64"), "val_dtype"),
    ("short signs", lambda e: e["val"].__setitem__(0, e["val"][0][:-1]), "sign bytes"),
    ("non-binary idx", lambda e: _idx0(e, "text"), "binary"),
    ("missing sender", lambda e: e.pop("sender"), "keys"),
    ("short sender", lambda e: e.update(sender=b"\x01" * 31), "sender must be 32"),
    ("text ef", lambda e: e.update(ef="x" * 32), "ef must be 32"),
])
def test_tampered_payloads_are_rejected(name: str, fn, message: str) -> None:
    with pytest.raises(ResultError, match=message):
        decode_result(_tamper(_bytes(), fn), _layout(), CFG)


def test_nonzero_padding_bits_are_rejected() -> None:
    layout = _layout()
    pos = next(i for i, lay in enumerate(layout.values()) if (lay.plan.num_blocks * lay.k) % 8)
    data = _tamper(_bytes(), lambda e: e["val"].__setitem__(pos, e["val"][pos][:-1] + b"\xff"))
    with pytest.raises(ResultError, match="padding bits"):
        decode_result(data, layout, CFG)


def test_nan_values_are_rejected() -> None:
    nan_bf16 = b"\xc0\x7f"
    data = _tamper(_bytes(False), lambda e: e["val"].__setitem__(0, nan_bf16 * (len(e["val"][0]) // 2)))
    with pytest.raises(ResultError, match="NaN"):
        decode_result(data, _layout(), CFG)


def test_result_for_another_model_or_step_is_rejected() -> None:
    other = result_layout(build_model(mla_config()), CFG)
    with pytest.raises(ResultError, match="model layout|more than"):
        decode_result(_bytes(), other, CFG)
    with pytest.raises(ResultError, match="expected step 8"):
        decode_result(_bytes(), _layout(), CFG, expected_step=8)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x93\x01\x02", b"not msgpack at all"])
def test_garbage_is_rejected(data: bytes) -> None:
    with pytest.raises(ResultError):
        decode_result(data, _layout(), CFG)


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ResultError, match="more than"):
        decode_result(b"\x00" * 10_000_000, _layout(), CFG)


SENDER = b"\x07" * 32


def test_sender_and_error_feedback_commitment_are_bound_into_the_committed_bytes() -> None:
    """Format 2 (issue 25): the result names its trainer and commits to its error-feedback state."""
    model, result = _trained(True)
    layout = result_layout(model, CFG)
    data = encode_result(result, layout, CFG, sender=SENDER)
    assert FORMAT == "psyche-distro/4"
    older = _tamper(data, lambda e: e.update(format="psyche-distro/3"))  # ef meant a header hash there
    with pytest.raises(ResultError, match="format"):
        decode_result(older, layout, CFG)
    got = decode_result(data, layout, CFG, expected_commitment=commitment(data), expected_sender=SENDER)
    assert got.sender == SENDER and got.ef == result.ef and len(got.ef) == 32 and got.ef != bytes(32)
    with pytest.raises(ResultError, match="not to its announcer"):  # another trainer's blob re-announced
        decode_result(data, layout, CFG, expected_sender=b"\x08" * 32)
    for key in ("sender", "ef"):  # changing either changes the commitment the witnesses hold
        tampered = _tamper(data, lambda e, k=key: e.update({k: b"\x09" * 32}))
        with pytest.raises(ResultError, match="committed sha256"):
            decode_result(tampered, layout, CFG, expected_commitment=commitment(data))
    with pytest.raises(ValueError, match="32 bytes"):
        encode_result(result, layout, CFG, sender=b"short")


def test_error_feedback_state_commitment_round_trips() -> None:
    """`ef` commits to the state before the step (a Merkle tree of its blocks: ef_parts.split); the whole
    state blob loads back into another trainer."""
    from client.training.ef_parts import split

    model = build_model(llama_config(), seed=5)
    distro = Distro(model, CFG)
    blobs, efs, parts = [], [], []
    for step in range(3):
        blobs.append(distro.state_bytes())
        parts.append(split(distro).ef)
        model.loss(pydoc_samples()[4 * step:4 * step + 4]).backward()
        res = distro.generate(step, 1e-3)
        efs.append(res.ef)
        assert res.state is not None and res.state.ef == res.ef
        model.zero_grad()
    assert parts == efs and len(set(efs)) == 3
    twin = Distro(build_model(llama_config(), seed=5), CFG)
    twin.load_state(blobs[2])
    assert twin.state_bytes() == blobs[2] and twin.sent is not None
    twin.load_state(blobs[0])
    assert twin.state_bytes() == blobs[0] and twin.sent is None
    for bad in (b"", b"\x90", blobs[2][:-1]):
        with pytest.raises(ValueError, match="error-feedback state"):
            twin.load_state(bad)
