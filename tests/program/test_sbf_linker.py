"""The SBF linker: what it refuses (each refusal names object, section and offset) and what it builds."""
from __future__ import annotations

import struct

import pytest

from programs.sbf import LinkError, link
from programs.sbf.elf_object import parse_object
from programs.sbf.linker import check_hash_collisions
from programs.sbf.murmur3 import murmur3_32, pc_hash
from programs.sbf.syscalls import syscall_hashes

ENTRY = '#include "sol_sdk.h"\n'


def test_murmur3_matches_the_loader_hashes() -> None:
    # Values the SBPF loader uses (sbf-toolchain.md): syscall keys and the entrypoint key.
    assert murmur3_32(b"sol_log_") == 0x207559BD
    assert murmur3_32(b"entrypoint") == 0x71E3CF81
    assert murmur3_32(b"sol_invoke_signed_c") == 0xA22B9C85


def test_links_a_minimal_program_with_rodata_and_syscall(compile_c) -> None:
    obj = compile_c(ENTRY + 'uint64_t entrypoint(const uint8_t *in) { (void)in; sol_log("hi"); return 0; }')
    so = link([obj])
    assert so[:4] == b"\x7fELF" and so[18] == 247  # EM_BPF
    assert b"sol_log_\0" in so and b"entrypoint\0" in so


def test_output_is_deterministic(compile_c) -> None:
    obj = compile_c(ENTRY + 'uint64_t entrypoint(const uint8_t *in) { sol_log("x"); return in[0]; }')
    assert link([obj]) == link([obj])


def _expect(objs, *fragments: str) -> LinkError:
    with pytest.raises(LinkError) as info:
        link(objs)
    for frag in fragments:
        assert frag in str(info.value), str(info.value)
    return info.value


def test_refuses_jmp32(compile_c) -> None:
    name, data = compile_c(ENTRY + "uint64_t entrypoint(const uint8_t *in) { if (in[0] > 7) return 1; return 0; }",
                           name="jmp32")
    obj = parse_object(data, name)
    text = next(s for s in obj.sections if s.name == ".text")
    base = data.index(text.data)
    for pc in range(len(text.data) // 8):
        if text.data[8 * pc] & 0x07 == 0x05 and text.data[8 * pc] not in (0x05, 0x85, 0x95):
            patched = bytearray(data)
            patched[base + 8 * pc] = (patched[base + 8 * pc] & 0xF8) | 0x06  # JMP -> JMP32, as -mcpu=v3 emits
            err = _expect([(name, bytes(patched))], "JMP32", "jmp32.o", "section .text", f"offset 0x{8 * pc:x}")
            assert err.offset == 8 * pc
            return
    pytest.fail("no conditional jump found to turn into JMP32")


def test_refuses_alu32(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t entrypoint(const uint8_t *in) { uint32_t a = *(const uint32_t *)in, "
                    "b = *(const uint32_t *)(in + 4); return (uint32_t)(a * b + 3); }", name="alu32",
                    extra=("-Xclang", "-target-feature", "-Xclang", "+alu32"))
    _expect([obj], "ALU32", "alu32.o", "section .text", "offset 0x")


def test_refuses_mcpu_v3_output(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t entrypoint(const uint8_t *in) { uint32_t a = *(const uint32_t *)in; "
                    "return a > 7; }", name="v3", extra=("-mcpu=v3",))
    _expect([obj], "v3.o", "section .text")


def test_refuses_atomics(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t entrypoint(const uint8_t *in) { __sync_fetch_and_add((uint64_t *)in, 1); "
                    "return 0; }", name="atomic")
    _expect([obj], "atomic instruction", "atomic.o", "section .text", "offset 0x")


def test_refuses_callx(compile_c) -> None:
    obj = compile_c(ENTRY + "typedef uint64_t (*fn_t)(uint64_t);\nuint64_t entrypoint(const uint8_t *in) "
                    "{ fn_t f = (fn_t)(*(const uint64_t *)in); return f(1); }", name="callx")
    _expect([obj], "callx", "callx.o", "section .text", "offset 0x")


def test_refuses_mutable_data(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t counter = 5;\nuint64_t entrypoint(const uint8_t *in) { (void)in; "
                    "return counter++; }", name="data")
    _expect([obj], "mutable global", "counter", "data.o", "section .data")


def test_refuses_mutable_bss(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t zeroed;\nuint64_t entrypoint(const uint8_t *in) { (void)in; "
                    "return zeroed++; }", name="bss")
    _expect([obj], "mutable global", "zeroed", "bss.o", "section .bss")


def test_refuses_unknown_syscall(compile_c) -> None:
    obj = compile_c(ENTRY + "void sol_frobnicate(uint64_t x);\nuint64_t entrypoint(const uint8_t *in) "
                    "{ sol_frobnicate((uint64_t)in); return 0; }", name="unknown")
    _expect([obj], "unknown syscall", "sol_frobnicate", "unknown.o", "section .text", "offset 0x0")


def test_refuses_long_section_name(compile_c) -> None:
    obj = compile_c(ENTRY + '__attribute__((section(".psyche_custom_long"))) const uint64_t T[2] = {1, 2};\n'
                    "uint64_t entrypoint(const uint8_t *in) { return T[in[0] & 1]; }", name="longsec")
    _expect([obj], "longer than 15", ".psyche_custom_long", "longsec.o")


def test_refuses_unmapped_custom_section(compile_c) -> None:
    obj = compile_c(ENTRY + '__attribute__((section(".mine"))) const uint64_t T[2] = {1, 2};\n'
                    "uint64_t entrypoint(const uint8_t *in) { return T[in[0] & 1]; }", name="custom")
    _expect([obj], "not mapped", ".mine", "custom.o")


def test_refuses_missing_entrypoint(compile_c) -> None:
    obj = compile_c(ENTRY + "uint64_t not_entry(const uint8_t *in) { return in[0]; }", name="noentry")
    _expect([obj], "entrypoint")


def test_refuses_duplicate_definitions(compile_c) -> None:
    a = compile_c(ENTRY + "uint64_t helper(void) { return 1; }\nuint64_t entrypoint(const uint8_t *in) "
                  "{ (void)in; return helper(); }", name="a")
    b = compile_c(ENTRY + "uint64_t helper(void) { return 2; }", name="b")
    _expect([a, b], "helper", "a.o", "b.o")


def test_call_hash_collision_is_refused() -> None:
    hashes = syscall_hashes()
    check_hash_collisions({0, 1, 2, 100}, hashes)  # real hashes: no clash
    with pytest.raises(LinkError, match="hashes to 0x"):
        check_hash_collisions({5}, {**hashes, pc_hash(5): "sol_fake_"})


@pytest.mark.parametrize("blob,fragment", [
    (b"", "not an ELF"),
    (b"\x7fELF\x02\x01\x01" + bytes(10), "truncated or malformed"),
    (b"MZ" + bytes(100), "not an ELF"),
])
def test_rejects_malformed_objects(blob: bytes, fragment: str) -> None:
    with pytest.raises(LinkError, match=fragment):
        link([("bad.o", blob)])


def test_rejects_non_bpf_object(clang: str, tmp_path) -> None:
    import subprocess
    (tmp_path / "x.c").write_text("int f(int x) { return x + 1; }\n")
    subprocess.run([clang, "-c", str(tmp_path / "x.c"), "-o", str(tmp_path / "x.o")], check=True)
    with pytest.raises(LinkError, match="not a BPF object"):
        link([("x.o", (tmp_path / "x.o").read_bytes())])


def test_rodata_pointer_table_uses_legacy_relative_encoding(compile_c) -> None:
    obj = compile_c(ENTRY + 'static const char *const N[2] = {"ab", "cd"};\n'
                    "uint64_t entrypoint(const uint8_t *in) { sol_log_(N[in[0] & 1], 2); return 0; }", name="tbl")
    so = link([obj])
    # Section headers: find .rel.dyn entries of type 8 whose target lies in .rodata, and check that the
    # slot holds 0 in its low half and an address inside the file in its high half.
    shoff, = struct.unpack_from("<Q", so, 40)
    shnum, = struct.unpack_from("<H", so, 60)
    secs = [struct.unpack_from("<IIQQQQIIQQ", so, shoff + 64 * i) for i in range(shnum)]
    ro = secs[2]
    rel = secs[5]
    in_rodata = []
    for i in range(rel[5] // 16):
        off, info = struct.unpack_from("<QQ", so, rel[4] + 16 * i)
        if info == 8 and ro[3] <= off < ro[3] + ro[5]:
            lo, hi = struct.unpack_from("<II", so, off)
            in_rodata.append((lo, hi))
    assert len(in_rodata) == 2
    assert all(lo == 0 and 0 < hi < len(so) for lo, hi in in_rodata)
