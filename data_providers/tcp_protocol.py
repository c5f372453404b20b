"""Wire format of the TCP data service: 4-byte big-endian length + one msgpack map per frame.

Every frame is size-checked before it is read and every field type-checked after it is decoded, so a
peer sending garbage or a huge length gets a `ProtocolError` naming that peer (and the server goes on
serving others). Messages carry a `type` field:

  server -> client  challenge {nonce}        welcome {num_samples, seq_len}
                    data {start, end, seq_len, tokens: int32 LE bytes}
                    rejected {start, end, reason, detail}     error {detail}
  client -> server  auth {pubkey, signature}  request {start, end}

The client signs `AUTH_DOMAIN + nonce` with its ed25519 (P2P) key, proving it owns the key the
coordinator lists; the domain prefix keeps the signature useless for anything else.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any

import msgpack
import numpy as np

from data_providers.types import BatchId, RemoteDataError

PROTOCOL_VERSION = 1
AUTH_DOMAIN = b"psyche-data-tcp/v1 challenge:"
NONCE_LEN = 32
MAX_REQUEST_FRAME = 64 * 1024          # what a server accepts: client messages are tiny
MAX_RESPONSE_FRAME = 64 * 1024 * 1024  # what a client accepts (as Psyche's LengthDelimitedCodec)

REJECT_NOT_IN_ROUND = "not_in_this_round"
REJECT_WRONG_BATCH = "wrong_batch_for_round"
REJECT_OUT_OF_RANGE = "index_out_of_range"
REJECT_SERVER_DATA = "server_data_error"  # the server's own files failed a check while reading


class ProtocolError(RemoteDataError):
    """A peer broke the protocol (bad frame, bad msgpack, missing or mistyped field, forged signature)."""


class RejectedError(RemoteDataError):
    """The server refused a request on policy grounds; `reason` is one of the REJECT_* codes."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_frame(msg: dict[str, Any], max_size: int = MAX_RESPONSE_FRAME) -> bytes:
    body = msgpack.packb(msg, use_bin_type=True)
    if len(body) > max_size:
        raise ValueError(f"frame of {len(body)} bytes exceeds the {max_size}-byte limit")
    return struct.pack(">I", len(body)) + body


async def read_frame(reader: asyncio.StreamReader, max_size: int, peer: str) -> dict[str, Any] | None:
    """The next message, or None on a clean EOF between frames."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise ProtocolError(f"peer {peer}: connection closed inside a frame header") from e
    (length,) = struct.unpack(">I", head)
    if length > max_size:
        raise ProtocolError(f"peer {peer}: oversized frame of {length} bytes (limit {max_size})")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(f"peer {peer}: frame truncated ({len(e.partial)} of {length} bytes)") from e
    try:
        msg = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise ProtocolError(f"peer {peer}: frame is not valid msgpack ({type(e).__name__})") from e
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError(f"peer {peer}: frame is not a message map with a 'type' field")
    return msg


def field(msg: dict[str, Any], name: str, kind: type, peer: str, size: int | None = None) -> Any:
    v = msg.get(name)
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise ProtocolError(f"peer {peer}: {msg.get('type')} message field {name!r} missing or not"
                            f" {kind.__name__}")
    if size is not None and len(v) != size:
        raise ProtocolError(f"peer {peer}: {msg['type']} field {name!r} must be {size} bytes, got {len(v)}")
    return v


def expect_type(msg: dict[str, Any] | None, allowed: tuple[str, ...], peer: str) -> dict[str, Any]:
    if msg is None:
        raise ProtocolError(f"peer {peer}: connection closed while waiting for {'/'.join(allowed)}")
    if msg["type"] not in allowed:
        raise ProtocolError(f"peer {peer}: unexpected {msg['type']!r} message (wanted {'/'.join(allowed)})")
    return msg


def batch_of(msg: dict[str, Any], peer: str) -> BatchId:
    start, end = field(msg, "start", int, peer), field(msg, "end", int, peer)
    try:
        return BatchId(start, end)
    except ValueError as e:
        raise ProtocolError(f"peer {peer}: bad batch in {msg['type']} message: {e}") from e


def data_message(batch: BatchId, tokens: np.ndarray) -> dict[str, Any]:
    rows, seq_len = tokens.shape
    return {"type": "data", "start": batch.start, "end": batch.end, "seq_len": seq_len,
            "tokens": np.ascontiguousarray(tokens, dtype="<i4").tobytes()}


def tokens_of(msg: dict[str, Any], batch: BatchId, peer: str) -> np.ndarray:
    """Decode a data message, checking it answers `batch` with exactly len(batch) x seq_len tokens."""
    got = batch_of(msg, peer)
    if got != batch:
        raise ProtocolError(f"peer {peer}: asked for {batch}, got data for {got}")
    seq_len = field(msg, "seq_len", int, peer)
    raw = field(msg, "tokens", bytes, peer)
    if seq_len < 1 or len(raw) != len(batch) * seq_len * 4:
        raise ProtocolError(f"peer {peer}: wrong-shape result for {batch}: {len(raw)} bytes for"
                            f" {len(batch)} samples of {seq_len} int32 tokens")
    return np.frombuffer(raw, dtype="<i4").reshape(len(batch), seq_len)
