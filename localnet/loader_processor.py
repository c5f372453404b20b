"""The validator's upgradeable-loader processor for the instructions solders 0.26's LiteSVM gets wrong
(DeployWithMaxDataLen, Close of a ProgramData), step for step after agave's `bpf_loader`: the same checks in
the same order, the same InstructionErrors and log lines, the same account changes. localnet/loader runs
them inside a transaction; an ELF is checked by the real loader in a scratch LiteSVM (verify_elf)."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from solders.account import Account
from solders.instruction import CompiledInstruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.sysvar import CLOCK, RENT
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorInstructionError,
)

from programs import loader as ldr

MAX_PERMITTED_DATA_LENGTH = 10 * 1024 * 1024
SYSTEM_CU = 150  # what a System program instruction costs
_LOADER = str(ldr.LOADER_V3)
_SYSTEM = str(SYSTEM_PROGRAM)
_verified: dict[bytes, tuple[object, list[str], int]] = {}  # sha256(elf) -> (error or None, logs, CU)


class Fail(Exception):
    def __init__(self, err: object, logs: list[str]) -> None:
        super().__init__(str(err))
        self.err, self.logs = err, logs


@dataclass
class Inner:
    """Duck-types LiteSVM's InnerInstruction (what Chain reads: instruction(), stack_height())."""
    ix: CompiledInstruction
    height: int = 2

    def instruction(self) -> CompiledInstruction:
        return self.ix

    def stack_height(self) -> int:
        return self.height


def loader_state(svm: LiteSVM, key: Pubkey) -> ldr.LoaderState | None:
    acc = svm.get_account(key)
    if acc is None or acc.owner != ldr.LOADER_V3 or acc.lamports == 0 and not acc.executable:
        return None
    try:
        return ldr.decode_state(bytes(acc.data))
    except ValueError:
        return None


def writable(msg: Message, i: int) -> bool:
    h, n = msg.header, len(msg.account_keys)
    if i < h.num_required_signatures:
        return i < h.num_required_signatures - h.num_readonly_signed_accounts
    return i < n - h.num_readonly_unsigned_accounts


def fieldless(name: str) -> object:
    return getattr(InstructionErrorFieldless, name)


def deploy(svm: LiteSVM, msg: Message, index: int, ix: CompiledInstruction, slot: int,
            meta: Any) -> list:
    """agave's DeployWithMaxDataLen, step for step; raises Fail with the validator's error and logs."""
    keys = list(msg.account_keys)
    logs = [f"Program {_LOADER} invoke [1]"]

    def fail(err: object, line: str | None = None, name: str | None = None) -> Fail:
        out = logs + ([line] if line else [])
        text = name or "failed"
        out.append(f"Program {_LOADER} failed: {text}")
        if isinstance(err, str):
            err = fieldless(err)
        return Fail(TransactionErrorInstructionError(index, err), out)

    data = bytes(ix.data)
    if len(data) < 12:
        raise fail("InvalidInstructionData", name="invalid instruction data")
    max_data_len = struct.unpack_from("<Q", data, 4)[0]
    acc = list(ix.accounts)
    if len(acc) < 4:
        raise fail("NotEnoughAccountKeys", name="insufficient account keys for instruction")
    payer_k, pd_k, prog_k, buf_k = (keys[a] for a in acc[:4])
    if len(acc) < 6:
        raise fail("NotEnoughAccountKeys", name="insufficient account keys for instruction")
    if keys[acc[4]] != RENT or keys[acc[5]] != CLOCK:
        raise fail("InvalidArgument", name="invalid program argument")
    if len(acc) < 8:
        raise fail("NotEnoughAccountKeys", name="insufficient account keys for instruction")
    authority = keys[acc[7]]
    rent = svm.minimum_balance_for_rent_exemption
    prog = svm.get_account(prog_k)
    prog_data = bytes(prog.data) if prog is not None else b""
    if len(prog_data) < 4:
        raise fail("InvalidAccountData", name="invalid account data for instruction")
    if prog_data[:4] != struct.pack("<I", 0):
        raise fail("AccountAlreadyInitialized", "Program account already initialized",
                   "account already initialized")
    if len(prog_data) < ldr.PROGRAM_SIZE:
        raise fail("AccountDataTooSmall", "Program account too small", "account data too small for instruction")
    if prog.lamports < rent(len(prog_data)):
        raise fail("ExecutableAccountNotRentExempt", "Program account not rent-exempt",
                   "executable accounts must be rent exempt")
    buf = svm.get_account(buf_k)
    try:
        bstate = ldr.decode_state(bytes(buf.data)) if buf is not None else None
    except ValueError:
        bstate = None
    if bstate is None or bstate.kind != "buffer":
        raise fail("InvalidArgument", "Invalid Buffer account", "invalid program argument")
    if bstate.authority != authority:
        raise fail("IncorrectAuthority", "Buffer and upgrade authority don't match", "Incorrect authority provided")
    if acc[7] >= msg.header.num_required_signatures:
        raise fail("MissingRequiredSignature", "Upgrade authority did not sign",
                   "missing required signature for instruction")
    elf_len = len(buf.data) - ldr.BUFFER_META
    programdata_len = ldr.PROGRAMDATA_META + max_data_len
    if elf_len <= 0:
        raise fail("InvalidAccountData", "Buffer account too small", "invalid account data for instruction")
    if max_data_len < elf_len:
        raise fail("AccountDataTooSmall", "Max data length is too small to hold Buffer data",
                   "account data too small for instruction")
    if programdata_len > MAX_PERMITTED_DATA_LENGTH:
        raise fail("InvalidArgument", "Max data length is too large", "invalid program argument")
    if ldr.programdata_address(prog_k) != pd_k:
        raise fail("InvalidArgument", "ProgramData address is not derived", "invalid program argument")
    if not (writable(msg, acc[0]) and writable(msg, acc[1]) and writable(msg, acc[2]) and writable(msg, acc[3])):
        raise fail("ReadonlyLamportChange", name="instruction changed the balance of a read-only account")
    # Drain the buffer into the payer, then the System program's create_account (a CPI signed by the PDA).
    payer = svm.get_account(payer_k)
    payer_lamports = (payer.lamports if payer else 0) + buf.lamports
    logs.append(f"Program {_SYSTEM} invoke [2]")
    if acc[0] >= msg.header.num_required_signatures:
        logs.append(f"{payer_k}'s signer privilege escalated")
        raise fail("PrivilegeEscalation", name="Cross-program invocation with unauthorized signer or writable account")
    existing = svm.get_account(pd_k)
    if existing is not None and (existing.lamports > 0 or bytes(existing.data) or existing.owner != SYSTEM_PROGRAM):
        logs.append(f"Create Account: account Address {{ address: {pd_k}, base: None }} already in use")
        logs.append(f"Program {_SYSTEM} failed: custom program error: 0x0")
        raise fail(InstructionErrorCustom(0), name="custom program error: 0x0")
    pd_lamports = max(1, rent(programdata_len))
    if payer_lamports < pd_lamports:
        logs.append(f"Transfer: insufficient lamports {payer_lamports}, need {pd_lamports}")
        logs.append(f"Program {_SYSTEM} failed: custom program error: 0x1")
        raise fail(InstructionErrorCustom(1), name="custom program error: 0x1")
    logs.append(f"Program {_SYSTEM} success")
    elf = bytes(buf.data)[ldr.BUFFER_META:]
    verr, vlogs, vcu = verify_elf(elf)
    if verr is not None:
        logs.extend(vlogs)
        raise fail(verr, name="invalid account data for instruction")
    # Commit: programdata first (LiteSVM loads a program from its ProgramData when the program is set).
    svm.set_account(payer_k, Account(payer_lamports - pd_lamports, payer.data, payer.owner, payer.executable,
                                     payer.rent_epoch))
    pd_data = ldr.programdata_state(slot, authority) + elf
    pd_data += bytes(programdata_len - len(pd_data))
    svm.set_account(pd_k, Account(pd_lamports, pd_data, ldr.LOADER_V3, False, 0))
    svm.set_account(buf_k, Account(0, bytes(buf.data)[:ldr.BUFFER_META], ldr.LOADER_V3, False, 0))
    svm.set_account(prog_k, Account(prog.lamports, ldr.program_state(pd_k) + prog_data[ldr.PROGRAM_SIZE:],
                                    ldr.LOADER_V3, True, prog.rent_epoch))
    logs += [f"Deployed program {prog_k}", f"Program {_LOADER} success"]
    meta.log_lines += logs
    meta.cu += vcu + SYSTEM_CU  # the loader's own units, then the create_account CPI's
    sys_index = keys.index(SYSTEM_PROGRAM) if SYSTEM_PROGRAM in keys else 0
    create = struct.pack("<IQQ", 0, pd_lamports, programdata_len) + bytes(ldr.LOADER_V3)
    return [Inner(CompiledInstruction(sys_index, create, bytes([acc[0], acc[1], acc[3]])))]


def close_program(svm: LiteSVM, msg: Message, index: int, ix: CompiledInstruction, slot: int,
                   meta: Any) -> list:
    """agave's Close of a ProgramData account (with its program): the same checks, in order; the
    ProgramData becomes Uninitialized with 0 lamports (purged), its lamports go to the recipient."""
    keys, acc = list(msg.account_keys), list(ix.accounts)
    logs = [f"Program {_LOADER} invoke [1]"]

    def fail(err: str, line: str, name: str) -> Fail:
        return Fail(TransactionErrorInstructionError(index, fieldless(err)),
                     logs + [line, f"Program {_LOADER} failed: {name}"])

    close_k, recipient_k, authority_k, program_k = (keys[a] for a in acc[:4])
    if close_k == recipient_k:
        raise fail("InvalidArgument", "Recipient is the same as the account being closed", "invalid program argument")
    pd = loader_state(svm, close_k)
    program = svm.get_account(program_k)
    if not writable(msg, acc[3]):
        raise fail("InvalidArgument", "Program account is not writable", "invalid program argument")
    if program is None or program.owner != ldr.LOADER_V3:
        raise fail("IncorrectProgramId", "Program account not owned by loader", "incorrect program id for instruction")
    if pd.slot == slot:
        raise fail("InvalidArgument", "Program was deployed in this block already", "invalid program argument")
    pstate = loader_state(svm, program_k)
    if pstate is None or pstate.kind != "program":
        raise fail("InvalidArgument", "Invalid Program account", "invalid program argument")
    if pstate.programdata != close_k:
        raise fail("InvalidArgument", "ProgramData account does not match ProgramData account",
                   "invalid program argument")
    if pd.authority is None:
        raise fail("Immutable", "Account is immutable", "Account is immutable")
    if pd.authority != authority_k:
        raise fail("IncorrectAuthority", "Incorrect authority provided", "Incorrect authority provided")
    if acc[2] >= msg.header.num_required_signatures:
        raise fail("MissingRequiredSignature", "Authority did not sign", "missing required signature for instruction")
    closing = svm.get_account(close_k)
    recipient = svm.get_account(recipient_k) or Account(0, b"", SYSTEM_PROGRAM, False, 0)
    svm.set_account(recipient_k, Account(recipient.lamports + closing.lamports, recipient.data, recipient.owner,
                                         recipient.executable, recipient.rent_epoch))
    svm.set_account(close_k, Account(0, struct.pack("<I", 0), ldr.LOADER_V3, False, 0))
    meta.log_lines += logs + [f"Closed Program {program_k}", f"Program {_LOADER} success"]
    return []


def verify_elf(elf: bytes) -> tuple[object, list[str], int]:
    """(error or None, the loader's log lines, compute units) from the real loader's deploy-time checks:
    the ELF is deployed in a scratch LiteSVM through Upgrade, which runs the same checks (and costs the
    same compute units) as DeployWithMaxDataLen. Cached by hash: preflight and send verify the same bytes."""
    digest = hashlib.sha256(elf).digest()
    if digest in _verified:
        return _verified[digest]
    from programs.deploy import DeployError, deploy_via_loader  # the Upgrade path, proven against 0.29

    scratch = LiteSVM()
    authority = Keypair()
    scratch.airdrop(authority.pubkey(), 10**12)
    try:
        done = deploy_via_loader(scratch, elf, Keypair().pubkey(), authority)
        result: tuple[object, list[str], int] = (None, [], done.upgrade_cu)
    except DeployError as e:
        lines = [line.strip() for line in str(e).splitlines()[1:]]
        inner = [x for x in lines if not x.startswith("Program ")]
        result = (getattr(e, "instruction_error", None) or fieldless("InvalidAccountData"), inner, 0)
    except BaseException as e:  # noqa: BLE001 - 0.26 panics (pyo3 PanicException) on some broken ELFs
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        result = (fieldless("InvalidAccountData"), [f"Failed to deploy program: {e}"], 0)
    if len(_verified) > 64:
        _verified.clear()
    _verified[digest] = result
    return result
