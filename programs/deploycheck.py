"""Validator-grade deploy check, run with solders 0.29 in the separate tools venv (.venv-deploycheck):

    .venv-deploycheck/bin/python programs/deploycheck.py programs/deploy/*.so

Deploys each .so as a *new* program through the upgradeable loader (InitializeBuffer, Write,
DeployWithMaxDataLen: the path `solana program deploy` takes), then invokes it once with empty instruction
data. Prints one JSON object per file. Self-contained on purpose: the tools venv has solders and nothing
else, so this file must not import the project.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import CreateAccountParams, create_account
from solders.sysvar import CLOCK, RENT
from solders.transaction import Transaction

LOADER_V3 = Pubkey.from_string("BPFLoaderUpgradeab1e11111111111111111111111")
CHUNK = 900


def _send(svm: LiteSVM, payer: Keypair, ixs: list[Instruction], signers: list[Keypair]):
    res = svm.send_transaction(Transaction.new_signed_with_payer(ixs, payer.pubkey(), signers,
                                                                 svm.latest_blockhash()))
    svm.expire_blockhash()
    return res


def _ok(res) -> bool:
    return type(res).__name__ == "TransactionMetadata"


def check(path: Path) -> dict:
    elf = path.read_bytes()
    svm = LiteSVM()
    payer, buffer, program = Keypair(), Keypair(), Keypair()
    svm.airdrop(payer.pubkey(), 50 * 10**9)
    size = 37 + len(elf)
    res = _send(svm, payer, [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=buffer.pubkey(),
                                           lamports=svm.minimum_balance_for_rent_exemption(size), space=size,
                                           owner=LOADER_V3)),
        Instruction(LOADER_V3, struct.pack("<I", 0), [AccountMeta(buffer.pubkey(), False, True),
                                                      AccountMeta(payer.pubkey(), False, False)])],
        [payer, buffer])
    if not _ok(res):
        return {"file": str(path), "deployed": False, "error": f"buffer: {res.err()}"}
    for off in range(0, len(elf), CHUNK):
        chunk = elf[off:off + CHUNK]
        res = _send(svm, payer, [Instruction(LOADER_V3, struct.pack("<IIQ", 1, off, len(chunk)) + chunk,
                                             [AccountMeta(buffer.pubkey(), False, True),
                                              AccountMeta(payer.pubkey(), True, False)])], [payer])
        if not _ok(res):
            return {"file": str(path), "deployed": False, "error": f"write at {off}: {res.err()}"}
    programdata, _ = Pubkey.find_program_address([bytes(program.pubkey())], LOADER_V3)
    res = _send(svm, payer, [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=program.pubkey(),
                                           lamports=svm.minimum_balance_for_rent_exemption(36), space=36,
                                           owner=LOADER_V3)),
        Instruction(LOADER_V3, struct.pack("<IQ", 2, 2 * len(elf)), [
            AccountMeta(payer.pubkey(), True, True), AccountMeta(programdata, False, True),
            AccountMeta(program.pubkey(), False, True), AccountMeta(buffer.pubkey(), False, True),
            AccountMeta(RENT, False, False), AccountMeta(CLOCK, False, False),
            AccountMeta(SYSTEM_PROGRAM, False, False), AccountMeta(payer.pubkey(), True, False)])],
        [payer, program])
    if not _ok(res):
        return {"file": str(path), "deployed": False, "error": str(res.err()), "logs": list(res.meta().logs())}
    deploy_cu = res.compute_units_consumed()
    svm.warp_to_slot(svm.get_clock().slot + 1)
    res = _send(svm, payer, [Instruction(program.pubkey(), b"", [])], [payer])
    meta = res if _ok(res) else res.meta()
    ran = any(line.startswith(f"Program {program.pubkey()} consumed") for line in meta.logs())
    return {"file": str(path), "deployed": True, "deploy_cu": deploy_cu, "invoked": ran,
            "invoke_result": "ok" if _ok(res) else str(res.err()), "logs": list(meta.logs())}


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: deploycheck.py FILE.so [...]", file=sys.stderr)
        return 2
    results = [check(Path(a)) for a in argv]
    for r in results:
        print(json.dumps(r))
    return 0 if all(r["deployed"] and r["invoked"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
