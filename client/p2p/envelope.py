"""Signed gossip messages: a msgpack body (run, step, nonce, sender, kind, payload) and its ed25519 signature.

The id of a message is the sha256 of its signed body, so every peer names a message the same way and an
echo of the same message is recognised whoever forwards it. Verification is pure: `open_envelope`
raises `Dropped` with a reason code; the gossip layer counts reasons and applies the stateful checks
(duplicates, replays, step window, membership).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import msgpack

from client.p2p.identity import P2PIdentity, verify_signature

VERSION = 1
DEFAULT_MAX_MESSAGE = 64 * 1024

_last_nonce = 0


class Dropped(Exception):
    """A message rejected for `reason` (one of the gossip drop-reason codes)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Message:
    run: str
    step: int
    nonce: int
    sender: bytes
    kind: str
    payload: bytes
    id: bytes
    wire: bytes


def fresh_nonce() -> int:
    """Unique per process and strictly increasing: nanoseconds since the epoch, bumped on ties (fits u64)."""
    global _last_nonce
    _last_nonce = max(_last_nonce + 1, time.time_ns())
    return _last_nonce


def seal(identity: P2PIdentity, run: str, step: int, kind: str, payload: bytes, nonce: int | None = None) -> Message:
    body = msgpack.packb([VERSION, run, step, fresh_nonce() if nonce is None else nonce, identity.public,
                          kind, payload], use_bin_type=True)
    wire = msgpack.packb([body, identity.sign(body)], use_bin_type=True)
    return open_envelope(wire, len(wire))


def peek_id(wire: bytes, max_size: int = DEFAULT_MAX_MESSAGE) -> bytes:
    """The id (sha256 of the signed body) of a well-shaped envelope, WITHOUT checking its signature: cheap
    enough to recognise a duplicate before paying for a verification. Raises `Dropped` like `open_envelope`
    for oversized, malformed and unsigned wires. An id from here names a message only once a copy with that
    id has verified: never record it as seen on its own."""
    return hashlib.sha256(_split(wire, max_size)[0]).digest()


def _split(wire: bytes, max_size: int) -> tuple[bytes, bytes]:
    if len(wire) > max_size:
        raise Dropped("oversized", f"{len(wire)} bytes > {max_size}")
    try:
        outer = msgpack.unpackb(wire, raw=False, max_bin_len=max_size, max_str_len=max_size)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise Dropped("malformed", f"not msgpack: {e}") from None
    if not isinstance(outer, list) or not outer or not isinstance(outer[0], bytes):
        raise Dropped("malformed", "expected [body, signature]")
    if len(outer) < 2 or not isinstance(outer[1], bytes) or not outer[1]:
        raise Dropped("unsigned", "no signature")
    if len(outer) != 2:
        raise Dropped("malformed", "extra fields after the signature")
    return outer[0], outer[1]


def open_envelope(wire: bytes, max_size: int = DEFAULT_MAX_MESSAGE) -> Message:
    """Parse and verify the signature; no state is consulted here."""
    body, signature = _split(wire, max_size)
    try:
        fields = msgpack.unpackb(body, raw=False)
        version, run, step, nonce, sender, kind, payload = fields
    except Exception:
        raise Dropped("malformed", "body is not [version, run, step, nonce, sender, kind, payload]") from None
    if version != VERSION or not isinstance(run, str) or not isinstance(kind, str) or not isinstance(payload, bytes) \
            or not isinstance(sender, bytes) or len(sender) != 32:
        raise Dropped("malformed", "bad field types or version")
    for name, v in (("step", step), ("nonce", nonce)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise Dropped("malformed", f"{name} must be a non-negative integer")
    if not verify_signature(sender, body, signature):
        raise Dropped("forged", f"signature does not verify for sender {sender.hex()[:10]}")
    return Message(run, step, nonce, sender, kind, payload, hashlib.sha256(body).digest(), wire)
