"""P2P identity, signed envelopes and the FFI write patch: no endpoint needed for these."""
from __future__ import annotations

import ctypes
import json
import os

import msgpack
import pytest
from iroh import iroh_ffi
from solders.keypair import Keypair

from client.p2p import ffi_patch
from client.p2p.envelope import Dropped, open_envelope, seal
from client.p2p.identity import IdentityError, P2PIdentity, verify_signature


def test_same_seed_same_key_for_pynacl_iroh_and_solana(tmp_path) -> None:
    kp = Keypair()
    path = tmp_path / "p2p.json"
    path.write_text(json.dumps(list(bytes(kp))))
    ident = P2PIdentity.from_keypair_file(path)
    assert ident.public == bytes(kp.pubkey())
    assert P2PIdentity(ident.seed).public == ident.public


def test_bad_seeds_are_rejected(tmp_path) -> None:
    with pytest.raises(IdentityError, match="32-byte"):
        P2PIdentity(b"short")
    (tmp_path / "bad.json").write_text("[1, 2, 3]")
    with pytest.raises(Exception, match="bad.json"):
        P2PIdentity.from_keypair_file(tmp_path / "bad.json")


def test_signatures_verify_and_tampering_fails() -> None:
    ident = P2PIdentity.generate()
    sig = ident.sign(b"hello")
    assert verify_signature(ident.public, b"hello", sig)
    assert not verify_signature(ident.public, b"hellO", sig)
    assert not verify_signature(P2PIdentity.generate().public, b"hello", sig)
    assert not verify_signature(ident.public, b"hello", sig[:-1])


def test_envelope_round_trip_and_id() -> None:
    ident = P2PIdentity.generate()
    m = seal(ident, "run", 3, "result", b"payload")
    again = open_envelope(m.wire)
    assert (again.run, again.step, again.kind, again.payload, again.sender) == ("run", 3, "result", b"payload",
                                                                               ident.public)
    assert again.id == m.id and len(m.id) == 32
    assert seal(ident, "run", 3, "result", b"payload").nonce != m.nonce


def _rewrap(wire: bytes, fn) -> bytes:
    outer = msgpack.unpackb(wire, raw=False)
    return msgpack.packb(fn(outer), use_bin_type=True)


@pytest.mark.parametrize(("fn", "reason"), [
    (lambda o: [o[0]], "unsigned"),
    (lambda o: [o[0], b""], "unsigned"),
    (lambda o: [o[0], bytes(64)], "forged"),
    (lambda o: [o[0][:-1] + bytes([o[0][-1] ^ 1]), o[1]], "forged"),
    (lambda o: [o[0], o[1], b"x"], "malformed"),
    (lambda o: {"a": 1}, "malformed"),
    (lambda o: [msgpack.packb([1, "run", -1, 1, bytes(32), "k", b""]), o[1]], "malformed"),
])
def test_bad_envelopes_are_dropped_with_a_reason(fn, reason: str) -> None:
    wire = seal(P2PIdentity.generate(), "run", 1, "k", b"x").wire
    with pytest.raises(Dropped) as exc:
        open_envelope(_rewrap(wire, fn))
    assert exc.value.reason == reason


def test_oversized_and_garbage() -> None:
    wire = seal(P2PIdentity.generate(), "run", 1, "k", b"x" * 5000).wire
    with pytest.raises(Dropped, match="oversized"):
        open_envelope(wire, max_size=1000)
    with pytest.raises(Dropped, match="malformed"):
        open_envelope(b"\xc1\xc1")


def _lowered(data: bytes) -> bytes:
    builder = iroh_ffi._UniffiRustBufferBuilder()
    builder.write(data)
    rbuf = builder.finalize()
    try:
        return ctypes.string_at(rbuf.data, rbuf.len)
    finally:
        rbuf.free()


def test_ffi_patch_writes_the_same_bytes_as_the_stock_writer() -> None:
    assert ffi_patch.is_applied()
    stock = ffi_patch.original_write()
    for size in (0, 1, 15, 16, 17, 4099):
        data = os.urandom(size)
        builder = iroh_ffi._UniffiRustBufferBuilder()
        stock(builder, data)
        rbuf = builder.finalize()
        expected = ctypes.string_at(rbuf.data, rbuf.len)
        rbuf.free()
        assert _lowered(data) == expected == data
    assert _lowered(bytearray(b"abc")) == b"abc" and _lowered(memoryview(b"xyz")) == b"xyz"
