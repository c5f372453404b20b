"""A small reader for ELF64 little-endian relocatable objects as clang's BPF backend writes them.

Only what linking needs: sections, symbols and REL relocations. Malformed input raises LinkError naming
the object, rather than an IndexError from deep inside struct unpacking."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from programs.sbf.errors import LinkError

EM_BPF = 247
ET_REL = 1
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 1, 2, 3, 4, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3


@dataclass
class Section:
    index: int
    name: str
    type: int
    flags: int
    size: int
    align: int
    data: bytes
    link: int
    info: int


@dataclass
class Symbol:
    name: str
    value: int
    size: int
    bind: int
    type: int
    shndx: int


@dataclass
class Relocation:
    offset: int
    type: int
    symbol: int


@dataclass
class ElfObject:
    """One parsed object file; `name` is used in every error message."""
    name: str
    sections: list[Section]
    symbols: list[Symbol]
    relocations: dict[int, list[Relocation]] = field(default_factory=dict)  # target section index -> relocs

    def section_named(self, index: int) -> str:
        return self.sections[index].name if 0 <= index < len(self.sections) else f"#{index}"


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)].decode("utf-8", "replace")


def parse_object(data: bytes, name: str) -> ElfObject:
    try:
        return _parse(data, name)
    except struct.error as e:
        raise LinkError(f"truncated or malformed ELF object ({e})", obj=name) from None


def _parse(data: bytes, name: str) -> ElfObject:
    if data[:4] != b"\x7fELF":
        raise LinkError("not an ELF file", obj=name)
    if data[4] != 2 or data[5] != 1:
        raise LinkError("not a 64-bit little-endian ELF", obj=name)
    (e_type, e_machine, _ver, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize, _phnum,
     e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    if e_type != ET_REL:
        raise LinkError(f"not a relocatable object (e_type {e_type})", obj=name)
    if e_machine != EM_BPF:
        raise LinkError(f"not a BPF object (e_machine {e_machine}); compile with clang -target bpf", obj=name)
    if e_shentsize != 64 or e_shoff + e_shnum * 64 > len(data):
        raise LinkError("section header table out of bounds", obj=name)
    raw = [struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + 64 * i) for i in range(e_shnum)]
    shstr_off, shstr_size = raw[e_shstrndx][4], raw[e_shstrndx][5]
    shstr = data[shstr_off:shstr_off + shstr_size]
    sections = []
    for i, (nm, typ, flags, _addr, off, size, link, info, align, _ent) in enumerate(raw):
        if typ != SHT_NOBITS and off + size > len(data):
            raise LinkError("section extends past end of file", obj=name, section=_cstr(shstr, nm))
        body = b"" if typ == SHT_NOBITS else data[off:off + size]
        sections.append(Section(i, _cstr(shstr, nm), typ, flags, size, max(align, 1), body, link, info))

    symbols: list[Symbol] = []
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is not None:
        strtab = sections[symtab.link].data
        for j in range(len(symtab.data) // 24):
            st_name, st_info, _other, st_shndx, st_value, st_size = struct.unpack_from("<IBBHQQ", symtab.data, 24 * j)
            sym_name = _cstr(strtab, st_name)
            if st_info & 0xF == STT_SECTION and st_shndx < len(sections):
                sym_name = sections[st_shndx].name
            symbols.append(Symbol(sym_name, st_value, st_size, st_info >> 4, st_info & 0xF, st_shndx))

    obj = ElfObject(name, sections, symbols)
    for sec in sections:
        if sec.type == SHT_RELA:
            raise LinkError("RELA relocations are not produced by clang's BPF backend", obj=name, section=sec.name)
        if sec.type != SHT_REL:
            continue
        relocs = []
        for j in range(len(sec.data) // 16):
            r_offset, r_info = struct.unpack_from("<QQ", sec.data, 16 * j)
            sym = r_info >> 32
            if sym >= len(symbols):
                raise LinkError(f"relocation refers to symbol #{sym} which does not exist", obj=name,
                                section=sec.name, offset=r_offset)
            relocs.append(Relocation(r_offset, r_info & 0xFFFFFFFF, sym))
        obj.relocations.setdefault(sec.info, []).extend(relocs)
    return obj
