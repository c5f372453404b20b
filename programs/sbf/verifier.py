"""SBPF v0 instruction checks, run on the linked .text before the file is written.

Why before: the loader's RequisiteVerifier rejects the same things at deploy time, but with an
instruction index only; here the refusal names the object file, section and offset, and it also
catches what the loader would silently accept with different semantics (ALU32 sign-extension)."""
from __future__ import annotations

from collections.abc import Callable

from programs.sbf.errors import LinkError

Locate = Callable[[int], tuple[str, str, int]]  # text byte offset -> (object, section, offset in section)

LDDW, CALL, CALLX, EXIT, JA = 0x18, 0x85, 0x8D, 0x95, 0x05
LE, BE = 0xD4, 0xDC
_LDX = {0x61, 0x69, 0x71, 0x79}
_ST = {0x62, 0x6A, 0x72, 0x7A}
_STX = {0x63, 0x6B, 0x73, 0x7B}
_ALU64 = {0x07, 0x0F, 0x17, 0x1F, 0x27, 0x2F, 0x37, 0x3F, 0x47, 0x4F, 0x57, 0x5F, 0x67, 0x6F, 0x77, 0x7F,
          0x87, 0x97, 0x9F, 0xA7, 0xAF, 0xB7, 0xBF, 0xC7, 0xCF}
_JUMPS = {0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x45, 0x4D, 0x55, 0x5D, 0x65, 0x6D, 0x75, 0x7D,
          0xA5, 0xAD, 0xB5, 0xBD, 0xC5, 0xCD, 0xD5, 0xDD}
_SHIFT_IMM = {0x67, 0x77, 0xC7}
_DIV_IMM = {0x37, 0x97}
_ATOMICS = {0xC3, 0xDB}
CLASS_ALU32, CLASS_JMP32 = 0x04, 0x06


def decode(text: bytes, pc: int) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of the instruction at index pc."""
    b = text[8 * pc: 8 * pc + 8]
    return (b[0], b[1] & 0xF, b[1] >> 4, int.from_bytes(b[2:4], "little", signed=True),
            int.from_bytes(b[4:8], "little", signed=True))


def _refuse(locate: Locate, pc: int, message: str) -> LinkError:
    obj, section, offset = locate(8 * pc)
    return LinkError(message, obj=obj, section=section, offset=offset)


def check_opcode(op: int, locate: Locate, pc: int) -> None:
    """Refuse instructions SBPF v0 does not have, with the reason a C programmer can act on."""
    if op in _ATOMICS:
        raise _refuse(locate, pc, f"atomic instruction (opcode 0x{op:02x}): SBPF has no atomics")
    if op == CALLX:
        raise _refuse(locate, pc, "callx (call through a function pointer) is not supported by this linker")
    if op & 0x07 == CLASS_JMP32:
        raise _refuse(locate, pc, f"JMP32 instruction (opcode 0x{op:02x}): SBPF v0 has none; build with -mcpu=v2")
    if op & 0x07 == CLASS_ALU32 and op not in (LE, BE):
        raise _refuse(locate, pc, f"ALU32 instruction (opcode 0x{op:02x}): SBPF v0 sign-extends 32-bit "
                                  "results where LLVM assumes zero-extension; build without +alu32")
    known = op in _LDX or op in _ST or op in _STX or op in _ALU64 or op in _JUMPS or op in (
        LDDW, CALL, EXIT, JA, LE, BE)
    if not known:
        raise _refuse(locate, pc, f"opcode 0x{op:02x} is not an SBPF v0 instruction")


def verify(text: bytes, locate: Locate) -> None:
    """The loader's RequisiteVerifier rules for SBPF v0, plus the opcode whitelist."""
    if len(text) % 8:
        raise LinkError(".text size is not a multiple of 8")
    n = len(text) // 8
    lddw_second: set[int] = set()
    pc = 0
    while pc < n:
        op = text[8 * pc]
        if op == LDDW:
            if pc + 1 >= n or text[8 * (pc + 1)] != 0:
                raise _refuse(locate, pc, "lddw without a second slot (opcode 0) after it")
            lddw_second.add(pc + 1)
            pc += 2
            continue
        pc += 1
    for pc in range(n):
        if pc in lddw_second:
            continue
        op, dst, src, off, imm = decode(text, pc)
        check_opcode(op, locate, pc)
        if dst > 10 or src > 10:
            raise _refuse(locate, pc, f"register r{max(dst, src)} does not exist")
        writes_dst = op in _LDX or op in _ALU64 or op in (LDDW, LE, BE)
        if writes_dst and dst == 10:
            raise _refuse(locate, pc, "write to r10 (the frame pointer is read-only)")
        if op in _SHIFT_IMM and not 0 <= imm < 64:
            raise _refuse(locate, pc, f"shift by immediate {imm} (must be 0..63)")
        if op in _DIV_IMM and imm == 0:
            raise _refuse(locate, pc, "division or modulo by the immediate 0")
        if op in (LE, BE) and imm not in (16, 32, 64):
            raise _refuse(locate, pc, f"byte swap width {imm} (must be 16, 32 or 64)")
        if op in _JUMPS or op == JA:
            target = pc + 1 + off
            if not 0 <= target < n:
                raise _refuse(locate, pc, f"jump target {target} is outside .text (0..{n - 1})")
            if target in lddw_second:
                raise _refuse(locate, pc, "jump into the second half of an lddw")
