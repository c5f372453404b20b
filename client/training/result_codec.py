"""DisTrO results on the wire: a msgpack envelope around raw packed arrays, with a sha256 commitment.

The envelope stays small because names and shapes do not travel: both sides derive the parameter order,
block shapes and k from the model and the run's chunk/top-k, and the sender includes a 16-byte hash of
that layout. A result from another model, another config or another parameter order fails on that hash.

A result comes from an untrusted peer, and Psyche does not check its shapes. Here `decode_result`
checks everything before any tensor is built: envelope keys and types, the run settings and layout
hash, each array's exact byte length, index range and canonical order (ascending, no duplicates),
finite values and zero padding bits. Any failure raises `ResultError` naming the parameter and field.

Format 2 binds two 32-byte fields into the committed bytes (issue 25): `sender`, the P2P key of the
trainer the result belongs to (a peer re-announcing another trainer's blob fails `expected_sender`), and
`ef`, the commitment to the trainer's DisTrO error-feedback state before the step, which a verifier checks
the state it is later served against before recomputing the result. Format 3: `ef` was the sha256 of the
state's header in parts. Format 4: `ef` commits to a Merkle tree of the state's DCT blocks (and, with the
look-ahead, to δ's sign map: client/training/ef_parts.py), so a verifier opens a few blocks with a proof; the
bytes are laid out as in 3, the format string changes so that clients of the two meanings refuse each other's
results instead of judging them.

The shared selection (issue 26, `DistroConfig.selection == "shared"`) has its own format, FORMAT_SHARED:
no `idx` arrays (every client derives the indices from the run seed, the step and the parameter name), a
`seed` field checked like chunk and top-k, and otherwise the same checks (`ef` as in format 3). Each `val`
array's exact length follows from the layout alone; the receiver rebuilds the indices for the envelope's step.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import torch

from client.training.compress import (
    SparseCoeffs,
    index_dtype,
    pack_signs,
    packed_sign_bytes,
    shared_indices,
    unpack_signs_np,
)
from client.training.distro import DistroConfig, DistroResult, ParamLayout

FORMAT = "psyche-distro/4"
VALUE_BYTES = {"sign1": 0, "bf16": 2, "f32": 4}
ENVELOPE_KEYS = {"format", "step", "chunk", "topk", "layout", "val_dtype", "idx", "val", "sender", "ef"}
FORMAT_SHARED = "psyche-distro-shared/2"
ENVELOPE_KEYS_SHARED = (ENVELOPE_KEYS - {"idx"}) | {"seed"}


def _shape(cfg: DistroConfig) -> tuple[str, set[str]]:
    """The format name and exact envelope keys of the run's selection mode."""
    return (FORMAT_SHARED, ENVELOPE_KEYS_SHARED) if cfg.selection == "shared" else (FORMAT, ENVELOPE_KEYS)


class ResultError(ValueError):
    """A serialized result that does not fit the local model; the message names the offending field."""


def commitment(data: bytes) -> bytes:
    """What a trainer commits to (and witnesses check) before peers download the result itself."""
    return hashlib.sha256(data).digest()


def layout_hash(layout: dict[str, ParamLayout]) -> bytes:
    """Binds a result to parameter names, order, shapes, block plans and k."""
    text = ";".join(f"{n}:{list(lay.plan.shape)}:{lay.plan.h}x{lay.plan.w}:{lay.k}" for n, lay in layout.items())
    return hashlib.sha256(text.encode()).digest()[:16]


def _values_bytes(val: torch.Tensor, dtype: str) -> bytes:
    if dtype == "sign1":
        return pack_signs(val)
    if dtype == "bf16":
        return val.to(torch.bfloat16).contiguous().view(torch.int16).numpy().tobytes()
    return val.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()


def encode_result(result: DistroResult, layout: dict[str, ParamLayout], cfg: DistroConfig,
                  value_dtype: str = "bf16", sender: bytes | None = None) -> bytes:
    """`value_dtype` applies to unquantized results; a 1-bit result always travels as packed signs.
    `sender`: the P2P key the result is bound to (default: `result.sender`)."""
    sender = result.sender if sender is None else sender
    if len(sender) != 32 or len(result.ef) != 32:
        raise ValueError("sender and ef must be 32 bytes")
    if value_dtype not in ("bf16", "f32"):
        raise ValueError(f"value_dtype must be bf16 or f32, got {value_dtype!r}")
    vdt = "sign1" if result.quantized else value_dtype
    shared = cfg.selection == "shared"
    idx, val = [], []
    for name, lay in layout.items():
        q = result.params[name]
        if shared:
            if not torch.equal(q.idx.cpu(), shared_indices(cfg.seed, result.step, name, lay.plan, lay.k)):
                raise ValueError(f"parameter {name}: indices are not the shared draw of step {result.step}")
        else:
            idx.append(q.idx.cpu().numpy().astype(index_dtype(lay.plan.totalk)).tobytes())
        val.append(_values_bytes(q.val.cpu(), vdt))
    env = {"format": _shape(cfg)[0], "step": result.step, "chunk": cfg.chunk, "topk": cfg.topk,
           "layout": layout_hash(layout), "val_dtype": vdt, "val": val,
           "sender": bytes(sender), "ef": bytes(result.ef)}
    if shared:
        env["seed"] = cfg.seed
    else:
        env["idx"] = idx
    return msgpack.packb(env, use_bin_type=True)


def max_encoded_size(layout: dict[str, ParamLayout]) -> int:
    """An upper bound on a valid result's size (f32 values), used to refuse oversized payloads unparsed."""
    total = 512 + 2 * 34 + 9
    for lay in layout.values():
        n = lay.plan.num_blocks * lay.k
        total += 16 + n * (index_dtype(lay.plan.totalk).itemsize + 4)
    return total


@dataclass(frozen=True)
class _Facts:
    """What decoding needs from a layout, worked out once per layout instead of once per peer result."""
    limit: int
    layout_hash: bytes
    params: tuple[tuple[ParamLayout, int, np.dtype, tuple[int, ...]], ...]  # layout, n, index dtype, blocks


_FACTS: dict[int, tuple[dict[str, ParamLayout], _Facts]] = {}


def _facts(layout: dict[str, ParamLayout]) -> _Facts:
    """Cached by the layout object (kept referenced, so its id is not reused; layouts are never mutated)."""
    hit = _FACTS.get(id(layout))
    if hit is not None and hit[0] is layout:
        return hit[1]
    facts = _Facts(max_encoded_size(layout), layout_hash(layout),
                   tuple((lay, lay.plan.num_blocks * lay.k, index_dtype(lay.plan.totalk), lay.plan.blocks_shape)
                         for lay in layout.values()))
    if len(_FACTS) >= 1024:  # tests build many short-lived layouts; a client holds one or two
        _FACTS.clear()
    _FACTS[id(layout)] = (layout, facts)
    return facts


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _decode_idx(raw_idx: Any, lay: ParamLayout, n: int, idt: np.dtype, blocks: tuple[int, ...]) -> np.ndarray:
    """A top-k result's indices: exact length, in range, strictly ascending within each block."""
    where = f"parameter {lay.name}"
    if not isinstance(raw_idx, bytes):
        raise ResultError(f"{where}: idx and val must be binary")
    if len(raw_idx) != n * idt.itemsize:
        raise ResultError(f"{where}: idx holds {len(raw_idx)} bytes, expected {n * idt.itemsize}")
    idx = np.frombuffer(raw_idx, dtype=idt).astype(np.int64).reshape(*blocks, lay.k)  # astype: a fresh copy
    if idx.size and int(idx.max()) >= lay.plan.totalk:
        raise ResultError(f"{where}: index {int(idx.max())} out of range for blocks of {lay.plan.totalk}")
    if lay.k > 1 and not bool(np.all(np.diff(idx, axis=-1) > 0)):
        raise ResultError(f"{where}: indices within a block must be strictly ascending (no duplicates)")
    return idx


def _decode_param(idx: np.ndarray, raw_val: Any, lay: ParamLayout, n: int, blocks: tuple[int, ...],
                  vdt: str) -> SparseCoeffs:
    """Values of one parameter for the given (checked or derived) indices `[*blocks, k]`."""
    where = f"parameter {lay.name}"
    if not isinstance(raw_val, bytes):
        raise ResultError(f"{where}: idx and val must be binary")
    if vdt == "sign1":
        if len(raw_val) != packed_sign_bytes(n):
            raise ResultError(f"{where}: val holds {len(raw_val)} sign bytes, expected {packed_sign_bytes(n)}")
        if n % 8 and raw_val[-1] >> (n % 8):
            raise ResultError(f"{where}: padding bits after the last sign are not zero")
        val = unpack_signs_np(raw_val, n)
    else:
        if len(raw_val) != n * VALUE_BYTES[vdt]:
            raise ResultError(f"{where}: val holds {len(raw_val)} bytes, expected {n * VALUE_BYTES[vdt]}")
        if vdt == "bf16":
            val = torch.from_numpy(np.frombuffer(raw_val, dtype="<i2").copy()).view(torch.bfloat16).float().numpy()
        else:
            val = np.frombuffer(raw_val, dtype="<f4").copy()
        if not bool(np.isfinite(val).all()):
            raise ResultError(f"{where}: values contain NaN or infinity")
    return SparseCoeffs(torch.from_numpy(idx), torch.from_numpy(val.reshape(*blocks, lay.k)))


def decode_result(data: bytes, layout: dict[str, ParamLayout], cfg: DistroConfig,
                  expected_commitment: bytes | None = None, expected_step: int | None = None,
                  expected_sender: bytes | None = None) -> DistroResult:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ResultError(f"result must be bytes, got {type(data).__name__}")
    facts = _facts(layout)
    limit = facts.limit
    if len(data) > limit:
        raise ResultError(f"result is {len(data)} bytes, more than the {limit} any valid result can take")
    if expected_commitment is not None and commitment(bytes(data)) != expected_commitment:
        raise ResultError("result bytes do not match the committed sha256")
    try:
        env = msgpack.unpackb(data, raw=False, strict_map_key=True, max_bin_len=limit)
    except Exception as e:  # msgpack raises several unrelated exception types for malformed input
        raise ResultError(f"result is not a valid msgpack envelope: {e}") from None
    fmt, keys = _shape(cfg)
    if not isinstance(env, dict) or set(env) != keys:
        got = sorted(map(str, env)) if isinstance(env, dict) else type(env).__name__
        raise ResultError(f"result envelope has keys {got}, expected {sorted(keys)}")
    if env["format"] != fmt:
        raise ResultError(f"result format {env['format']!r}, expected {fmt!r}")
    if not _is_int(env["step"]) or env["step"] < 0:
        raise ResultError(f"result step {env['step']!r} is not a non-negative integer")
    if expected_step is not None and env["step"] != expected_step:
        raise ResultError(f"result is for step {env['step']}, expected step {expected_step}")
    for key in ("sender", "ef"):
        if not isinstance(env[key], bytes) or len(env[key]) != 32:
            raise ResultError(f"result {key} must be 32 bytes")
    if expected_sender is not None and env["sender"] != bytes(expected_sender):
        raise ResultError(f"result is bound to sender {env['sender'].hex()[:16]}, not to its announcer"
                          f" {bytes(expected_sender).hex()[:16]}")
    if env["chunk"] != cfg.chunk or env["topk"] != cfg.topk:
        raise ResultError(f"sender used chunk={env['chunk']!r} topk={env['topk']!r},"
                          f" this run uses chunk={cfg.chunk} topk={cfg.topk}")
    if fmt == FORMAT_SHARED and (not _is_int(env["seed"]) or env["seed"] != cfg.seed):
        raise ResultError(f"sender drew with seed {env['seed']!r}, this run's seed is {cfg.seed}")
    if env["layout"] != facts.layout_hash:
        raise ResultError("result was made for a different model layout (parameter names, shapes or order)")
    vdt = env["val_dtype"]
    if vdt not in VALUE_BYTES:
        raise ResultError(f"result val_dtype {vdt!r} is not one of {', '.join(VALUE_BYTES)}")
    for key in ("idx", "val") if fmt == FORMAT else ("val",):
        if not isinstance(env[key], list) or len(env[key]) != len(layout):
            got = len(env[key]) if isinstance(env[key], list) else type(env[key]).__name__
            raise ResultError(f"result {key} carries {got} arrays, the local model has {len(layout)} parameters")
    if fmt == FORMAT:
        idx = [_decode_idx(i, *p) for i, p in zip(env["idx"], facts.params, strict=True)]
    else:  # derived, not received; a copy: the shared draw's cached tensor must not be handed out
        idx = [shared_indices(cfg.seed, env["step"], lay.name, lay.plan, lay.k).numpy().copy()
               for lay in layout.values()]
    params = {p[0].name: _decode_param(i, v, p[0], p[1], p[3], vdt)
              for i, v, p in zip(idx, env["val"], facts.params, strict=True)}
    return DistroResult(env["step"], params, vdt == "sign1", ef=env["ef"], sender=env["sender"])
