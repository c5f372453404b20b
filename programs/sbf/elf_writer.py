"""Writes the SBPF v0 shared object.

Layout (file offset == sh_addr == p_vaddr for every allocated section, as the loader requires with
reject_broken_elfs):
    ELF header | 5 program headers | .text | .rodata | .dynsym | .dynstr | .rel.dyn | .dynamic | .shstrtab | shdrs
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

EHDR_SIZE, PHDR_SIZE, SHDR_SIZE = 64, 56, 64
N_PHDRS = 5
TEXT_ADDR = EHDR_SIZE + N_PHDRS * PHDR_SIZE  # 344, already 8-aligned

R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_ABS32, R_BPF_64_RELATIVE, R_BPF_64_32 = 1, 2, 3, 8, 10
PT_LOAD, PT_DYNAMIC = 1, 2
PF_X, PF_W, PF_R = 1, 2, 4
SHT_PROGBITS, SHT_STRTAB, SHT_DYNAMIC, SHT_REL, SHT_DYNSYM = 1, 3, 6, 9, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
DT_REL, DT_RELSZ, DT_RELENT, DT_TEXTREL, DT_FLAGS, DT_RELCOUNT = 17, 18, 19, 22, 30, 0x6FFFFFFA
DF_TEXTREL = 4
EM_BPF, ET_DYN = 247, 3
STB_GLOBAL, STT_NOTYPE, STT_FUNC = 1, 0, 2


def align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def rodata_addr(text_len: int) -> int:
    return align(TEXT_ADDR + text_len, 8)


@dataclass(frozen=True)
class DynReloc:
    offset: int        # virtual address (== file offset) of the patched slot
    type: int          # R_BPF_64_RELATIVE or R_BPF_64_32
    symbol: str | None  # syscall name for R_BPF_64_32


def write_shared_object(text: bytes, rodata: bytes, entry: int, entry_size: int, relocs: list[DynReloc],
                        syscalls: list[str]) -> bytes:
    """`entry` is the byte offset of `entrypoint` inside .text; `syscalls` lists dynsym names in order."""
    text_addr = TEXT_ADDR
    ro_addr = rodata_addr(len(text))
    dynsym_addr = align(ro_addr + len(rodata), 8)

    names = ["entrypoint", *syscalls]
    dynstr = b"\0"
    name_off = {}
    for nm in names:
        name_off[nm] = len(dynstr)
        dynstr += nm.encode() + b"\0"
    dynsym = bytes(24)
    dynsym += struct.pack("<IBBHQQ", name_off["entrypoint"], (STB_GLOBAL << 4) | STT_FUNC, 0, 1,
                          text_addr + entry, entry_size)
    for nm in syscalls:
        dynsym += struct.pack("<IBBHQQ", name_off[nm], (STB_GLOBAL << 4) | STT_NOTYPE, 0, 0, 0, 0)
    sym_index = {nm: i + 2 for i, nm in enumerate(syscalls)}

    dynstr_addr = dynsym_addr + len(dynsym)
    rel_addr = align(dynstr_addr + len(dynstr), 8)
    ordered = ([r for r in relocs if r.type == R_BPF_64_RELATIVE]
               + [r for r in relocs if r.type != R_BPF_64_RELATIVE])
    n_relative = sum(r.type == R_BPF_64_RELATIVE for r in relocs)
    reldyn = b"".join(struct.pack("<QQ", r.offset, (sym_index[r.symbol] << 32 if r.symbol else 0) | r.type)
                      for r in ordered)
    dynamic_addr = align(rel_addr + len(reldyn), 8)
    dyn = [(DT_SYMTAB, dynsym_addr), (DT_SYMENT, 24), (DT_STRTAB, dynstr_addr), (DT_STRSZ, len(dynstr))]
    if reldyn:
        dyn += [(DT_REL, rel_addr), (DT_RELSZ, len(reldyn)), (DT_RELENT, 16), (DT_RELCOUNT, n_relative),
                (DT_TEXTREL, 0), (DT_FLAGS, DF_TEXTREL)]
    dyn.append((DT_NULL, 0))
    dynamic = b"".join(struct.pack("<QQ", t, v) for t, v in dyn)

    shstr_names = ["", ".text", ".rodata", ".dynsym", ".dynstr", ".rel.dyn", ".dynamic", ".shstrtab"]
    shstrtab = b""
    sh_name = {}
    for nm in shstr_names:
        sh_name[nm] = len(shstrtab)
        shstrtab += nm.encode() + b"\0"
    shstr_off = dynamic_addr + len(dynamic)
    shoff = align(shstr_off + len(shstrtab), 8)

    def shdr(nm: str, typ: int, flags: int, addr: int, off: int, size: int, link: int = 0, info: int = 0,
             algn: int = 1, entsize: int = 0) -> bytes:
        return struct.pack("<IIQQQQIIQQ", sh_name[nm], typ, flags, addr, off, size, link, info, algn, entsize)

    shdrs = [
        bytes(SHDR_SIZE),
        shdr(".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_addr, text_addr, len(text), algn=8),
        shdr(".rodata", SHT_PROGBITS, SHF_ALLOC, ro_addr, ro_addr, len(rodata), algn=8),
        shdr(".dynsym", SHT_DYNSYM, SHF_ALLOC, dynsym_addr, dynsym_addr, len(dynsym), link=4, info=1, algn=8,
             entsize=24),
        shdr(".dynstr", SHT_STRTAB, SHF_ALLOC, dynstr_addr, dynstr_addr, len(dynstr)),
        shdr(".rel.dyn", SHT_REL, SHF_ALLOC, rel_addr, rel_addr, len(reldyn), link=3, algn=8, entsize=16),
        shdr(".dynamic", SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dynamic_addr, dynamic_addr, len(dynamic), link=4,
             algn=8, entsize=16),
        shdr(".shstrtab", SHT_STRTAB, 0, 0, shstr_off, len(shstrtab)),
    ]

    def phdr(typ: int, flags: int, addr: int, size: int) -> bytes:
        return struct.pack("<IIQQQQQQ", typ, flags, addr, addr, addr, size, size, 8)

    phdrs = [
        phdr(PT_LOAD, PF_R | PF_X, text_addr, len(text)),
        phdr(PT_LOAD, PF_R, ro_addr, len(rodata)),
        phdr(PT_LOAD, PF_R, dynsym_addr, rel_addr + len(reldyn) - dynsym_addr),
        phdr(PT_LOAD, PF_R | PF_W, dynamic_addr, len(dynamic)),
        phdr(PT_DYNAMIC, PF_R | PF_W, dynamic_addr, len(dynamic)),
    ]
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", ET_DYN, EM_BPF, 1, text_addr + entry, EHDR_SIZE, shoff, 0,
                               EHDR_SIZE, PHDR_SIZE, N_PHDRS, SHDR_SIZE, len(shdrs), len(shdrs) - 1)

    out = bytearray(shoff + SHDR_SIZE * len(shdrs))
    for addr, blob in [(0, ehdr), (EHDR_SIZE, b"".join(phdrs)), (text_addr, text), (ro_addr, rodata),
                       (dynsym_addr, dynsym), (dynstr_addr, dynstr), (rel_addr, reldyn),
                       (dynamic_addr, dynamic), (shstr_off, shstrtab), (shoff, b"".join(shdrs))]:
        out[addr:addr + len(blob)] = blob
    return bytes(out)
