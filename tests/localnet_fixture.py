"""Chain state the localnet tests and the SDK compatibility suite read: a funded payer, an SPL mint with
token accounts (one delegated), an address lookup table and a v0 transfer through it. Built with real
transactions (solana-py + the SPL token program LiteSVM ships) against a running localnet."""
from __future__ import annotations

import struct
import time

from solana.rpc.api import Client
from solana.rpc.types import TxOpts
from solders.address_lookup_table_account import AddressLookupTableAccount, derive_lookup_table_address
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction, VersionedTransaction
from spl.token import instructions as spl

ALT_PROGRAM = Pubkey.from_string("AddressLookupTab1e1111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")  # v1: what LiteSVM ships
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
OPTS = TxOpts(skip_confirmation=False, preflight_commitment="confirmed")


def funded(c: Client, lamports: int = 10 * 10**9) -> Keypair:
    kp = Keypair()
    c.confirm_transaction(c.request_airdrop(kp.pubkey(), lamports).value)
    return kp


def send(c: Client, payer: Keypair, ixs: list[Instruction], signers: list[Keypair] | None = None) -> str:
    bh = c.get_latest_blockhash().value.blockhash
    tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), [payer, *(signers or [])], bh)
    return str(c.send_transaction(tx, opts=OPTS).value)


def create_lookup_table(c: Client, payer: Keypair, addresses: list[Pubkey]) -> Pubkey:
    """An address lookup table holding `addresses`, created at the current slot (SlotHashes must hold it)
    and usable once the next slot starts."""
    slot = c.get_slot().value
    table, bump = derive_lookup_table_address(payer.pubkey(), slot)
    create = Instruction(ALT_PROGRAM, struct.pack("<IQB", 0, slot, bump), [
        AccountMeta(table, False, True), AccountMeta(payer.pubkey(), True, False),
        AccountMeta(payer.pubkey(), True, True), AccountMeta(SYSTEM_PROGRAM, False, False)])
    extend = Instruction(ALT_PROGRAM, struct.pack("<IQ", 2, len(addresses)) + b"".join(bytes(a) for a in addresses), [
        AccountMeta(table, False, True), AccountMeta(payer.pubkey(), True, False),
        AccountMeta(payer.pubkey(), True, True), AccountMeta(SYSTEM_PROGRAM, False, False)])
    send(c, payer, [create, extend])
    start = c.get_slot().value
    while c.get_slot().value <= start + 1:
        time.sleep(0.2)
    return table


def v0_transfer_through_table(c: Client, payer: Keypair, table: Pubkey, addresses: list[Pubkey],
                              to: Pubkey, lamports: int) -> str:
    """A v0 transfer whose recipient is reached only through the lookup table."""
    bh = c.get_latest_blockhash().value.blockhash
    msg = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to,
                                                                         lamports=lamports))],
                                [AddressLookupTableAccount(table, addresses)], bh)
    assert to not in msg.account_keys, "the recipient must come from the lookup table"
    return str(c.send_transaction(VersionedTransaction(msg, [payer]), opts=OPTS).value)


def token_setup(c: Client, payer: Keypair, decimals: int = 6) -> dict:
    """A mint (authority: payer), payer's token account with 1.5 tokens, another owner's account with 0.25
    tokens that delegates 0.1 of them to the payer, and an empty associated token account of a third."""
    mint, acc_a, acc_b, owner_b = Keypair(), Keypair(), Keypair(), funded(c, 10**9)
    rent_mint = c.get_minimum_balance_for_rent_exemption(82).value
    rent_acc = c.get_minimum_balance_for_rent_exemption(165).value
    ixs = [create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=mint.pubkey(), lamports=rent_mint,
                                              space=82, owner=TOKEN_PROGRAM)),
           spl.initialize_mint(spl.InitializeMintParams(decimals=decimals, freeze_authority=None, mint=mint.pubkey(),
                                                        mint_authority=payer.pubkey(), program_id=TOKEN_PROGRAM))]
    for acc, owner in ((acc_a, payer.pubkey()), (acc_b, owner_b.pubkey())):
        ixs += [create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=acc.pubkey(),
                                                   lamports=rent_acc, space=165, owner=TOKEN_PROGRAM)),
                spl.initialize_account(spl.InitializeAccountParams(program_id=TOKEN_PROGRAM, account=acc.pubkey(),
                                                                   mint=mint.pubkey(), owner=owner))]
    send(c, payer, ixs, [mint, acc_a, acc_b])
    unit = 10**decimals
    mint_sig = send(c, payer, [
        spl.mint_to(spl.MintToParams(program_id=TOKEN_PROGRAM, mint=mint.pubkey(), dest=acc_a.pubkey(),
                                     mint_authority=payer.pubkey(), amount=3 * unit // 2)),
        spl.mint_to(spl.MintToParams(program_id=TOKEN_PROGRAM, mint=mint.pubkey(), dest=acc_b.pubkey(),
                                     mint_authority=payer.pubkey(), amount=unit // 4))])
    send(c, owner_b, [spl.approve(spl.ApproveParams(program_id=TOKEN_PROGRAM, source=acc_b.pubkey(),
                                                    delegate=payer.pubkey(), owner=owner_b.pubkey(),
                                                    amount=unit // 10))])
    ata_sig = send(c, payer, [spl.create_associated_token_account(payer.pubkey(), Keypair().pubkey(),
                                                                   mint.pubkey())])  # CPIs: inner instructions
    return {"mint": str(mint.pubkey()), "decimals": decimals, "ataSignature": ata_sig,
            "tokenAccountA": str(acc_a.pubkey()), "tokenAccountB": str(acc_b.pubkey()),
            "ownerB": str(owner_b.pubkey()), "mintToSignature": mint_sig}


def build(url: str) -> dict:
    """Everything the compatibility clients read, as JSON-able values."""
    c = Client(url, timeout=30)
    payer = funded(c)
    fixture = token_setup(c, payer)
    legacy_to = Keypair().pubkey()
    fixture["legacySignature"] = send(c, payer, [transfer(TransferParams(
        from_pubkey=payer.pubkey(), to_pubkey=legacy_to, lamports=10**6)),
        Instruction(MEMO_PROGRAM, b"psyche rewards", [])])
    alt_to = Keypair().pubkey()
    table = create_lookup_table(c, payer, [alt_to])
    fixture["v0Signature"] = v0_transfer_through_table(c, payer, table, [alt_to], alt_to, 2 * 10**6)
    fixture.update(payerSecret=list(bytes(payer)), payer=str(payer.pubkey()), lookupTable=str(table),
                   altRecipient=str(alt_to), legacyRecipient=str(legacy_to))
    return fixture
