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

import struct
from dataclasses import dataclass, field

from solders.account import Account
from solders.instruction import AccountMeta, CompiledInstruction, Instruction
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    TransactionErrorInstructionError,
)

from localnet.loader_processor import (
    _LOADER,
    MAX_PERMITTED_DATA_LENGTH,
    Fail,
    close_program,
    deploy,
    fieldless,
    loader_state,
    writable,
)
from programs import loader as ldr

LAMPORTS_PER_SIGNATURE = 5000
MIN_EXTEND = 10240  # agave's MINIMUM_EXTEND_PROGRAM_BYTES


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


def _kind(svm: LiteSVM, keys: list[Pubkey], ix: CompiledInstruction) -> str | None:
    """Which instructions are executed here: "deploy" (DeployWithMaxDataLen, refused by 0.26), "close_program"
    (Close of a ProgramData: 0.26 panics reloading the program afterwards) and "closed" (a call into a closed
    program: 0.26 keeps running it from its cache; a validator answers UnsupportedProgramId)."""
    if ix.program_id_index >= len(keys):
        return None
    program, data = keys[ix.program_id_index], bytes(ix.data)
    if str(program) == _LOADER:
        if data[:4] == struct.pack("<I", 2):
            return "deploy"
        if data[:4] in (struct.pack("<I", 6), struct.pack("<I", 9)) and len(data) >= 8 and ix.accounts \
                and ix.accounts[0] < len(keys):
            pd = svm.get_account(keys[ix.accounts[0]])
            more = struct.unpack_from("<I", data, 4)[0]
            size = (len(pd.data) if pd is not None else 0) + more
            return "extend_too_little" if more < MIN_EXTEND and size < MAX_PERMITTED_DATA_LENGTH else None
        if data[:4] == struct.pack("<I", 5) and len(ix.accounts) >= 4 and ix.accounts[0] < len(keys):
            st = loader_state(svm, keys[ix.accounts[0]])
            return "close_program" if st is not None and st.kind == "programdata" else None
        return None
    acc = svm.get_account(program)  # a program account is 36 bytes: cheap on every transaction's path
    if acc is None or acc.owner != ldr.LOADER_V3 or bytes(acc.data)[:4] != struct.pack("<I", 2):
        return None
    # a closed ProgramData has no lamports; get_balance does not copy the ELF
    return "closed" if not svm.get_balance(Pubkey.from_bytes(bytes(acc.data)[4:36])) else None


def needs_emulation(svm: LiteSVM, tx: VersionedTransaction) -> bool:
    msg = tx.message
    if getattr(msg, "address_table_lookups", None):
        return False  # the Solana CLI deploys with legacy messages; v0 ones go to LiteSVM as they are
    keys = list(msg.account_keys)
    return any(_kind(svm, keys, ix) for ix in msg.instructions)


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
    kinds = [_kind(svm, keys, ix) for ix in msg.instructions]
    first = next(i for i, k in enumerate(kinds) if k)
    if failed(pre):
        err = pre.err()
        index = getattr(err, "index", None)
        # a closed program restored from the ledger is not executable here: LiteSVM refuses the transaction
        # before running it, where a validator fails the call with UnsupportedProgramId
        closed_call = "closed" in kinds and "InvalidProgramForExecution" in str(err)
        if not closed_call and (index is None or index < first):
            return svm.send_transaction(tx) if commit else pre
    fee = LAMPORTS_PER_SIGNATURE * msg.header.num_required_signatures
    meta = EmulatedMeta()
    charged = 0
    segment: list[tuple[int, CompiledInstruction]] = []
    try:
        for i, ix in enumerate(msg.instructions):
            kind = _kind(svm, keys, ix) if kinds[i] else None  # earlier instructions may have changed it
            if kind is None:
                segment.append((i, ix))
                continue
            charged += _run_segment(svm, msg, segment, meta)
            segment = []
            if kind == "deploy":
                meta.inner.append(deploy(svm, msg, i, ix, slot, meta))
            elif kind == "extend_too_little":  # a rule of current validators that 0.26's loader lacks
                raise Fail(TransactionErrorInstructionError(i, fieldless("InvalidArgument")), [
                    f"Program {_LOADER} invoke [1]",
                    f"ExtendProgram requires a minimum of {MIN_EXTEND} additional bytes or to extend to maximum "
                    f"size, but only {struct.unpack_from('<I', bytes(ix.data), 4)[0]} were requested",
                    f"Program {_LOADER} failed: invalid program argument"])
            elif kind == "close_program":
                meta.inner.append(close_program(svm, msg, i, ix, slot, meta))
            else:
                raise Fail(TransactionErrorInstructionError(i, fieldless("UnsupportedProgramId")),
                            [f"Program {keys[ix.program_id_index]} invoke [1]",
                             f"Program {keys[ix.program_id_index]} failed: Unsupported program id"])
        charged += _run_segment(svm, msg, segment, meta)
    except Fail as f:
        _restore(svm, before)
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
        _restore(svm, before)
    return meta


def _restore(svm: LiteSVM, before: dict[Pubkey, Account | None]) -> None:
    """Put back the accounts that changed (only those: LiteSVM refuses to set a program account whose
    ProgramData is gone, even to what it already is)."""
    for k, acc in before.items():
        want = acc if acc is not None else Account(0, b"", Pubkey.default(), False, 0)
        now = svm.get_account(k)
        if now != want and not (acc is None and now is not None and now.lamports == 0 and not now.executable
                                and not bytes(now.data)):
            svm.set_account(k, want)


def _run_segment(svm: LiteSVM, msg: Message, segment: list[tuple[int, CompiledInstruction]],
                 meta: EmulatedMeta) -> int:
    """Run consecutive non-deploy instructions in LiteSVM (signatures were verified on the whole
    transaction); returns the fee LiteSVM charged for them, which the caller gives back."""
    if not segment:
        return 0
    keys = list(msg.account_keys)
    h = msg.header
    ixs = [Instruction(keys[ix.program_id_index], bytes(ix.data),
                       [AccountMeta(keys[a], a < h.num_required_signatures, writable(msg, a)) for a in ix.accounts])
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
        raise Fail(TransactionErrorInstructionError(segment[index][0], err.err), [])
    meta.log_lines += list(res.logs())
    meta.cu += res.compute_units_consumed()
    meta.inner += [list(x) for x in res.inner_instructions()]
    return fee




def restore_account(svm: LiteSVM, key: Pubkey, acc: Account) -> None:
    """Set an account read back from the ledger. A closed program (executable, its ProgramData gone) is
    refused by LiteSVM's set_account, which tries to load it: it is kept as a non-executable loader account,
    which this module still treats as a closed program (calls into it fail with UnsupportedProgramId)."""
    try:
        svm.set_account(key, acc)
    except Exception:  # noqa: BLE001 - solders.LiteSVMError: "invalid account data for instruction"
        if not (acc.executable and acc.owner == ldr.LOADER_V3):
            raise
        svm.set_account(key, Account(acc.lamports, acc.data, acc.owner, False, acc.rent_epoch))
