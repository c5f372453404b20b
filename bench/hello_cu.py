"""Compute units of each hello-program instruction, deployed through the loader's deploy path.

    .venv/bin/python -m bench.hello_cu
"""
from __future__ import annotations

import struct

from solders.account import Account
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.transaction import Transaction

from programs.deploy import deploy_named, so_path


def main() -> None:
    svm = LiteSVM()
    payer = Keypair()
    svm.airdrop(payer.pubkey(), 100 * 10**9)
    d = deploy_named(svm, "hello", payer)
    pid = d.program_id
    acc = Pubkey.new_unique()
    svm.set_account(acc, Account(10**9, bytes(64), pid, False, 0))
    pda = Pubkey.find_program_address([b"hello", bytes(payer.pubkey())], pid)[0]
    rent = svm.minimum_balance_for_rent_exemption(100)
    cases = [
        ("write 11 bytes + log", b"\x00hello world", [AccountMeta(acc, False, True)]),
        ("sha256 (2 slices) + return data + log_data", b"\x01" + bytes(64), []),
        ("clock sysvar -> account", b"\x02", [AccountMeta(acc, False, True)]),
        ("CPI CreateAccount signed by PDA", b"\x03" + struct.pack("<QQ", rent, 100),
         [AccountMeta(payer.pubkey(), True, True), AccountMeta(pda, False, True),
          AccountMeta(SYSTEM_PROGRAM, False, False)]),
        ("custom error 0x1234", b"\x04", []),
    ]
    print(f"hello.so: {so_path('hello').stat().st_size} bytes, deployed via loader Upgrade "
          f"({d.write_txs} Write txs, upgrade {d.upgrade_cu} CU)")
    print(f"{'instruction':48} {'CU':>6}  result")
    for name, data, metas in cases:
        tx = Transaction.new_signed_with_payer([Instruction(pid, data, metas)], payer.pubkey(), [payer],
                                               svm.latest_blockhash())
        res = svm.send_transaction(tx)
        svm.expire_blockhash()
        failed = type(res).__name__ == "FailedTransactionMetadata"
        meta = res.meta() if failed else res
        print(f"{name:48} {meta.compute_units_consumed():>6}  {'error: ' + str(res.err()) if failed else 'ok'}")


if __name__ == "__main__":
    main()
