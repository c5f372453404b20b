"""SPL Token accounts and mints as a validator's `jsonParsed` encoding shows them, read from the raw
account layouts (token account 165 bytes, mint 82 bytes; Token-2022 extensions beyond them are not
parsed). Used by getAccountInfo & co. with jsonParsed and by the getToken* methods."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from solders.account import Account
from solders.pubkey import Pubkey

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
TOKEN_PROGRAMS = {TOKEN_PROGRAM: "spl-token", TOKEN_2022_PROGRAM: "spl-token-2022"}
ACCOUNT_LEN, MINT_LEN = 165, 82
_STATES = {1: "initialized", 2: "frozen"}


def _opt_key(data: bytes, off: int) -> Pubkey | None:
    return Pubkey.from_bytes(data[off + 4:off + 36]) if data[off:off + 4] == b"\x01\0\0\0" else None


@dataclass(frozen=True)
class TokenAccount:
    mint: Pubkey
    owner: Pubkey
    amount: int
    delegate: Pubkey | None
    state: int
    native_reserve: int | None
    delegated_amount: int
    close_authority: Pubkey | None


@dataclass(frozen=True)
class Mint:
    mint_authority: Pubkey | None
    supply: int
    decimals: int
    initialized: bool
    freeze_authority: Pubkey | None


def _is_token_account(acc: Account) -> bool:
    data = bytes(acc.data)
    if acc.owner == TOKEN_PROGRAM:
        return len(data) == ACCOUNT_LEN
    return acc.owner == TOKEN_2022_PROGRAM and (len(data) == ACCOUNT_LEN or
                                                (len(data) > ACCOUNT_LEN and data[ACCOUNT_LEN] == 2))


def _is_mint(acc: Account) -> bool:
    data = bytes(acc.data)
    if acc.owner == TOKEN_PROGRAM:
        return len(data) == MINT_LEN
    return acc.owner == TOKEN_2022_PROGRAM and (len(data) == MINT_LEN or
                                                (len(data) > ACCOUNT_LEN and data[ACCOUNT_LEN] == 1))


def token_account(acc: Account | None) -> TokenAccount | None:
    """The token account held in `acc`, or None when it is not an initialized SPL token account."""
    if acc is None or not _is_token_account(acc):
        return None
    d = bytes(acc.data)
    if d[108] not in _STATES:
        return None
    native = struct.unpack_from("<Q", d, 113)[0] if d[109:113] == b"\x01\0\0\0" else None
    return TokenAccount(Pubkey.from_bytes(d[0:32]), Pubkey.from_bytes(d[32:64]), struct.unpack_from("<Q", d, 64)[0],
                        _opt_key(d, 72), d[108], native, struct.unpack_from("<Q", d, 121)[0], _opt_key(d, 129))


def mint(acc: Account | None) -> Mint | None:
    if acc is None or not _is_mint(acc):
        return None
    d = bytes(acc.data)
    if not d[45]:
        return None
    return Mint(_opt_key(d, 0), struct.unpack_from("<Q", d, 36)[0], d[44], bool(d[45]), _opt_key(d, 46))


def ui_amount(amount: int, decimals: int) -> dict:
    """The validator's UiTokenAmount: amount as a string, uiAmount as a float, uiAmountString trimmed."""
    if decimals:
        whole, frac = divmod(amount, 10**decimals)
        text = f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".")
    else:
        text = str(amount)
    return {"amount": str(amount), "decimals": decimals, "uiAmount": amount / 10**decimals,
            "uiAmountString": text}


def parsed_json(acc: Account, mint_lookup) -> dict | None:
    """The `jsonParsed` data of a token account or mint ({"program", "parsed", "space"}), or None when the
    account is neither (the caller then falls back to base64, as validators do). `mint_lookup(key)` gives
    the mint account, whose decimals a token account's amounts need."""
    program = TOKEN_PROGRAMS.get(acc.owner)
    if program is None:
        return None
    space = len(acc.data)
    ta = token_account(acc)
    if ta is not None:
        m = mint(mint_lookup(ta.mint))
        if m is None:
            return None  # validators cannot parse a token account without its mint either
        info: dict = {"isNative": ta.native_reserve is not None, "mint": str(ta.mint), "owner": str(ta.owner),
                      "state": _STATES[ta.state], "tokenAmount": ui_amount(ta.amount, m.decimals)}
        if ta.delegate is not None:
            info["delegate"] = str(ta.delegate)
            info["delegatedAmount"] = ui_amount(ta.delegated_amount, m.decimals)
        if ta.native_reserve is not None:
            info["rentExemptReserve"] = ui_amount(ta.native_reserve, m.decimals)
        if ta.close_authority is not None:
            info["closeAuthority"] = str(ta.close_authority)
        return {"program": program, "parsed": {"info": info, "type": "account"}, "space": space}
    m = mint(acc)
    if m is not None:
        info = {"decimals": m.decimals, "freezeAuthority": None if m.freeze_authority is None
                else str(m.freeze_authority), "isInitialized": m.initialized,
                "mintAuthority": None if m.mint_authority is None else str(m.mint_authority),
                "supply": str(m.supply)}
        return {"program": program, "parsed": {"info": info, "type": "mint"}, "space": space}
    return None


def token_balances(keys: list[Pubkey], accounts: list[Account | None], mint_lookup) -> list[dict]:
    """A transaction's pre/postTokenBalances entries: one per token account among its keys."""
    out = []
    for i, acc in enumerate(accounts):
        ta = token_account(acc)
        if ta is None:
            continue
        m = mint(mint_lookup(ta.mint))
        if m is None:
            continue
        out.append({"accountIndex": i, "mint": str(ta.mint), "owner": str(ta.owner),
                    "programId": str(acc.owner), "uiTokenAmount": ui_amount(ta.amount, m.decimals)})
    return out
