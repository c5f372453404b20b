"""SPL Token (Tokenkeg..., the v3 account layouts) and Associated Token Account helpers.

Why our own decoders: reading token accounts with plain `getAccountInfo` (base64) and decoding the fixed
layouts here works against any RPC node, with no dependence on `jsonParsed` or the token RPC methods.
Instruction builders are solana-py's `spl.token.instructions`."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.instruction import Instruction
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from spl.token import instructions as spl
from spl.token.constants import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_PROGRAM_ID

TOKEN_PROGRAM = TOKEN_PROGRAM_ID
ATA_PROGRAM = ASSOCIATED_TOKEN_PROGRAM_ID
MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165
TOKEN_STATES = {0: "uninitialized", 1: "initialized", 2: "frozen"}


class NotATokenAccount(ValueError):
    """Bytes that are not an SPL Token mint / token account of the expected size or state."""


@dataclass(frozen=True)
class Mint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    is_initialized: bool
    freeze_authority: Pubkey | None


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: str
    delegated_amount: int


def _coption_key(raw: bytes, off: int) -> Pubkey | None:
    tag = struct.unpack_from("<I", raw, off)[0]
    return Pubkey.from_bytes(raw[off + 4:off + 36]) if tag == 1 else None


def decode_mint(raw: bytes) -> Mint:
    if len(raw) != MINT_SIZE:
        raise NotATokenAccount(f"a mint is {MINT_SIZE} bytes, got {len(raw)}")
    supply, decimals, init = struct.unpack_from("<QBB", raw, 36)
    if not init:
        raise NotATokenAccount("the mint is not initialized")
    return Mint(_coption_key(raw, 0), supply, decimals, bool(init), _coption_key(raw, 46))


def decode_token_account(raw: bytes) -> TokenAccount:
    if len(raw) != TOKEN_ACCOUNT_SIZE:
        raise NotATokenAccount(f"a token account is {TOKEN_ACCOUNT_SIZE} bytes, got {len(raw)}")
    state = raw[108]
    if state == 0:
        raise NotATokenAccount("the token account is not initialized")
    amount = struct.unpack_from("<Q", raw, 64)[0]
    delegated = struct.unpack_from("<Q", raw, 121)[0]
    return TokenAccount(Pubkey.from_bytes(raw[:32]), Pubkey.from_bytes(raw[32:64]), amount, _coption_key(raw, 72),
                        TOKEN_STATES.get(state, f"state {state}"), delegated)


def associated_token_address(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return spl.get_associated_token_address(owner, mint)


def create_ata_idempotent(payer: Pubkey, owner: Pubkey, mint: Pubkey) -> Instruction:
    return spl.create_idempotent_associated_token_account(payer, owner, mint)


def create_mint_ixs(payer: Pubkey, mint: Pubkey, authority: Pubkey, decimals: int, rent: int,
                    freeze_authority: Pubkey | None = None) -> list[Instruction]:
    """CreateAccount (82 bytes, owner SPL Token) + InitializeMint; the mint keypair must sign."""
    return [create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=rent, space=MINT_SIZE,
                                               owner=TOKEN_PROGRAM)),
            spl.initialize_mint(spl.InitializeMintParams(decimals=decimals, program_id=TOKEN_PROGRAM, mint=mint,
                                                         mint_authority=authority, freeze_authority=freeze_authority))]


def mint_to_ix(mint: Pubkey, dest: Pubkey, authority: Pubkey, amount: int, decimals: int) -> Instruction:
    return spl.mint_to_checked(spl.MintToCheckedParams(program_id=TOKEN_PROGRAM, mint=mint, dest=dest,
                                                       mint_authority=authority, amount=amount, decimals=decimals))


def transfer_checked_ix(source: Pubkey, mint: Pubkey, dest: Pubkey, owner: Pubkey, amount: int,
                        decimals: int) -> Instruction:
    return spl.transfer_checked(spl.TransferCheckedParams(program_id=TOKEN_PROGRAM, source=source, mint=mint,
                                                          dest=dest, owner=owner, amount=amount, decimals=decimals))


def approve_ix(account: Pubkey, delegate: Pubkey, owner: Pubkey, amount: int) -> Instruction:
    return spl.approve(spl.ApproveParams(program_id=TOKEN_PROGRAM, source=account, delegate=delegate, owner=owner,
                                         amount=amount))


def freeze_ix(account: Pubkey, mint: Pubkey, authority: Pubkey) -> Instruction:
    return spl.freeze_account(spl.FreezeAccountParams(program_id=TOKEN_PROGRAM, account=account, mint=mint,
                                                      authority=authority))


def format_amount(base_units: int, decimals: int) -> str:
    """Base units as a decimal token amount, exactly (no float)."""
    if decimals == 0:
        return str(base_units)
    whole, frac = divmod(base_units, 10**decimals)
    return f"{whole}.{frac:0{decimals}d}"
