"""The `jsonParsed` form of the instructions dashboards read most (System createAccount/transfer, SPL Token
transfer/transferChecked/mintTo/burn/approve/closeAccount, Memo), in a validator's shapes. Any other
instruction (or an unusual account list, e.g. multisig authorities) stays partially decoded, which is
what a validator does for programs it has no parser for."""
from __future__ import annotations

import struct

import based58

from localnet.spl_token import TOKEN_PROGRAMS, ui_amount

SYSTEM = "11111111111111111111111111111111"
MEMO = {"MemoSq4gqABAXKb96qnH8TctzXVSRvF7AFSpfNJSVWe", "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"}
_TOKEN = {str(k): name for k, name in TOKEN_PROGRAMS.items()}


def _system(accounts: list[str], data: bytes) -> dict | None:
    if len(data) < 4:
        return None
    tag = struct.unpack_from("<I", data)[0]
    if tag == 2 and len(data) == 12 and len(accounts) == 2:
        return {"type": "transfer", "info": {"source": accounts[0], "destination": accounts[1],
                                             "lamports": struct.unpack_from("<Q", data, 4)[0]}}
    if tag == 0 and len(data) == 52 and len(accounts) == 2:
        lamports, space = struct.unpack_from("<QQ", data, 4)
        return {"type": "createAccount", "info": {"source": accounts[0], "newAccount": accounts[1],
                                                  "lamports": lamports, "space": space,
                                                  "owner": based58.b58encode(data[20:52]).decode()}}
    return None


def _token(accounts: list[str], data: bytes) -> dict | None:
    if not data:
        return None
    tag, n = data[0], len(accounts)
    amount = str(struct.unpack_from("<Q", data, 1)[0]) if len(data) >= 9 else None
    if tag == 3 and len(data) == 9 and n == 3:
        return {"type": "transfer", "info": {"source": accounts[0], "destination": accounts[1],
                                             "authority": accounts[2], "amount": amount}}
    if tag == 12 and len(data) == 10 and n == 4:
        return {"type": "transferChecked", "info": {
            "source": accounts[0], "mint": accounts[1], "destination": accounts[2], "authority": accounts[3],
            "tokenAmount": ui_amount(int(amount), data[9])}}
    if tag == 7 and len(data) == 9 and n == 3:
        return {"type": "mintTo", "info": {"mint": accounts[0], "account": accounts[1],
                                           "mintAuthority": accounts[2], "amount": amount}}
    if tag == 8 and len(data) == 9 and n == 3:
        return {"type": "burn", "info": {"account": accounts[0], "mint": accounts[1], "authority": accounts[2],
                                         "amount": amount}}
    if tag == 4 and len(data) == 9 and n == 3:
        return {"type": "approve", "info": {"source": accounts[0], "delegate": accounts[1], "owner": accounts[2],
                                            "amount": amount}}
    if tag == 9 and len(data) == 1 and n == 3:
        return {"type": "closeAccount", "info": {"account": accounts[0], "destination": accounts[1],
                                                 "owner": accounts[2]}}
    return None


def parsed_instruction(program_id: str, accounts: list[str], data: bytes, stack_height: int | None) -> dict:
    """One instruction as jsonParsed shows it: parsed when known, else {programId, accounts, data}."""
    parsed, program = None, None
    if program_id == SYSTEM:
        parsed, program = _system(accounts, data), "system"
    elif program_id in _TOKEN:
        parsed, program = _token(accounts, data), _TOKEN[program_id]
    elif program_id in MEMO:
        try:
            parsed, program = data.decode(), "spl-memo"
        except UnicodeDecodeError:
            parsed = None
    if parsed is not None:
        return {"program": program, "programId": program_id, "parsed": parsed, "stackHeight": stack_height}
    return {"programId": program_id, "accounts": accounts, "data": based58.b58encode(data).decode(),
            "stackHeight": stack_height}
