"""JSON-RPC methods of the localnet, answering with the shapes solana-py, anchorpy and the Solana CLI parse.

Every handler takes the raw `params` list and returns the `result` value, or raises RpcError, which the
server turns into a JSON-RPC error object; nothing a client sends can crash the server."""
from __future__ import annotations

import base64
from collections.abc import Callable

import based58

from localnet.chain import Chain, RpcError
from localnet.encoding import (
    account_json,
    decode_message,
    decode_transaction,
    matches_filters,
    parse_pubkey,
    transaction_json,
)

API_VERSION = "2.1.0"


def _param(params: list, i: int, what: str, default: object = ...) -> object:
    if i < len(params) and params[i] is not None:
        return params[i]
    if default is ...:
        raise RpcError(-32602, f"Invalid params: missing {what} (parameter {i})")
    return default


def _cfg(params: list, i: int) -> dict:
    cfg = _param(params, i, "config", {})
    if not isinstance(cfg, dict):
        raise RpcError(-32602, f"Invalid params: parameter {i} must be a config object")
    return cfg


class RpcMethods:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.methods: dict[str, Callable[[list], object]] = {
            name[len("m_"):]: getattr(self, name) for name in dir(self) if name.startswith("m_")}

    def call(self, method: str, params: object) -> object:
        handler = self.methods.get(method)
        if handler is None:
            raise RpcError(-32601, f"Method not found: {method}")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise RpcError(-32602, "Invalid params: expected an array")
        try:
            return handler(params)
        except RpcError:
            raise
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise RpcError(-32602, f"Invalid params: {e}") from None

    def _ctx(self, value: object) -> dict:
        return {"context": {"slot": self.chain.slot, "apiVersion": API_VERSION}, "value": value}

    # ---- node ---------------------------------------------------------------------------------------
    def m_getHealth(self, params: list) -> str:
        return "ok"

    def m_getVersion(self, params: list) -> dict:
        return {"solana-core": API_VERSION, "feature-set": 0}

    def m_getSlot(self, params: list) -> int:
        return self.chain.slot

    def m_getBlockHeight(self, params: list) -> int:
        return self.chain.block_height

    def m_getLatestBlockhash(self, params: list) -> dict:
        h, last_valid = self.chain.latest_blockhash()
        return self._ctx({"blockhash": h, "lastValidBlockHeight": last_valid})

    def m_isBlockhashValid(self, params: list) -> dict:
        return self._ctx(self.chain.is_blockhash_valid(str(_param(params, 0, "blockhash"))))

    def m_getMinimumBalanceForRentExemption(self, params: list) -> int:
        size = int(_param(params, 0, "data length"))
        if not 0 <= size <= 10 * 1024 * 1024:
            raise RpcError(-32602, f"Invalid param: data length {size} is outside 0..10 MiB")
        return self.chain.svm.minimum_balance_for_rent_exemption(size)

    def m_getFeeForMessage(self, params: list) -> dict:
        msg = decode_message(str(_param(params, 0, "message")))
        return self._ctx(self.chain.fee_for(msg) if self.chain.is_blockhash_valid(str(msg.recent_blockhash))
                         else None)

    # ---- accounts -----------------------------------------------------------------------------------
    def m_getBalance(self, params: list) -> dict:
        acc = self.chain.get_account(parse_pubkey(_param(params, 0, "pubkey")))
        return self._ctx(acc.lamports if acc else 0)

    def m_getAccountInfo(self, params: list) -> dict:
        cfg = _cfg(params, 1)
        acc = self.chain.get_account(parse_pubkey(_param(params, 0, "pubkey")))
        return self._ctx(None if acc is None else account_json(acc, cfg.get("encoding", "base64"),
                                                               cfg.get("dataSlice")))

    def m_getMultipleAccounts(self, params: list) -> dict:
        keys = _param(params, 0, "pubkeys")
        if not isinstance(keys, list) or len(keys) > 100:
            raise RpcError(-32602, "Invalid params: pubkeys must be an array of at most 100 keys")
        cfg = _cfg(params, 1)
        out = []
        for k in keys:
            acc = self.chain.get_account(parse_pubkey(k))
            out.append(None if acc is None else account_json(acc, cfg.get("encoding", "base64"), cfg.get("dataSlice")))
        return self._ctx(out)

    def m_getProgramAccounts(self, params: list) -> object:
        owner = parse_pubkey(_param(params, 0, "program id"), "program id")
        cfg = _cfg(params, 1)
        filters = cfg.get("filters") or []
        if not isinstance(filters, list):
            raise RpcError(-32602, "Invalid params: filters must be an array")
        found = [{"pubkey": str(k), "account": account_json(a, cfg.get("encoding", "base64"), cfg.get("dataSlice"))}
                 for k, a in self.chain.program_accounts(owner) if matches_filters(a, filters)]
        return self._ctx(found) if cfg.get("withContext") else found

    def m_requestAirdrop(self, params: list) -> str:
        key = parse_pubkey(_param(params, 0, "pubkey"))
        lamports = int(_param(params, 1, "lamports"))
        if not 0 < lamports <= 1_000_000 * 10**9:
            raise RpcError(-32602, f"Invalid param: airdrop of {lamports} lamports (allowed: 1 ..= 1e15)")
        return self.chain.airdrop(key, lamports)

    # ---- transactions -------------------------------------------------------------------------------
    def m_sendTransaction(self, params: list) -> str:
        cfg = _cfg(params, 1)
        tx = decode_transaction(str(_param(params, 0, "transaction")), cfg.get("encoding", "base58"))
        return self.chain.send(tx, skip_preflight=bool(cfg.get("skipPreflight", False)))

    def m_simulateTransaction(self, params: list) -> dict:
        cfg = _cfg(params, 1)
        tx = decode_transaction(str(_param(params, 0, "transaction")), cfg.get("encoding", "base58"))
        return self._ctx(self.chain.simulate(tx, replace_blockhash=bool(cfg.get("replaceRecentBlockhash"))))

    def m_getSignatureStatuses(self, params: list) -> dict:
        sigs = _param(params, 0, "signatures")
        if not isinstance(sigs, list) or len(sigs) > 256:
            raise RpcError(-32602, "Invalid params: signatures must be an array of at most 256")
        out = []
        for s in sigs:
            rec = self.chain.statuses.get(str(s))
            out.append(None if rec is None else {
                "slot": rec["slot"], "confirmations": None, "err": rec["err"],
                "status": {"Err": rec["err"]} if rec["err"] is not None else {"Ok": None},
                "confirmationStatus": "finalized"})
        return self._ctx(out)

    def m_getTransaction(self, params: list) -> dict | None:
        rec = self.chain.statuses.get(str(_param(params, 0, "signature")))
        if rec is None:
            return None
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        encoding = cfg.get("encoding", params[1] if len(params) > 1 and isinstance(params[1], str) else "json")
        tx = rec["transaction"]
        if encoding == "json":
            tx = transaction_json(decode_transaction(rec["transaction"][0], "base64"))
        elif encoding == "base58":
            tx = [based58.b58encode(base64.b64decode(rec["transaction"][0])).decode(), "base58"]
        return {"slot": rec["slot"], "blockTime": rec["blockTime"], "transaction": tx, "meta": rec["meta"],
                "version": rec["version"]}
