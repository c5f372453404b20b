"""Reading the program's fixed-layout accounts with `struct` alone: the IDL's layout compiled once into
offsets, and a view that unpacks a field only when it is read.

It returns what coordinator_sdk.fast_decode's numpy view returns (ints, floats, lists for u8 arrays, Pubkeys,
views for structs and other arrays; tests compare both with anchorpy field by field), without importing
numpy: `psyche run status` and every other reader of a run would otherwise pay ~0.1 s for numpy before the
first byte (bench/cli_startup.py). fast_decode stays for what needs a numpy dtype (the differential fuzzer)."""
from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

_PRIM = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i8": "<b", "i16": "<h", "i32": "<i", "i64": "<q",
         "f32": "<f", "f64": "<d", "bool": "<B"}
_PUBKEY = "publicKey"


def snake(name: str) -> str:
    """anchorpy's field names: camelCase -> snake_case."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


@dataclass(frozen=True)
class Layout:
    """One type: kind "prim" (fmt), "pubkey", "array" (item, count) or "struct" (fields: name -> offset,
    layout); size in bytes, packed as the program lays it out (no padding beyond the IDL's pad fields)."""
    kind: str
    size: int
    fmt: str = ""
    item: Layout | None = None
    count: int = 0
    fields: dict[str, tuple[int, Layout]] | None = None

    @property
    def bytes_only(self) -> bool:
        """An array whose leaves are all u8/bool: read as (nested) lists, as numpy's tolist() gives."""
        if self.kind == "prim":
            return self.fmt == "<B"
        return self.kind == "array" and self.item is not None and self.item.bytes_only


class LayoutTable:
    def __init__(self, idl: dict) -> None:
        self.types = {t["name"]: t["type"] for t in idl.get("types", [])}
        self.types.update({a["name"]: a["type"] for a in idl.get("accounts", [])})
        self._cache: dict[str, Layout] = {}

    def layout(self, ty: Any) -> Layout:
        if isinstance(ty, str):
            if ty == _PUBKEY:
                return Layout("pubkey", 32)
            return Layout("prim", struct.calcsize(_PRIM[ty]), fmt=_PRIM[ty])
        if "array" in ty:
            inner, n = ty["array"]
            item = self.layout(inner)
            return Layout("array", item.size * n, item=item, count=n)
        if "defined" in ty:
            return self.struct(ty["defined"])
        raise ValueError(f"unsupported IDL type {ty!r} in a fixed layout")

    def struct(self, name: str) -> Layout:
        if name not in self._cache:
            fields: dict[str, tuple[int, Layout]] = {}
            offset = 0
            for f in self.types[name]["fields"]:
                sub = self.layout(f["type"])
                fields[snake(f["name"])] = (offset, sub)
                offset += sub.size
            self._cache[name] = Layout("struct", offset, fields=fields)
        return self._cache[name]


def _read(buf: bytes, off: int, lay: Layout) -> Any:
    if lay.kind == "prim":
        return struct.unpack_from(lay.fmt, buf, off)[0]
    if lay.kind == "pubkey":
        return Pubkey.from_bytes(buf[off:off + 32])
    if lay.kind == "struct":
        return StructView(buf, off, lay)
    if lay.bytes_only:
        return _bytes_list(buf, off, lay)
    return ListView(buf, off, lay)


def _bytes_list(buf: bytes, off: int, lay: Layout) -> list[Any]:
    assert lay.item is not None
    if lay.item.kind == "prim":
        return list(buf[off:off + lay.count])
    return [_bytes_list(buf, off + i * lay.item.size, lay.item) for i in range(lay.count)]


class StructView:
    """Attribute access over one struct in `buf`; each read unpacks just that field."""
    __slots__ = ("_buf", "_off", "_lay")

    def __init__(self, buf: bytes, off: int, lay: Layout) -> None:
        self._buf, self._off, self._lay = buf, off, lay

    def __getattr__(self, name: str) -> Any:
        assert self._lay.fields is not None
        try:
            rel, sub = self._lay.fields[name]
        except KeyError:
            raise AttributeError(name) from None
        return _read(self._buf, self._off + rel, sub)


class ListView:
    """A fixed array of structs, pubkeys or numbers other than u8: len, indexing (negative too), slices, iteration."""
    __slots__ = ("_buf", "_off", "_lay")

    def __init__(self, buf: bytes, off: int, lay: Layout) -> None:
        self._buf, self._off, self._lay = buf, off, lay

    def __len__(self) -> int:
        return self._lay.count

    def _at(self, i: int) -> Any:
        assert self._lay.item is not None
        return _read(self._buf, self._off + i * self._lay.item.size, self._lay.item)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self._at(j) for j in range(self._lay.count)[i]]
        return self._at(range(self._lay.count)[i])

    def __iter__(self):
        return (self._at(j) for j in range(self._lay.count))


def read_account(table: LayoutTable, account: str, raw: bytes) -> StructView:
    """`account` (an IDL account name) from its raw data, after the 8-byte discriminator (checked by the caller)."""
    lay = table.struct(account)
    if len(raw) != 8 + lay.size:
        raise ValueError(f"{account} is {8 + lay.size} bytes, got {len(raw)}")
    return StructView(bytes(raw), 8, lay)


def column(struct: Any, array: str, field: str, count: int) -> list[bytes] | None:
    """The raw bytes of `field` in each of the first `count` items of the struct array `array` of `struct`, or
    None when `struct` is not a StructView (another decoder, a test double) or `count` is out of range.

    Why: a client reads every member's key on every account update it follows (membership, its own entry,
    the ticker order); through attribute access each read builds a StructView and a Pubkey, ~2 us, so O(N)
    per update and O(N^2) per round. Slicing the immutable buffer gives the same bytes for a fraction."""
    if not isinstance(struct, StructView):
        return None
    assert struct._lay.fields is not None
    base, arr = struct._lay.fields[array]
    item = arr.item
    if item is None or item.fields is None or not 0 <= count <= arr.count:
        return None
    rel, sub = item.fields[field]
    start, step, size, buf = struct._off + base + rel, item.size, sub.size, struct._buf
    return [buf[start + i * step:start + i * step + size] for i in range(count)]


def rows_matching(struct: Any, array: str, field: str, count: int, value: bytes) -> Iterable[int]:
    """Indices among the first `count` items of `array` whose `field` is `value`, found by slicing (`column`);
    every index when `struct` cannot be sliced, so a caller still compares each item it decodes."""
    col = column(struct, array, field, count)
    return range(count) if col is None else [i for i, b in enumerate(col) if b == value]
