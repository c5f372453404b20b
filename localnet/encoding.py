"""JSON shapes of accounts and transactions exactly as Solana RPC nodes send them."""
from __future__ import annotations

import base64

import based58
from solders.account import Account
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from localnet import spl_token
from localnet.chain import RpcError, is_writable_static
from localnet.parsed_instructions import parsed_instruction

PACKET_DATA_SIZE = 1232  # the largest transaction a validator accepts (an IPv6 MTU minus headers)
_MAX_ENCODED = {"base64": 1644, "base58": 1683}
ENCODINGS = ("base58", "base64", "base64+zstd", "jsonParsed")


def account_json(acc: Account, encoding: str = "base64", data_slice: dict | None = None, chain=None) -> dict:
    """An account as RPC nodes send it. jsonParsed parses SPL token accounts and mints (their decimals are
    looked up through `chain`); any other account falls back to base64, as on a validator. base64+zstd is
    answered in plain base64 (labelled so), which every client decodes."""
    encoding = encoding or "base64"
    if encoding not in ENCODINGS:
        raise RpcError(-32602, f"Invalid params: unknown encoding {encoding!r} (one of {', '.join(ENCODINGS)})")
    data = bytes(acc.data)
    if encoding == "jsonParsed" and chain is not None:
        parsed = spl_token.parsed_json(acc, chain.get_account)
        if parsed is not None:
            return {"lamports": acc.lamports, "data": parsed, "owner": str(acc.owner),
                    "executable": acc.executable, "rentEpoch": acc.rent_epoch, "space": len(data)}
    if data_slice:
        if not isinstance(data_slice, dict):
            raise RpcError(-32602, "Invalid params: dataSlice must be {offset, length}")
        off, length = int(data_slice.get("offset", 0)), int(data_slice.get("length", 0))
        if off < 0 or length < 0:
            raise RpcError(-32602, "Invalid params: dataSlice offset and length must be >= 0")
        data = data[off:off + length]
    if encoding == "base58":
        if len(data) > 128:
            raise RpcError(-32600, "Encoded binary (base 58) data should be less than 128 bytes, "
                                   "please use Base64 encoding.")
        payload: object = [based58.b58encode(data).decode(), "base58"]
    else:
        payload = [base64.b64encode(data).decode(), "base64"]
    return {"lamports": acc.lamports, "data": payload, "owner": str(acc.owner), "executable": acc.executable,
            "rentEpoch": acc.rent_epoch, "space": len(acc.data)}


def decode_transaction(raw: str, encoding: str) -> VersionedTransaction:
    """A wire transaction, refused (as a validator does) beyond the 1232-byte packet limit."""
    encoding = encoding or "base58"
    if encoding not in _MAX_ENCODED:
        raise RpcError(-32602, f"Invalid params: unknown transaction encoding {encoding!r} (base58 or base64)")
    if len(raw) > _MAX_ENCODED[encoding]:
        raise RpcError(-32602, f"{encoding} encoded solana_transaction::versioned::VersionedTransaction too large: "
                               f"{len(raw)} bytes (max: encoded/raw {_MAX_ENCODED[encoding]}/{PACKET_DATA_SIZE})")
    try:
        blob = base64.b64decode(raw, validate=True) if encoding == "base64" else based58.b58decode(raw.encode())
    except Exception as e:
        raise RpcError(-32602, f"invalid transaction: failed to decode {encoding} ({e})") from None
    if len(blob) > PACKET_DATA_SIZE:
        raise RpcError(-32602, f"decoded solana_transaction::versioned::VersionedTransaction too large: {len(blob)} "
                               f"bytes (max: {PACKET_DATA_SIZE} bytes)")
    try:
        return VersionedTransaction.from_bytes(blob)
    except Exception as e:  # bytes that are not a transaction
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


def transaction_parsed_json(tx: VersionedTransaction, loaded: dict) -> dict:
    """The "jsonParsed" encoding: account keys with signer/writable/source; System, SPL Token and Memo
    instructions parsed, others partially decoded (programId, accounts, base58 data)."""
    msg = tx.message
    nsig = msg.header.num_required_signatures
    keys = [{"pubkey": str(k), "signer": i < nsig, "writable": is_writable_static(msg, i), "source": "transaction"}
            for i, k in enumerate(msg.account_keys)]
    keys += [{"pubkey": k, "signer": False, "writable": True, "source": "lookupTable"} for k in loaded["writable"]]
    keys += [{"pubkey": k, "signer": False, "writable": False, "source": "lookupTable"} for k in loaded["readonly"]]
    names = [k["pubkey"] for k in keys]
    out = {"accountKeys": keys, "recentBlockhash": str(msg.recent_blockhash),
           "instructions": [parsed_instruction(names[ix.program_id_index], [names[a] for a in ix.accounts],
                                               bytes(ix.data), None) for ix in msg.instructions]}
    if isinstance(msg, MessageV0):
        out["addressTableLookups"] = transaction_json(tx)["message"]["addressTableLookups"]
    return {"signatures": [str(s) for s in tx.signatures], "message": out}


def transaction_result(rec: dict, encoding: str, max_version: object, with_slot: bool = True) -> dict:
    """A landed transaction as getTransaction / getBlock show it in `encoding`."""
    if rec["version"] != "legacy" and max_version is None:
        raise RpcError(-32015, f"Transaction version ({rec['version']}) is not supported by the requesting client. "
                               "Please try the request again with the following configuration parameter: "
                               "\"maxSupportedTransactionVersion\": 0")
    raw = rec["transaction"][0]
    if encoding == "json":
        tx: object = transaction_json(decode_transaction(raw, "base64"))
    elif encoding == "jsonParsed":
        tx = transaction_parsed_json(decode_transaction(raw, "base64"), rec["meta"]["loadedAddresses"])
        names = [k["pubkey"] for k in tx["message"]["accountKeys"]]
        meta = {**rec["meta"], "innerInstructions": [
            {"index": group["index"], "instructions": [
                parsed_instruction(names[ix["programIdIndex"]], [names[a] for a in ix["accounts"]],
                                   based58.b58decode(ix["data"].encode()), ix["stackHeight"])
                for ix in group["instructions"]]}
            for group in rec["meta"]["innerInstructions"]]}
    elif encoding == "base58":
        tx = [based58.b58encode(base64.b64decode(raw)).decode(), "base58"]
    elif encoding == "base64":
        tx = rec["transaction"]
    else:
        raise RpcError(-32602, f"Invalid params: unknown encoding {encoding!r} (json, jsonParsed, base58, base64)")
    out = {"transaction": tx, "meta": meta if encoding == "jsonParsed" else rec["meta"]}
    if max_version is not None:
        out["version"] = rec["version"]
    if with_slot:
        out = {"slot": rec["slot"], "blockTime": rec["blockTime"], **out}
    return out


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
