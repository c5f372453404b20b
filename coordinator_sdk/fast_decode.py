"""Zero-copy decoding of the program's accounts: the IDL's struct layout compiled into a numpy structured
dtype. anchorpy's construct-based decoder needs ~0.2 s for a 134 KB CoordinatorAccount; this needs
microseconds, which is what clients following a run and the differential fuzzer need. Field names are
snake_cased like anchorpy's, and tests assert both decoders agree on a fully populated account."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
from solders.pubkey import Pubkey

_PRIM = {"u8": "<u1", "u16": "<u2", "u32": "<u4", "u64": "<u8", "i8": "<i1", "i16": "<i2", "i32": "<i4",
         "i64": "<i8", "f32": "<f4", "f64": "<f8", "bool": "<u1"}
_PUBKEY_MARK = "publicKey"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class LayoutCompiler:
    def __init__(self, idl: dict) -> None:
        self.types = {t["name"]: t["type"] for t in idl.get("types", [])}
        self.types.update({a["name"]: a["type"] for a in idl.get("accounts", [])})
        self.pubkey_fields: set[str] = set()
        self._cache: dict[str, np.dtype] = {}

    def dtype(self, ty: Any) -> np.dtype | tuple:
        if isinstance(ty, str):
            if ty == _PUBKEY_MARK:
                return np.dtype([(_PUBKEY_MARK, "u1", (32,))])
            return np.dtype(_PRIM[ty])
        if "array" in ty:
            inner, n = ty["array"]
            return np.dtype((self.dtype(inner), (n,)))
        if "defined" in ty:
            return self.struct(ty["defined"])
        raise ValueError(f"unsupported IDL type {ty!r} in a fixed layout")

    def struct(self, name: str) -> np.dtype:
        if name not in self._cache:
            fields = self.types[name]["fields"]
            self._cache[name] = np.dtype([(snake(f["name"]), self.dtype(f["type"])) for f in fields], align=False)
        return self._cache[name]


class View:
    """Attribute access over a numpy record, converting leaves to what anchorpy returns."""
    __slots__ = ("_rec",)

    def __init__(self, rec: Any) -> None:
        self._rec = rec

    def __getattr__(self, name: str) -> Any:
        return _wrap(self._rec[name])


class ArrayView:
    __slots__ = ("_arr",)

    def __init__(self, arr: np.ndarray) -> None:
        self._arr = arr

    def __len__(self) -> int:
        return len(self._arr)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [_wrap(x) for x in self._arr[i]]
        return _wrap(self._arr[i])

    def __iter__(self):
        return (_wrap(x) for x in self._arr)


def _wrap(v: Any) -> Any:
    if isinstance(v, np.void):
        if v.dtype.names == (_PUBKEY_MARK,):
            return Pubkey.from_bytes(v[_PUBKEY_MARK].tobytes())
        return View(v)
    if isinstance(v, np.ndarray):
        if v.dtype.names is not None:
            return ArrayView(v)
        if v.dtype == np.uint8:
            return v.tolist()
        return ArrayView(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def decode(compiler: LayoutCompiler, account: str, raw: bytes) -> View:
    dt = compiler.struct(account)
    if len(raw) != 8 + dt.itemsize:
        raise ValueError(f"{account} is {8 + dt.itemsize} bytes, got {len(raw)}")
    return View(np.frombuffer(raw, dtype=dt, offset=8, count=1)[0])
