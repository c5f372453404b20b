"""The commitment's hashing in C (merkle.c), loaded when scripts/setup.sh could build it.

Every trainer commits to its error-feedback state every round (`ef_parts.split`): on the demo's model 1,448
leaf hashes and 1,447 node hashes, ~2 ms of Python calls over a ~0.8 ms hashing floor. The C loop hashes the
same bytes, so a client with it and one without agree on every root; without a compiler (or with
PSYCHE_NATIVE=0, which the tests use to compare both paths) the Python path runs.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("merkle.c")
LIBRARY = Path(__file__).with_name("_merkle.so")
_P, _N = ctypes.c_void_p, ctypes.c_size_t


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The built library, or None: not built, older than its source (a stale build could hash other bytes
    than the Python reference), switched off, or a big-endian machine (the C hashes memory as it lies)."""
    if os.environ.get("PSYCHE_NATIVE") == "0" or sys.byteorder != "little":
        return None
    try:
        if LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
            return None
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:
        return None
    lib.psyche_hash_blocks.argtypes = [_P, _N, _N, _N, _N, _P, _P, _N, _P, _P]
    lib.psyche_hash_blocks.restype = ctypes.c_int
    lib.psyche_tree_size.argtypes = [_N]
    lib.psyche_tree_size.restype = _N
    lib.psyche_build_tree.argtypes = [_P, _N, _P]
    lib.psyche_build_tree.restype = ctypes.c_int
    return lib


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


def hash_blocks(lib: ctypes.CDLL, delta: np.ndarray, h: int, w: int, idx: np.ndarray | None,
                val: np.ndarray | None) -> tuple[np.ndarray, bytes]:
    """One parameter's leaves as rows 0x00 ‖ leaf (`ef_parts._param_rows`' array) and their hashes (32 B each,
    blocks row-major). `delta`: a C-contiguous f32 matrix; `idx`/`val`: its blocks' sent indices (i64) and
    values (f32), `[blocks, k]` C-contiguous, or None."""
    nrows, ncols = delta.shape
    if h < 1 or w < 1 or delta.dtype != np.float32 or not delta.flags.c_contiguous or nrows % h or ncols % w:
        raise ValueError("hash_blocks: δ must be a contiguous f32 matrix of whole blocks")
    blocks, k = (nrows // h) * (ncols // w), 0 if idx is None else idx.shape[1]
    if idx is not None and (val is None or idx.dtype != np.int64 or val.dtype != np.float32
                            or not idx.flags.c_contiguous or not val.flags.c_contiguous
                            or idx.shape != val.shape or idx.shape[0] != blocks):
        raise ValueError("hash_blocks: sent indices and values must be contiguous [blocks, k] i64 and f32")
    rows = np.empty((blocks, 1 + 4 * h * w + 12 * k), np.uint8)
    out = ctypes.create_string_buffer(32 * blocks)
    rc = lib.psyche_hash_blocks(_ptr(delta), nrows, ncols, h, w, _ptr(idx), _ptr(val), k, _ptr(rows), out)
    if rc != 0:
        raise RuntimeError(f"psyche_hash_blocks failed ({rc})")
    return rows, out.raw


def build_levels(lib: ctypes.CDLL, leaves: bytes) -> list[bytes]:
    """Every level of the Merkle tree over the concatenated leaf hashes, each level one flat bytes object."""
    n = len(leaves) // 32
    out = ctypes.create_string_buffer(32 * lib.psyche_tree_size(n))
    if lib.psyche_build_tree(leaves, n, out) != 0:
        raise RuntimeError("psyche_build_tree failed")
    raw, levels, at = out.raw, [leaves], 0
    while n > 1:
        n = (n + 1) // 2
        levels.append(raw[at:at + 32 * n])
        at += 32 * n
    return levels
