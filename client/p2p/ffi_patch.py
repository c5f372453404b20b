"""Make large writes through the iroh bindings fast: one memmove instead of a Python loop per byte.

uniffi's generated `_UniffiRustBufferBuilder.write` lowers a `bytes` argument (e.g. `SendStream.write_all`)
into a Rust buffer by assigning one byte at a time in Python: ~5-9 MB/s at 100 % CPU (python-stack.md §5).
We replace that one method with a `ctypes.memmove` after the same capacity reservation, which gives the
same buffer contents (tested byte for byte) at memory speed. Reads were already fast (C-level slicing).
The patch is idempotent and checks that the class still looks as expected, so a bindings upgrade that
changes it fails loudly instead of corrupting writes.
"""
from __future__ import annotations

import ctypes
from typing import Any

from iroh import iroh_ffi

_BUILDER = iroh_ffi._UniffiRustBufferBuilder
_ORIGINAL = _BUILDER.write


def _memmove_write(self: Any, value: Any) -> None:
    data = value if isinstance(value, bytes) else bytes(value)
    n = len(data)
    with self._reserve(n):
        base = ctypes.cast(self.rbuf.data, ctypes.c_void_p).value
        ctypes.memmove(base + self.rbuf.len, data, n)


def apply() -> None:
    if _BUILDER.write is _memmove_write:
        return
    if not all(hasattr(_BUILDER, name) for name in ("_reserve", "finalize")) or \
            [f[0] for f in iroh_ffi._UniffiRustBuffer._fields_] != ["capacity", "len", "data"]:
        raise RuntimeError("iroh bindings changed shape; update client/p2p/ffi_patch.py before using them")
    _BUILDER.write = _memmove_write


def is_applied() -> bool:
    return _BUILDER.write is _memmove_write


def original_write() -> Any:
    """The stock per-byte writer, kept so a test can compare both byte for byte."""
    return _ORIGINAL


def remove() -> None:
    """Back to the stock writer (benchmarks use this to show what the patch buys)."""
    _BUILDER.write = _ORIGINAL
