"""Links clang BPF objects into an SBPF v0 shared object.

Input relocations become what the loader understands: lddw addresses and .rodata pointers are emitted
as R_BPF_64_RELATIVE, calls to defined functions are resolved here to pc-relative immediates, and
calls to syscalls stay as R_BPF_64_32 against a named dynamic symbol. Anything the loader would reject
(or run with different semantics) is refused with the object, section and offset it came from."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from programs.sbf import elf_object as eo
from programs.sbf import syscalls as sc
from programs.sbf.elf_writer import (
    R_BPF_64_32,
    R_BPF_64_64,
    R_BPF_64_ABS64,
    R_BPF_64_RELATIVE,
    TEXT_ADDR,
    DynReloc,
    align,
    rodata_addr,
    write_shared_object,
)
from programs.sbf.errors import LinkError
from programs.sbf.murmur3 import pc_hash
from programs.sbf.verifier import CALL, LDDW, check_opcode, verify

MAX_SECTION_NAME = 15
_DROPPED = (".BTF", ".BTF.ext", ".llvm_addrsig", ".eh_frame", ".comment")


@dataclass
class Placed:
    obj: eo.ElfObject
    sec: eo.Section
    out: str      # "text" or "rodata"
    offset: int   # byte offset inside the output section


def _classify(obj: eo.ElfObject, sec: eo.Section) -> str | None:
    """Which output section an input section goes to; None drops it; refusals raise."""
    name = sec.name
    if not sec.flags & eo.SHF_ALLOC or name.startswith(_DROPPED) or name.startswith(".debug"):
        return None
    symbols = [s.name for s in obj.symbols if s.shndx == sec.index and s.type in (eo.STT_OBJECT, eo.STT_NOTYPE)
               and s.name and not s.name.startswith(".")]
    what = f" (symbols: {', '.join(symbols[:5])})" if symbols else ""
    if sec.type == eo.SHT_NOBITS or name.startswith(".bss") or (
            name.startswith(".data") and not name.startswith(".data.rel.ro")):
        raise LinkError(f"mutable global data{what}: the SBF loader rejects writable sections; keep state in "
                        "account data or the heap, or make it const", obj=obj.name, section=name)
    if sec.flags & eo.SHF_EXECINSTR:
        if name == ".text" or name.startswith(".text."):
            return "text"
    elif name.startswith(".rodata") or name.startswith(".data.rel.ro"):
        return "rodata"
    if len(name) > MAX_SECTION_NAME:
        raise LinkError(f"section name '{name}' is longer than {MAX_SECTION_NAME} characters (the loader reads "
                        "at most 15)", obj=obj.name, section=name)
    raise LinkError(f"custom section '{name}' is not mapped by the SBF loader; use .text* or .rodata*",
                    obj=obj.name, section=name)


class _Linker:
    def __init__(self, objects: list[eo.ElfObject]) -> None:
        self.objects = objects
        self.placed: dict[tuple[int, int], Placed] = {}
        self.text = bytearray()
        self.rodata = bytearray()
        self.globals: dict[str, tuple[eo.ElfObject, eo.Symbol]] = {}
        self.relocs: list[DynReloc] = []
        self.syscalls: list[str] = []
        self.text_chunks: list[Placed] = []

    # ---- layout -------------------------------------------------------------------------------------
    def place(self) -> None:
        for oi, obj in enumerate(self.objects):
            for sec in obj.sections:
                out = _classify(obj, sec)
                if out is None:
                    continue
                buf = self.text if out == "text" else self.rodata
                start = align(len(buf), 8 if out == "text" else min(sec.align, 8))
                buf.extend(bytes(start - len(buf)))
                buf.extend(sec.data)
                p = Placed(obj, sec, out, start)
                self.placed[(oi, sec.index)] = p
                if out == "text":
                    if len(sec.data) % 8:
                        raise LinkError("text section size is not a multiple of 8", obj=obj.name, section=sec.name)
                    self.text_chunks.append(p)
        if not self.text:
            raise LinkError("no .text: nothing to link")

    def locate(self, text_offset: int) -> tuple[str, str, int]:
        for p in self.text_chunks:
            if p.offset <= text_offset < p.offset + len(p.sec.data):
                return p.obj.name, p.sec.name, text_offset - p.offset
        return "<linked>", ".text", text_offset

    def collect_globals(self) -> None:
        for oi, obj in enumerate(self.objects):
            for sym in obj.symbols:
                if sym.shndx == eo.SHN_COMMON:
                    raise LinkError(f"common symbol '{sym.name}' is a mutable global; make it const or static const",
                                    obj=obj.name)
                if sym.bind not in (eo.STB_GLOBAL, eo.STB_WEAK) or sym.shndx == eo.SHN_UNDEF:
                    continue
                if (oi, sym.shndx) not in self.placed:
                    continue
                if sym.name in self.globals and sym.bind == eo.STB_GLOBAL:
                    prev = self.globals[sym.name][0].name
                    raise LinkError(f"symbol '{sym.name}' is defined in both {prev} and {obj.name}", obj=obj.name)
                self.globals.setdefault(sym.name, (obj, sym))

    # ---- symbols and addresses ----------------------------------------------------------------------
    def _base(self, out: str) -> int:
        return TEXT_ADDR if out == "text" else rodata_addr(len(self.text))

    def resolve(self, oi: int, sym: eo.Symbol) -> tuple[Placed, int] | None:
        """(placed section, value) where a symbol lives, following undefined references to globals."""
        if sym.shndx != eo.SHN_UNDEF:
            p = self.placed.get((oi, sym.shndx))
            return (p, sym.value) if p else None
        hit = self.globals.get(sym.name)
        if hit is None:
            return None
        obj, gsym = hit
        return self.placed[(self.objects.index(obj), gsym.shndx)], gsym.value

    def _syscall_index(self, name: str) -> None:
        if name not in self.syscalls:
            self.syscalls.append(name)

    # ---- relocations --------------------------------------------------------------------------------
    def relocate(self) -> None:
        for (oi, si), p in self.placed.items():
            for r in p.obj.relocations.get(si, []):
                sym = p.obj.symbols[r.symbol]
                if p.out == "text":
                    self._relocate_text(oi, p, r, sym)
                else:
                    self._relocate_rodata(oi, p, r, sym)

    def _relocate_text(self, oi: int, p: Placed, r: eo.Relocation, sym: eo.Symbol) -> None:
        loc = p.offset + r.offset
        where = {"obj": p.obj.name, "section": p.sec.name, "offset": r.offset}
        op = self.text[loc]
        if r.type == R_BPF_64_64:
            if op != LDDW:
                raise LinkError(f"R_BPF_64_64 on opcode 0x{op:02x}, expected lddw", **where)
            target = self.resolve(oi, sym)
            if target is None:
                raise LinkError(f"undefined symbol '{sym.name}' (address taken)", **where)
            lo, = struct.unpack_from("<I", self.text, loc + 4)
            hi, = struct.unpack_from("<I", self.text, loc + 12)
            addr = self._base(target[0].out) + target[0].offset + target[1] + (lo | hi << 32)
            struct.pack_into("<I", self.text, loc + 4, addr & 0xFFFFFFFF)
            struct.pack_into("<I", self.text, loc + 12, addr >> 32)
            self.relocs.append(DynReloc(TEXT_ADDR + loc, R_BPF_64_RELATIVE, None))
        elif r.type == R_BPF_64_32:
            if op != CALL:
                check_opcode(op, self.locate, loc // 8)
                raise LinkError(f"R_BPF_64_32 on opcode 0x{op:02x}, expected call", **where)
            imm, = struct.unpack_from("<i", self.text, loc + 4)
            target = self.resolve(oi, sym)
            if target is not None:
                placed, value = target
                if placed.out != "text":
                    raise LinkError(f"call to '{sym.name}', which is data, not code", **where)
                dest = placed.offset + value + (imm + 1) * 8
                if dest % 8 or not 0 <= dest < len(self.text):
                    raise LinkError(f"call target of '{sym.name}' is outside .text", **where)
                self.text[loc + 1] = (self.text[loc + 1] & 0x0F) | 0x10  # src=1: internal call
                struct.pack_into("<i", self.text, loc + 4, dest // 8 - loc // 8 - 1)
                return
            name = sc.resolve(sym.name)
            if name is None:
                raise LinkError(f"call to unknown syscall or undefined function '{sym.name}'", **where)
            self._syscall_index(name)
            self.text[loc + 1] &= 0x0F
            struct.pack_into("<i", self.text, loc + 4, -1)
            self.relocs.append(DynReloc(TEXT_ADDR + loc, R_BPF_64_32, name))
        else:
            raise LinkError(f"unsupported relocation type {r.type} in code", **where)

    def _relocate_rodata(self, oi: int, p: Placed, r: eo.Relocation, sym: eo.Symbol) -> None:
        loc = p.offset + r.offset
        where = {"obj": p.obj.name, "section": p.sec.name, "offset": r.offset}
        if r.type != R_BPF_64_ABS64:
            raise LinkError(f"unsupported relocation type {r.type} in read-only data (only 64-bit pointers)",
                            **where)
        target = self.resolve(oi, sym)
        if target is None:
            raise LinkError(f"undefined symbol '{sym.name}' (pointer in data)", **where)
        addend, = struct.unpack_from("<Q", self.rodata, loc)
        addr = self._base(target[0].out) + target[0].offset + target[1] + addend
        if addr >= 1 << 32:
            raise LinkError("pointer target beyond 4 GiB", **where)
        # Legacy encoding the loader expects for data: the 32-bit address in the upper half of the slot.
        struct.pack_into("<II", self.rodata, loc, 0, addr)
        self.relocs.append(DynReloc(rodata_addr(len(self.text)) + loc, R_BPF_64_RELATIVE, None))

    # ---- final checks -------------------------------------------------------------------------------
    def check_call_hashes(self) -> None:
        targets: set[int] = set()
        n = len(self.text) // 8
        pc = 0
        while pc < n:
            op = self.text[8 * pc]
            if op == CALL:
                imm, = struct.unpack_from("<i", self.text, 8 * pc + 4)
                if imm != -1:
                    dest = pc + 1 + imm
                    if not 0 <= dest < n:
                        obj, sec, off = self.locate(8 * pc)
                        raise LinkError(f"call target {dest} is outside .text", obj=obj, section=sec, offset=off)
                    targets.add(dest)
            pc += 2 if op == LDDW else 1
        check_hash_collisions(targets, sc.syscall_hashes(), self.locate)

    def entry(self) -> tuple[int, int]:
        hit = self.globals.get("entrypoint")
        if hit is None or hit[1].type != eo.STT_FUNC:
            raise LinkError("no global function 'entrypoint' is defined")
        placed, value = self.resolve(self.objects.index(hit[0]), hit[1])  # type: ignore[misc]
        return placed.offset + value, hit[1].size


def check_hash_collisions(targets: set[int], syscall_hashes: dict[int, str], locate=None) -> None:
    """The loader keys internal call targets by murmur3(pc) in the same table as syscalls: refuse clashes."""
    seen: dict[int, int] = {}
    for pc in sorted(targets):
        h = pc_hash(pc)
        if h in syscall_hashes:
            raise LinkError(f"call target at instruction {pc} hashes to 0x{h:08x}, the hash of syscall "
                            f"'{syscall_hashes[h]}'; reorder functions to move it")
        if h in seen:
            raise LinkError(f"call targets at instructions {seen[h]} and {pc} share the hash 0x{h:08x}")
        seen[h] = pc


def link(objects: list[tuple[str, bytes]]) -> bytes:
    """Link (name, bytes) objects, in the given order, into an SBPF v0 .so (deterministic output)."""
    parsed = [eo.parse_object(data, name) for name, data in objects]
    lk = _Linker(parsed)
    lk.place()
    lk.collect_globals()
    lk.relocate()
    verify(bytes(lk.text), lk.locate)
    lk.check_call_hashes()
    entry, entry_size = lk.entry()
    return write_shared_object(bytes(lk.text), bytes(lk.rodata), entry, entry_size, lk.relocs, lk.syscalls)


def link_files(paths: list[Path], out: Path) -> int:
    so = link([(p.name, p.read_bytes()) for p in paths])
    out.write_bytes(so)
    return len(so)
