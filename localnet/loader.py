"""The upgradeable loader's DeployWithMaxDataLen, executed the validator's way on solders 0.26's LiteSVM.

Why: that LiteSVM runs InitializeBuffer, Write, Upgrade, SetAuthority(Checked), Close and ExtendProgram
natively, but answers "Unsupported instruction" to DeployWithMaxDataLen (its feature set disables new
loader-v3 deployments and cannot be changed). A transaction holding one is executed here in pieces: the
instructions around it run in LiteSVM as they are; the deploy itself replays agave's processor
(`bpf_loader` DeployWithMaxDataLen: the same checks, in the same order, with the same InstructionErrors
and log lines; the buffer drained into the payer; ProgramData created through the System program's rules
at max_data_len with the slot/authority header; the program account made executable), and the ELF is
verified by the real loader: it is deployed in a scratch LiteSVM through `Upgrade`, which runs the same
deploy-time checks as DeployWithMaxDataLen. The transaction stays atomic: any failure puts every account
back and charges only the fee, as a validator does.
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from solders.account import Account
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.sysvar import CLOCK, RENT
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    InstructionErrorFieldless,
    TransactionErrorInstructionError,
)

from coordinator_sdk import loader as ldr

LAMPORTS_PER_SIGNATURE = 5000
MAX_PERMITTED_DATA_LENGTH = 10 * 1024 * 1024
_LOADER = str(ldr.LOADER_V3)
_SYSTEM = str(SYSTEM_PROGRAM)
_verified: dict[bytes, tuple[object, list[str], int]] = {}  # sha256(elf) -> (error or None, logs, CU)


class _Fail(Exception):
    def __init__(self, err: object, logs: list[str]) -> None:
        super().__init__(str(err))
        self.err, self.logs = err, logs


@dataclass
class _Inner:
    """Duck-types LiteSVM's InnerInstruction (what Chain reads: instruction(), stack_height())."""
    ix: CompiledInstruction
    height: int = 2

    def instruction(self) -> CompiledInstruction:
        return self.ix

    def stack_height(self) -> int:
        return self.height


@dataclass
class EmulatedMeta:
    """Duck-types LiteSVM's TransactionMetadata for a transaction executed here."""
    log_lines: list[str] = field(default_factory=list)
    cu: int = 0
    inner: list[list] = field(default_factory=list)
    post: list[tuple[Pubkey, Account]] = field(default_factory=list)

    def logs(self) -> list[str]:
        return self.log_lines

    def compute_units_consumed(self) -> int:
        return self.cu

    def inner_instructions(self) -> list[list]:
        return self.inner

    def return_data(self) -> None:
        return None

    def post_accounts(self) -> list[tuple[Pubkey, Account]]:
        return self.post

    def meta(self) -> EmulatedMeta:  # a simulation result is read through .meta()
        return self


@dataclass
class EmulatedFailure:
    """Duck-types LiteSVM's FailedTransactionMetadata."""
    error: object
    metadata: EmulatedMeta

    def err(self) -> object:
        return self.error

    def meta(self) -> EmulatedMeta:
        return self.metadata


def failed(res: object) -> bool:
    return isinstance(res, EmulatedFailure) or type(res).__name__ == "FailedTransactionMetadata"


def _is_deploy(keys: list[Pubkey], ix: CompiledInstruction) -> bool:
    return str(keys[ix.program_id_index]) == _LOADER and bytes(ix.data)[:4] == struct.pack("<I", 2)


def needs_emulation(tx: VersionedTransaction) -> bool:
    msg = tx.message
    if getattr(msg, "address_table_lookups", None):
        return False  # the Solana CLI deploys with legacy messages; v0 ones go to LiteSVM as they are
    keys = list(msg.account_keys)
    return any(ix.program_id_index < len(keys) and _is_deploy(keys, ix) for ix in msg.instructions)


def execute(svm: LiteSVM, tx: VersionedTransaction, slot: int, commit: bool, sig_verify: bool = True) -> object:
    """Run tx (holding a DeployWithMaxDataLen) atomically; commit=False leaves every account as it was."""
    msg = tx.message
    keys = list(msg.account_keys)
    before = {k: svm.get_account(k) for k in keys}
    svm.with_sigverify(sig_verify)
    try:
        pre = svm.simulate_transaction(tx)  # signatures, fee payer, and the instructions before the deploy
    finally:
        svm.with_sigverify(True)
    first = next(i for i, ix in enumerate(msg.instructions) if _is_deploy(keys, ix))
    if failed(pre):
        err = pre.err()
        index = getattr(err, "index", None)
        if index is None or index < first:
            return svm.send_transaction(tx) if commit else pre
    fee = LAMPORTS_PER_SIGNATURE * msg.header.num_required_signatures
    meta = EmulatedMeta()
    charged = 0
    segment: list[tuple[int, CompiledInstruction]] = []
    try:
        for i, ix in enumerate(msg.instructions):
            if not _is_deploy(keys, ix):
                segment.append((i, ix))
                continue
            charged += _run_segment(svm, msg, segment, meta)
            segment = []
            meta.inner.append(_deploy(svm, msg, i, ix, slot, meta))
        charged += _run_segment(svm, msg, segment, meta)
    except _Fail as f:
        for k, acc in before.items():
            svm.set_account(k, acc if acc is not None else Account(0, b"", Pubkey.default(), False, 0))
        payer = svm.get_account(keys[0])
        svm.set_account(keys[0], Account(payer.lamports - fee, payer.data, payer.owner, payer.executable,
                                         payer.rent_epoch))
        meta.log_lines += f.logs
        return EmulatedFailure(f.err, meta)
    payer = svm.get_account(keys[0])
    svm.set_account(keys[0], Account(payer.lamports + charged - fee, payer.data, payer.owner, payer.executable,
                                     payer.rent_epoch))
    meta.post = [(k, svm.get_account(k)) for k in keys]
    if not commit:
        for k, acc in before.items():
            svm.set_account(k, acc if acc is not None else Account(0, b"", Pubkey.default(), False, 0))
    return meta


def _run_segment(svm: LiteSVM, msg: Message, segment: list[tuple[int, CompiledInstruction]],
                 meta: EmulatedMeta) -> int:
    """Run consecutive non-deploy instructions in LiteSVM (signatures were verified on the whole
    transaction); returns the fee LiteSVM charged for them, which the caller gives back."""
    if not segment:
        return 0
    keys = list(msg.account_keys)
    h = msg.header
    ixs = [Instruction(keys[ix.program_id_index], bytes(ix.data),
                       [AccountMeta(keys[a], a < h.num_required_signatures, _writable(msg, a)) for a in ix.accounts])
           for _, ix in segment]
    seg_msg = Message.new_with_blockhash(ixs, keys[0], msg.recent_blockhash)
    svm.with_sigverify(False)
    try:
        res = svm.send_transaction(Transaction.new_unsigned(seg_msg))
    finally:
        svm.with_sigverify(True)
    fee = LAMPORTS_PER_SIGNATURE * seg_msg.header.num_required_signatures
    if failed(res):
        err = res.err()
        meta.log_lines += list(res.meta().logs())
        index = getattr(err, "index", 0)
        raise _Fail(TransactionErrorInstructionError(segment[index][0], err.err), [])
    meta.log_lines += list(res.logs())
    meta.cu += res.compute_units_consumed()
    meta.inner += [list(x) for x in res.inner_instructions()]
    return fee


def _writable(msg: Message, i: int) -> bool:
    h, n = msg.header, len(msg.account_keys)
    if i < h.num_required_signatures:
        return i < h.num_required_signatures - h.num_readonly_signed_accounts
    return i < n - h.num_readonly_unsigned_accounts


def _fieldless(name: str) -> object:
    return getattr(InstructionErrorFieldless, name)


def _deploy(svm: LiteSVM, msg: Message, index: int, ix: CompiledInstruction, slot: int,
            meta: EmulatedMeta) -> list:
    """agave's DeployWithMaxDataLen, step for step; raises _Fail with the validator's error and logs."""
    keys = list(msg.account_keys)
    logs = [f"Program {_LOADER} invoke [1]"]

    def fail(err: object, line: str | None = None, name: str | None = None) -> _Fail:
        out = logs + ([line] if line else [])
        text = name or "failed"
        out.append(f"Program {_LOADER} failed: {text}")
        if isinstance(err, str):
            err = _fieldless(err)
        return _Fail(TransactionErrorInstructionError(index, err), out)

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
        raise fail("MissingRequiredSignature", "Upgrade authority did not sign", "missing required signature for instruction")
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
    if not (_writable(msg, acc[0]) and _writable(msg, acc[1]) and _writable(msg, acc[2]) and _writable(msg, acc[3])):
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
    meta.cu += vcu
    sys_index = keys.index(SYSTEM_PROGRAM) if SYSTEM_PROGRAM in keys else 0
    create = struct.pack("<IQQ", 0, pd_lamports, programdata_len) + bytes(ldr.LOADER_V3)
    return [_Inner(CompiledInstruction(sys_index, create, bytes([acc[0], acc[1], acc[3]])))]


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
        result = (getattr(e, "instruction_error", None) or _fieldless("InvalidAccountData"), inner, 0)
    except BaseException as e:  # noqa: BLE001 - 0.26 panics (pyo3 PanicException) on some broken ELFs
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        result = (_fieldless("InvalidAccountData"), [f"Failed to deploy program: {e}"], 0)
    if len(_verified) > 64:
        _verified.clear()
    _verified[digest] = result
    return result
