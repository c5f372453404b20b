"""JSON shapes of accounts and transactions exactly as Solana RPC nodes send them."""
from __future__ import annotations

import base64

import based58
from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from localnet.chain import RpcError


def account_json(acc: Account, encoding: str = "base64", data_slice: dict | None = None) -> dict:
    data = bytes(acc.data)
    if data_slice:
        off, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
        data = data[off:off + length]
    if encoding == "base58":
        if len(data) > 128:
            raise RpcError(-32600, "Encoded binary (base 58) data should be less than 128 bytes, "
                                   "please use Base64 encoding.")
        payload: object = [based58.b58encode(data).decode(), "base58"]
    else:  # base64, base64+zstd and jsonParsed are all answered in plain base64, which every client accepts
        payload = [base64.b64encode(data).decode(), "base64"]
    return {"lamports": acc.lamports, "data": payload, "owner": str(acc.owner), "executable": acc.executable,
            "rentEpoch": acc.rent_epoch, "space": len(acc.data)}


def decode_transaction(raw: str, encoding: str) -> VersionedTransaction:
    try:
        blob = base64.b64decode(raw, validate=True) if encoding == "base64" else based58.b58decode(raw.encode())
        return VersionedTransaction.from_bytes(blob)
    except Exception as e:  # malformed base64/base58 or bytes that are not a transaction
        raise RpcError(-32602, f"invalid transaction: failed to deserialize {encoding} transaction ({e})") from None


def decode_message(raw: str) -> Message | MessageV0:
    try:
        blob = base64.b64decode(raw, validate=True)
        return MessageV0.from_bytes(blob[1:]) if blob and blob[0] & 0x80 else Message.from_bytes(blob)
    except Exception as e:
        raise RpcError(-32602, f"invalid message: failed to deserialize ({e})") from None


def transaction_json(tx: VersionedTransaction) -> dict:
    """The "json" encoding of a transaction (what getTransaction returns by default)."""
    msg = tx.message
    keys = [str(k) for k in msg.account_keys]
    h = msg.header
    out = {
        "header": {"numRequiredSignatures": h.num_required_signatures,
                   "numReadonlySignedAccounts": h.num_readonly_signed_accounts,
                   "numReadonlyUnsignedAccounts": h.num_readonly_unsigned_accounts},
        "accountKeys": keys, "recentBlockhash": str(msg.recent_blockhash),
        "instructions": [{"programIdIndex": ix.program_id_index, "accounts": list(ix.accounts),
                          "data": based58.b58encode(bytes(ix.data)).decode(), "stackHeight": None}
                         for ix in msg.instructions],
    }
    if isinstance(msg, MessageV0):
        out["addressTableLookups"] = [{"accountKey": str(lk.account_key), "writableIndexes": list(lk.writable_indexes),
                                       "readonlyIndexes": list(lk.readonly_indexes)}
                                      for lk in msg.address_table_lookups]
    return {"signatures": [str(s) for s in tx.signatures], "message": out}


def parse_pubkey(value: object, what: str = "pubkey") -> Pubkey:
    try:
        return Pubkey.from_string(str(value))
    except Exception:
        raise RpcError(-32602, f"Invalid param: {what} {value!r} is not a base-58 public key") from None


def matches_filters(acc: Account, filters: list[dict]) -> bool:
    data = bytes(acc.data)
    for f in filters:
        if "dataSize" in f:
            if len(data) != int(f["dataSize"]):
                return False
        elif "memcmp" in f:
            m = f["memcmp"]
            enc = m.get("encoding", "base58")
            try:
                want = base64.b64decode(m["bytes"]) if enc == "base64" else based58.b58decode(m["bytes"].encode())
            except Exception:
                raise RpcError(-32602, f"Invalid param: memcmp bytes {m.get('bytes')!r} are not {enc}") from None
            off = int(m.get("offset", 0))
            if data[off:off + len(want)] != want:
                return False
        else:
            raise RpcError(-32602, f"Invalid param: unsupported filter {f!r}")
    return True
