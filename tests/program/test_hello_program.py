"""The hello program, deployed through the upgradeable loader's deploy checks, exercises every
toolchain feature the coordinator relies on; failures must surface as named custom errors and leave
accounts byte-identical."""
from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from solders.account import Account
from solders.clock import Clock
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.transaction import Transaction

from programs.deploy import LOADER_V3, DeployError, deploy_named, deploy_via_loader, program_id_for, so_path

ERR = {"no_instruction": 6000, "unknown": 6001, "not_writable": 6003, "wrong_owner": 6004, "too_big": 6005,
       "missing_signer": 6006, "wrong_pda": 6007, "not_system": 6008, "deliberate": 0x1234}


class Hello:
    def __init__(self) -> None:
        self.svm = LiteSVM()
        self.payer = Keypair()
        self.svm.airdrop(self.payer.pubkey(), 100 * 10**9)
        self.deployed = deploy_named(self.svm, "hello", self.payer)
        self.pid = self.deployed.program_id

    def account(self, size: int = 64, owner: Pubkey | None = None) -> Pubkey:
        key = Pubkey.new_unique()
        self.svm.set_account(key, Account(10**9, bytes(size), owner or self.pid, False, 0))
        return key

    def send(self, data: bytes, metas: list[AccountMeta], signers: list[Keypair] | None = None):
        tx = Transaction.new_signed_with_payer([Instruction(self.pid, data, metas)], self.payer.pubkey(),
                                               [self.payer, *(signers or [])], self.svm.latest_blockhash())
        res = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        return res

    def custom_error(self, res) -> int:
        assert type(res).__name__ == "FailedTransactionMetadata", res
        text = str(res.err())
        assert "InstructionErrorCustom(" in text, text
        return int(text.split("InstructionErrorCustom(")[1].split(")")[0])


@pytest.fixture
def hello() -> Hello:
    return Hello()


def test_deployed_through_loader_holds_the_committed_elf(hello: Hello) -> None:
    assert hello.pid == program_id_for("hello")
    prog = hello.svm.get_account(hello.pid)
    assert prog.executable and prog.owner == LOADER_V3
    pd = hello.svm.get_account(hello.deployed.programdata)
    assert bytes(pd.data)[45:45 + so_path("hello").stat().st_size] == so_path("hello").read_bytes()


def test_write_copies_payload_and_logs(hello: Hello) -> None:
    acc = hello.account()
    res = hello.send(b"\x00hello world", [AccountMeta(acc, False, True)])
    assert bytes(hello.svm.get_account(acc).data)[:11] == b"hello world"
    fnv = 2166136261
    for b in b"hello world":
        fnv = ((fnv ^ b) * 16777619) & 0xFFFFFFFF
    assert "Program log: write" in res.logs()
    assert f"Program log: 0xb, 0x{fnv:x}, 0x0, 0x0, 0x0" in res.logs()


@pytest.mark.parametrize("case", ["too_big", "wrong_owner", "not_writable"])
def test_write_failures_are_named_and_change_nothing(hello: Hello, case: str) -> None:
    acc = hello.account(size=4, owner=Pubkey.new_unique() if case == "wrong_owner" else None)
    before = hello.svm.get_account(acc)
    payload = b"\x00" + (b"12345" if case == "too_big" else b"1")
    res = hello.send(payload, [AccountMeta(acc, False, case != "not_writable")])
    assert hello.custom_error(res) == ERR[case]
    assert hello.svm.get_account(acc) == before


def test_hash_returns_sha256_and_emits_event(hello: Hello) -> None:
    payload = b"the quick brown fox"
    res = hello.send(b"\x01" + payload, [])
    digest = hashlib.sha256(payload).digest()
    assert bytes(res.return_data().data) == digest
    assert f"Program data: {base64.b64encode(digest).decode()}" in res.logs()


def test_clock_reads_the_sysvar(hello: Hello) -> None:
    c = hello.svm.get_clock()
    hello.svm.set_clock(Clock(slot=c.slot + 10, epoch_start_timestamp=0, epoch=0, leader_schedule_epoch=1,
                              unix_timestamp=1_764_000_123))
    acc = hello.account()
    hello.send(b"\x02", [AccountMeta(acc, False, True)])
    ts, slot = struct.unpack_from("<qQ", bytes(hello.svm.get_account(acc).data))
    assert (ts, slot) == (1_764_000_123, c.slot + 10)


def _pda(hello: Hello, payer: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([b"hello", bytes(payer)], hello.pid)[0]


def test_create_pda_via_cpi_signed_by_the_pda(hello: Hello) -> None:
    user = Keypair()
    hello.svm.airdrop(user.pubkey(), 10**9)
    pda = _pda(hello, user.pubkey())
    lamports = hello.svm.minimum_balance_for_rent_exemption(100)
    res = hello.send(b"\x03" + struct.pack("<QQ", lamports, 100), [
        AccountMeta(user.pubkey(), True, True), AccountMeta(pda, False, True),
        AccountMeta(SYSTEM_PROGRAM, False, False)], [user])
    assert type(res).__name__ == "TransactionMetadata", res
    acc = hello.svm.get_account(pda)
    assert acc.owner == hello.pid and len(acc.data) == 100 and acc.lamports == lamports


@pytest.mark.parametrize("case", ["wrong_pda", "missing_signer", "not_system"])
def test_create_pda_checks(hello: Hello, case: str) -> None:
    user = Keypair()
    hello.svm.airdrop(user.pubkey(), 10**9)
    pda = Pubkey.new_unique() if case == "wrong_pda" else _pda(hello, user.pubkey())
    system = Pubkey.new_unique() if case == "not_system" else SYSTEM_PROGRAM
    signer = case != "missing_signer"
    res = hello.send(b"\x03" + struct.pack("<QQ", 10**7, 8), [
        AccountMeta(user.pubkey(), signer, True), AccountMeta(pda, False, True), AccountMeta(system, False, False)],
        [user] if signer else [])
    assert hello.custom_error(res) == ERR[case]
    assert hello.svm.get_account(pda) is None
    assert hello.svm.get_balance(user.pubkey()) == 10**9


@pytest.mark.parametrize("data,code", [(b"\x04", "deliberate"), (b"\x09", "unknown"), (b"", "no_instruction")])
def test_custom_errors_reach_the_client(hello: Hello, data: bytes, code: str) -> None:
    assert hello.custom_error(hello.send(data, [])) == ERR[code]


def test_add_program_and_loader_paths_cost_the_same(hello: Hello) -> None:
    svm2 = LiteSVM()
    payer = Keypair()
    svm2.airdrop(payer.pubkey(), 10**10)
    svm2.add_program(hello.pid, so_path("hello").read_bytes())
    tx = Transaction.new_signed_with_payer([Instruction(hello.pid, b"\x01abc", [])], payer.pubkey(), [payer],
                                           svm2.latest_blockhash())
    direct = svm2.send_transaction(tx)
    via_loader = hello.send(b"\x01abc", [])
    assert direct.compute_units_consumed() == via_loader.compute_units_consumed()


def broken_elf() -> bytes:
    """The committed hello.so with one syscall name changed to one the runtime does not have."""
    elf = so_path("hello").read_bytes()
    i = elf.index(b"sol_sha256\0")
    return elf[:i] + b"sol_shaXYZ\0" + elf[i + 11:]


def test_unknown_syscall_is_rejected_at_deploy_though_add_program_accepts_it() -> None:
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 10**11)
    svm.add_program(Pubkey.new_unique(), broken_elf())  # lenient: reject_broken_elfs = false
    with pytest.raises(DeployError, match=r"Unresolved symbol \(sol_shaXYZ\)"):
        deploy_via_loader(svm, broken_elf(), Pubkey.new_unique(), payer)
