"""Deploy a program into LiteSVM through the real upgradeable BPF loader, so the validator's deploy-time
checks run (reject_broken_elfs + the verifier), not only LiteSVM's lenient `add_program`.

Why the Upgrade instruction: solders 0.26's LiteSVM answers "Unsupported instruction" to
`DeployWithMaxDataLen` (its feature set disables new loader-v3 deployments) and has no loader v4, but
`Upgrade` is not gated. So we create an upgradeable program whose ProgramData holds a known-good
placeholder ELF (LiteSVM's bundled SPL Token program), write our ELF into a buffer with
`InitializeBuffer`/`Write` transactions, and `Upgrade` to it: the loader then loads and verifies our ELF
exactly as a validator does at deploy.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from programs import loader as ldr
from programs.loader import LOADER_V3

SPL_TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
DEPLOY_DIR = Path(__file__).parent / "deploy"
WRITE_CHUNK = 900  # bytes per Write instruction: keeps each transaction under the 1232-byte packet limit


class DeployError(Exception):
    """The loader refused the program; the message carries the loader's logs."""


@dataclass(frozen=True)
class Deployed:
    program_id: Pubkey
    programdata: Pubkey
    upgrade_cu: int
    write_txs: int


def program_id_for(name: str) -> Pubkey:
    """A fixed program id per program name, so localnet and tests agree on addresses."""
    return Keypair.from_seed(hashlib.sha256(f"psyche-program:{name}".encode()).digest()).pubkey()


def so_path(name: str) -> Path:
    return DEPLOY_DIR / f"{name}.so"


def _send(svm: LiteSVM, payer: Keypair, ixs: list[Instruction], signers: list[Keypair]):
    tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), signers, svm.latest_blockhash())
    res = svm.send_transaction(tx)
    svm.expire_blockhash()
    return res


def _failed(res) -> bool:
    return type(res).__name__ == "FailedTransactionMetadata"


def deploy_via_loader(svm: LiteSVM, elf: bytes, program_id: Pubkey, authority: Keypair) -> Deployed:
    """Put `elf` at `program_id` through the upgradeable loader's deploy checks. `authority` pays and
    becomes the upgrade authority; it needs a few SOL."""
    programdata = ldr.programdata_address(program_id)
    placeholder = bytes(svm.get_account(SPL_TOKEN).data)
    pd_data = ldr.programdata_state(0, authority.pubkey()) + placeholder
    rent = svm.minimum_balance_for_rent_exemption(len(pd_data))
    svm.set_account(programdata, Account(rent, pd_data, LOADER_V3, False, 0))
    svm.set_account(program_id, Account(svm.minimum_balance_for_rent_exemption(ldr.PROGRAM_SIZE),
                                        ldr.program_state(programdata), LOADER_V3, True, 0))

    buffer = Keypair()
    lamports = svm.minimum_balance_for_rent_exemption(ldr.BUFFER_META + len(elf))
    res = _send(svm, authority, ldr.create_buffer(authority.pubkey(), buffer.pubkey(), authority.pubkey(), len(elf),
                                                  lamports), [authority, buffer])
    if _failed(res):
        raise DeployError(f"creating the buffer failed: {res.err()}")
    writes = 0
    for off in range(0, len(elf), WRITE_CHUNK):
        res = _send(svm, authority, [ldr.write(buffer.pubkey(), authority.pubkey(), off, elf[off:off + WRITE_CHUNK])],
                    [authority])
        if _failed(res):
            raise DeployError(f"buffer write at offset {off} failed: {res.err()}")
        writes += 1
    # The loader refuses a second deploy in the same slot as the placeholder's.
    svm.warp_to_slot(svm.get_clock().slot + 1)
    upgrade = ldr.upgrade(program_id, buffer.pubkey(), authority.pubkey(), spill=authority.pubkey())
    res = _send(svm, authority, [upgrade], [authority])
    if _failed(res):
        logs = "\n  ".join(res.meta().logs())
        raise DeployError(f"loader rejected the program: {res.err()}\n  {logs}")
    # A deployed program becomes visible to transactions one slot later, as on a validator.
    svm.warp_to_slot(svm.get_clock().slot + 1)
    return Deployed(program_id, programdata, res.compute_units_consumed(), writes)


def deploy_named(svm: LiteSVM, name: str, authority: Keypair) -> Deployed:
    """Deploy the committed programs/deploy/<name>.so at its fixed program id."""
    return deploy_via_loader(svm, so_path(name).read_bytes(), program_id_for(name), authority)
