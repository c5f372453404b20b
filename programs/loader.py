"""The BPF upgradeable loader (loader v3): its instructions and account states, encoded as the validator
decodes them, so the CLI's deploy, the localnet's emulation of the loader and the in-SVM deploy of
`programs.deploy` share one definition (it sits in `programs/`, which every other package may import).

Layout (agave `UpgradeableLoaderInstruction` / `UpgradeableLoaderState`, bincode): a u32 little-endian tag,
then the variant's fields (u32/u64 little endian, `Vec<u8>` as a u64 length + bytes, `Option<Pubkey>` as a
0/1 byte + 32 bytes). Account metadata sizes are fixed whatever the Option holds: Buffer 37 bytes,
Program 36, ProgramData 45; the ELF follows a Buffer's or a ProgramData's metadata.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import CLOCK, RENT

LOADER_V3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
BUFFER_META = 37
PROGRAM_SIZE = 36
PROGRAMDATA_META = 45
MIN_EXTEND_BYTES = 10240  # ExtendProgram refuses less, unless it reaches the 10 MiB maximum
PACKET_DATA_SIZE = 1232  # the most bytes a serialized transaction may have

INITIALIZE_BUFFER, WRITE, DEPLOY_WITH_MAX_DATA_LEN, UPGRADE, SET_AUTHORITY, CLOSE, EXTEND_PROGRAM, \
    SET_AUTHORITY_CHECKED = range(8)
# A legacy transaction with one signature and a Write to a buffer: 1 + 64 signature, 3 header, 1 + 3*32 keys
# (authority/payer, buffer, loader), 32 blockhash, 1 instruction count, 1 program index, 1 + 2 accounts,
# 2 data length, 16 Write header (tag, offset, length): what is left of the packet carries ELF bytes.
WRITE_CHUNK = PACKET_DATA_SIZE - (1 + 64 + 3 + 1 + 3 * 32 + 32 + 1 + 1 + 3 + 2 + 16)


def programdata_address(program_id: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(program_id)], LOADER_V3)[0]


def _opt(key: Pubkey | None) -> bytes:
    return b"\x00" + bytes(32) if key is None else b"\x01" + bytes(key)


def initialize_buffer(buffer: Pubkey, authority: Pubkey) -> Instruction:
    return Instruction(LOADER_V3, struct.pack("<I", INITIALIZE_BUFFER),
                       [AccountMeta(buffer, False, True), AccountMeta(authority, False, False)])


def create_buffer(payer: Pubkey, buffer: Pubkey, authority: Pubkey, elf_len: int, lamports: int) -> list[Instruction]:
    """System create_account sized for the ELF, then InitializeBuffer (what `solana program write-buffer` sends)."""
    return [create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=buffer, lamports=lamports,
                                               space=BUFFER_META + elf_len, owner=LOADER_V3)),
            initialize_buffer(buffer, authority)]


def write(buffer: Pubkey, authority: Pubkey, offset: int, data: bytes) -> Instruction:
    return Instruction(LOADER_V3, struct.pack("<IIQ", WRITE, offset, len(data)) + data,
                       [AccountMeta(buffer, False, True), AccountMeta(authority, True, False)])


def deploy_with_max_data_len(payer: Pubkey, program_id: Pubkey, buffer: Pubkey, authority: Pubkey,
                             program_lamports: int, max_data_len: int) -> list[Instruction]:
    """Create the program account (36 bytes, owned by the loader), then DeployWithMaxDataLen."""
    return [create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=program_id, lamports=program_lamports,
                                               space=PROGRAM_SIZE, owner=LOADER_V3)),
            Instruction(LOADER_V3, struct.pack("<IQ", DEPLOY_WITH_MAX_DATA_LEN, max_data_len), [
                AccountMeta(payer, True, True), AccountMeta(programdata_address(program_id), False, True),
                AccountMeta(program_id, False, True), AccountMeta(buffer, False, True),
                AccountMeta(RENT, False, False), AccountMeta(CLOCK, False, False),
                AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(authority, True, False)])]


def upgrade(program_id: Pubkey, buffer: Pubkey, authority: Pubkey, spill: Pubkey) -> Instruction:
    return Instruction(LOADER_V3, struct.pack("<I", UPGRADE), [
        AccountMeta(programdata_address(program_id), False, True), AccountMeta(program_id, False, True),
        AccountMeta(buffer, False, True), AccountMeta(spill, False, True), AccountMeta(RENT, False, False),
        AccountMeta(CLOCK, False, False), AccountMeta(authority, True, False)])


def extend_program(program_id: Pubkey, payer: Pubkey, additional_bytes: int) -> Instruction:
    """ExtendProgram: grow ProgramData (the payer funds the rent) so a larger ELF can be upgraded in. The
    loader marks the program as deployed in this slot: an Upgrade must wait for the next one."""
    return Instruction(LOADER_V3, struct.pack("<II", EXTEND_PROGRAM, additional_bytes), [
        AccountMeta(programdata_address(program_id), False, True), AccountMeta(program_id, False, True),
        AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(payer, True, True)])


def set_authority(account: Pubkey, current: Pubkey, new: Pubkey | None) -> Instruction:
    """SetAuthority on a buffer or a ProgramData account; new=None makes a program immutable."""
    metas = [AccountMeta(account, False, True), AccountMeta(current, True, False)]
    if new is not None:
        metas.append(AccountMeta(new, False, False))
    return Instruction(LOADER_V3, struct.pack("<I", SET_AUTHORITY), metas)


def set_authority_checked(account: Pubkey, current: Pubkey, new: Pubkey) -> Instruction:
    """SetAuthorityChecked: the new authority signs too, so a typo cannot hand the program to nobody."""
    return Instruction(LOADER_V3, struct.pack("<I", SET_AUTHORITY_CHECKED), [
        AccountMeta(account, False, True), AccountMeta(current, True, False), AccountMeta(new, True, False)])


def close(account: Pubkey, recipient: Pubkey, authority: Pubkey, program_id: Pubkey | None = None) -> Instruction:
    """Close a buffer (program_id None) or a program's ProgramData (account = its programdata address)."""
    metas = [AccountMeta(account, False, True), AccountMeta(recipient, False, True),
             AccountMeta(authority, True, False)]
    if program_id is not None:
        metas.append(AccountMeta(program_id, False, True))
    return Instruction(LOADER_V3, struct.pack("<I", CLOSE), metas)


@dataclass(frozen=True)
class LoaderState:
    """A loader-owned account decoded: kind is uninitialized/buffer/program/programdata."""
    kind: str
    authority: Pubkey | None = None
    programdata: Pubkey | None = None
    slot: int | None = None
    elf: bytes = b""


def decode_state(data: bytes) -> LoaderState:
    """Decode an account the loader owns; ValueError on data the loader itself would refuse to read."""
    if len(data) < 4:
        raise ValueError("account data shorter than the loader's 4-byte state tag")
    tag = struct.unpack_from("<I", data)[0]

    def opt(at: int) -> Pubkey | None:
        if len(data) < at + 1 or data[at] not in (0, 1) or (data[at] == 1 and len(data) < at + 33):
            raise ValueError("malformed Option<Pubkey> in loader state")
        return Pubkey.from_bytes(data[at + 1:at + 33]) if data[at] == 1 else None

    if tag == 0:
        return LoaderState("uninitialized")
    if tag == 1:
        return LoaderState("buffer", authority=opt(4), elf=data[BUFFER_META:])
    if tag == 2 and len(data) >= PROGRAM_SIZE:
        return LoaderState("program", programdata=Pubkey.from_bytes(data[4:36]))
    if tag == 3 and len(data) >= 13:
        return LoaderState("programdata", slot=struct.unpack_from("<Q", data, 4)[0], authority=opt(12),
                           elf=data[PROGRAMDATA_META:])
    raise ValueError(f"unknown loader state tag {tag} (or account too short for it)")


def buffer_state(authority: Pubkey | None) -> bytes:
    return struct.pack("<I", 1) + _opt(authority)


def program_state(programdata: Pubkey) -> bytes:
    return struct.pack("<I", 2) + bytes(programdata)


def programdata_state(slot: int, authority: Pubkey | None) -> bytes:
    return struct.pack("<IQ", 3, slot) + _opt(authority)


def elf_length(elf: bytes) -> int:
    """The ELF's own length, from its section header table (e_shoff + e_shnum * e_shentsize): a programdata
    account is padded with zeros up to max_data_len, and `show`/`verify` compare the program's bytes only."""
    if len(elf) < 64 or elf[:4] != b"\x7fELF":
        return len(elf.rstrip(b"\0"))
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
    end = shoff + shentsize * shnum
    return end if 0 < end <= len(elf) else len(elf.rstrip(b"\0"))
