"""DeployWithMaxDataLen scenarios, run both by solders 0.29's LiteSVM (the validator's loader, in the tools
venv .venv-deploycheck) and by the localnet (solders 0.26 plus localnet/loader's emulation), so a test can
check that the localnet answers every case as a validator does: same error, same accounts afterwards.

    .venv-deploycheck/bin/python programs/deploy_scenarios.py programs/deploy/hello.so

Self-contained on purpose (solders only), like deploycheck.py. `run(backend, elf)` takes a backend with
send(tx) -> error JSON or None, blockhash(), account(key) -> (lamports, data, owner, executable) | None,
fund(key, lamports), next_slot()."""
from __future__ import annotations

import hashlib
import json
import struct
import sys
from pathlib import Path

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import CLOCK, RENT
from solders.transaction import Transaction

LOADER = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
CHUNK = 900
RENT_PER_BYTE_YEAR = 3480 * 2  # exempt = (128 + size) * 6960, as LiteSVM's default Rent


def _rent(size: int) -> int:
    return (128 + size) * RENT_PER_BYTE_YEAR


def _tx(b, payer: Keypair, ixs: list[Instruction], signers: list[Keypair]) -> Transaction:
    return Transaction.new_signed_with_payer(ixs, payer.pubkey(), signers, b.blockhash())


def _buffer(b, payer: Keypair, authority: Pubkey, elf: bytes) -> Keypair:
    buf = Keypair()
    size = 37 + len(elf)
    assert b.send(_tx(b, payer, [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=buf.pubkey(), lamports=_rent(size),
                                           space=size, owner=LOADER)),
        Instruction(LOADER, struct.pack("<I", 0), [AccountMeta(buf.pubkey(), False, True),
                                                   AccountMeta(authority, False, False)])], [payer, buf])) is None
    return buf


def _write(b, payer: Keypair, buf: Pubkey, authority: Keypair, elf: bytes) -> None:
    for off in range(0, len(elf), CHUNK):
        c = elf[off:off + CHUNK]
        assert b.send(_tx(b, payer, [Instruction(LOADER, struct.pack("<IIQ", 1, off, len(c)) + c, [
            AccountMeta(buf, False, True), AccountMeta(authority.pubkey(), True, False)])],
            [payer] if authority == payer else [payer, authority])) is None


def _deploy_ix(payer: Pubkey, program: Pubkey, buf: Pubkey, authority: Pubkey, max_len: int,
               authority_signs: bool = True, programdata: Pubkey | None = None) -> Instruction:
    pd = programdata or Pubkey.find_program_address([bytes(program)], LOADER)[0]
    return Instruction(LOADER, struct.pack("<IQ", 2, max_len), [
        AccountMeta(payer, True, True), AccountMeta(pd, False, True), AccountMeta(program, False, True),
        AccountMeta(buf, False, True), AccountMeta(RENT, False, False), AccountMeta(CLOCK, False, False),
        AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(authority, authority_signs, False)])


def _create_program(payer: Pubkey, program: Pubkey) -> Instruction:
    return create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=program, lamports=_rent(36), space=36,
                                              owner=LOADER))


def _digest(b, key: Pubkey) -> object:
    acc = b.account(key)
    if acc is None:
        return None
    lamports, data, owner, executable = acc
    return [lamports, data[:4].hex(), len(data), str(owner), executable]  # keys differ per run: tag only


def run(b, elf: bytes) -> dict:
    """Scenario name -> {"err": error JSON or None, "accounts": digests of the accounts it touched}."""
    out = {}
    cases = ["ok", "authority_did_not_sign", "wrong_authority", "max_len_too_small", "programdata_not_derived",
             "program_already_initialized", "program_account_missing", "payer_cannot_pay"]
    for case in cases:
        payer, authority, program = Keypair(), Keypair(), Keypair()
        b.fund(payer.pubkey(), 20 * 10**9)
        b.fund(authority.pubkey(), 10**9)
        buf = _buffer(b, payer, authority.pubkey(), elf)
        _write(b, payer, buf.pubkey(), authority, elf)
        max_len, signs, auth_kp, pd, create = 2 * len(elf), True, authority, None, True
        if case == "authority_did_not_sign":
            signs = False
        elif case == "wrong_authority":
            auth_kp = Keypair()
        elif case == "max_len_too_small":
            max_len = len(elf) - 1
        elif case == "programdata_not_derived":
            pd = Pubkey.find_program_address([b"other"], LOADER)[0]
        elif case == "program_account_missing":
            create = False
        elif case == "payer_cannot_pay":
            max_len = 9 * 1024 * 1024
        if case == "program_already_initialized":
            b.next_slot()
            first_buf = _buffer(b, payer, authority.pubkey(), elf)
            _write(b, payer, first_buf.pubkey(), authority, elf)
            assert b.send(_tx(b, payer, [_create_program(payer.pubkey(), program.pubkey()),
                                         _deploy_ix(payer.pubkey(), program.pubkey(), first_buf.pubkey(),
                                                    authority.pubkey(), max_len)], [payer, program, authority])) is None
            create = False
            b.next_slot()
        ixs = ([_create_program(payer.pubkey(), program.pubkey())] if create else []) + [
            _deploy_ix(payer.pubkey(), program.pubkey(), buf.pubkey(), auth_kp.pubkey(), max_len, signs, pd)]
        signers = [payer] + ([program] if create else []) + ([auth_kp] if signs else [])
        before = b.account(payer.pubkey())[0]
        b.next_slot()
        err = b.send(_tx(b, payer, ixs, signers))
        pdk = pd or Pubkey.find_program_address([bytes(program.pubkey())], LOADER)[0]
        out[case] = {"err": err, "payer_delta": b.account(payer.pubkey())[0] - before,
                     "accounts": [_digest(b, k) for k in (program.pubkey(), buf.pubkey())],
                     "programdata": _digest(b, pdk) if case == "ok" else None}
        if case == "ok":  # programdata's slot differs between the two chains: compare the ELF part only
            data = b.account(pdk)[1]
            out[case]["programdata"] += [data[:4].hex(), data[12:45].hex() == "01" + bytes(authority.pubkey()).hex(),
                                         hashlib.sha256(data[45:]).hexdigest()[:16]]
    return out


def _loader_ix(tag: int, metas: list[tuple[Pubkey, bool, bool]]) -> Instruction:
    return Instruction(LOADER, struct.pack("<I", tag), [AccountMeta(k, s, w) for k, s, w in metas])


def run_after_deploy(b, elf: bytes) -> dict:
    """Upgrade, SetAuthority and Close on a program deployed with DeployWithMaxDataLen: case -> result."""
    payer, authority, program, other = Keypair(), Keypair(), Keypair(), Keypair()
    for k in (payer, authority, other):
        b.fund(k.pubkey(), 20 * 10**9)
    buf = _buffer(b, payer, authority.pubkey(), elf)
    _write(b, payer, buf.pubkey(), authority, elf)
    assert b.send(_tx(b, payer, [_create_program(payer.pubkey(), program.pubkey()),
                                 _deploy_ix(payer.pubkey(), program.pubkey(), buf.pubkey(), authority.pubkey(),
                                            2 * len(elf))], [payer, program, authority])) is None
    pd = Pubkey.find_program_address([bytes(program.pubkey())], LOADER)[0]
    out: dict = {}

    def case(name: str, ixs: list[Instruction], signers: list[Keypair], watch: list[Pubkey]) -> None:
        b.next_slot()
        before = [(b.account(k) or (0,))[0] for k in watch]
        err = b.send(_tx(b, payer, ixs, signers))
        out[name] = {"err": err, "deltas": [(b.account(k) or (0,))[0] - x for k, x in zip(watch, before, strict=True)],
                     "accounts": [_digest(b, k) for k in watch]}

    def upgrade(auth: Keypair, signs: bool = True) -> tuple[list[Instruction], list[Keypair], Pubkey]:
        nb = _buffer(b, payer, auth.pubkey(), elf)
        _write(b, payer, nb.pubkey(), auth, elf)
        return [_loader_ix(3, [(pd, False, True), (program.pubkey(), False, True), (nb.pubkey(), False, True),
                               (payer.pubkey(), False, True), (RENT, False, False), (CLOCK, False, False),
                               (auth.pubkey(), signs, False)])], [payer] + ([auth] if signs else []), nb.pubkey()

    for name, more in (("extend_too_little", 1000), ("extend_ok", 10240)):
        case(name, [Instruction(LOADER, struct.pack("<II", 6, more), [
            AccountMeta(pd, False, True), AccountMeta(program.pubkey(), False, True),
            AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(payer.pubkey(), True, True)])], [payer],
             [payer.pubkey(), pd])
    ixs, signers, nb = upgrade(authority)
    case("upgrade_ok", ixs, signers, [payer.pubkey(), nb, pd])
    ixs, signers, nb = upgrade(other)
    case("upgrade_wrong_authority", ixs, signers, [payer.pubkey(), nb, pd])
    ixs, signers, nb = upgrade(authority, signs=False)
    case("upgrade_authority_did_not_sign", ixs, signers, [payer.pubkey(), nb, pd])
    case("set_authority_unsigned", [_loader_ix(4, [(pd, False, True), (authority.pubkey(), False, False),
                                                   (other.pubkey(), False, False)])], [payer], [pd])
    case("set_authority_ok", [_loader_ix(4, [(pd, False, True), (authority.pubkey(), True, False),
                                             (other.pubkey(), False, False)])], [payer, authority], [pd])
    ixs, signers, nb = upgrade(authority)
    case("old_authority_upgrade", ixs, signers, [payer.pubkey(), nb, pd])
    case("close_buffer_wrong_authority", [_loader_ix(5, [(nb, False, True), (payer.pubkey(), False, True),
                                                         (other.pubkey(), True, False)])], [payer, other], [nb])
    case("close_buffer_ok", [_loader_ix(5, [(nb, False, True), (payer.pubkey(), False, True),
                                            (authority.pubkey(), True, False)])], [payer, authority],
         [payer.pubkey(), nb])
    case("close_program_old_authority", [_loader_ix(5, [(pd, False, True), (payer.pubkey(), False, True),
                                                        (authority.pubkey(), True, False),
                                                        (program.pubkey(), False, True)])], [payer, authority], [pd])
    case("close_program_ok", [_loader_ix(5, [(pd, False, True), (payer.pubkey(), False, True),
                                             (other.pubkey(), True, False), (program.pubkey(), False, True)])],
         [payer, other], [payer.pubkey(), pd, program.pubkey()])
    b.next_slot()
    out["invoke_closed_program"] = {"err": b.send(_tx(b, payer, [Instruction(program.pubkey(), b"", [])], [payer]))}
    return out


class SvmBackend:
    """solders 0.29 LiteSVM: the validator's loader."""

    def __init__(self) -> None:
        from solders.litesvm import LiteSVM

        self.svm = LiteSVM()

    def send(self, tx: Transaction) -> object:
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        if type(res).__name__ == "TransactionMetadata":
            return None
        from solders.rpc.responses import RpcSimulateTransactionResult

        return json.loads(RpcSimulateTransactionResult(err=res.err()).to_json())["err"]

    def blockhash(self):
        return self.svm.latest_blockhash()

    def account(self, key: Pubkey):
        a = self.svm.get_account(key)
        return None if a is None or (a.lamports == 0 and not a.executable) else (
            a.lamports, bytes(a.data), a.owner, a.executable)

    def fund(self, key: Pubkey, lamports: int) -> None:
        self.svm.airdrop(key, lamports)

    def next_slot(self) -> None:
        self.svm.warp_to_slot(self.svm.get_clock().slot + 1)


if __name__ == "__main__":
    elf_ = Path(sys.argv[1]).read_bytes()
    results = {"deploy": run(SvmBackend(), elf_), "after": run_after_deploy(SvmBackend(), elf_)}
    print(json.dumps(results, sort_keys=True))
