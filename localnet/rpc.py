"""JSON-RPC methods of the localnet, answering with the shapes solana-py, anchorpy, @solana/web3.js,
@solana/kit and the Solana CLI parse.

Every handler takes the raw `params` list and returns the `result` value, or raises RpcError, which the
server turns into a JSON-RPC error object; nothing a client sends can crash the server. The cluster and
block methods live in rpc_cluster, the SPL token ones in rpc_tokens."""
from __future__ import annotations

import random
from collections.abc import Callable

from localnet.chain import Chain, RpcError
from localnet.encoding import (
    account_json,
    decode_message,
    decode_transaction,
    matches_filters,
    parse_pubkey,
    transaction_result,
)
from localnet.rpc_cluster import ClusterMethods
from localnet.rpc_params import API_VERSION, int_param, param
from localnet.rpc_tokens import TokenMethods

__all__ = ["API_VERSION", "RpcMethods"]


class RpcMethods(ClusterMethods, TokenMethods):
    def __init__(self, chain: Chain, rpc_address: str = "127.0.0.1:8899", drop_tx_rate: float = 0.0) -> None:
        self.chain, self.rpc_address = chain, rpc_address
        self.drop_tx_rate = drop_tx_rate  # share of sendTransaction calls accepted and never landed (tests)
        self._drops = random.Random()
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
        except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as e:
            raise RpcError(-32602, f"Invalid params: {e}") from None

    # ---- node ---------------------------------------------------------------------------------------
    def m_getHealth(self, params: list) -> str:
        return "ok"

    def m_getVersion(self, params: list) -> dict:
        return {"solana-core": API_VERSION, "feature-set": 0}

    def m_getSlot(self, params: list) -> int:
        self._cfg(params, 0)
        return self.chain.slot

    def m_getBlockHeight(self, params: list) -> int:
        self._cfg(params, 0)
        return self.chain.block_height

    def m_getLatestBlockhash(self, params: list) -> dict:
        self._cfg(params, 0)
        h, last_valid = self.chain.latest_blockhash()
        return self._ctx({"blockhash": h, "lastValidBlockHeight": last_valid})

    def m_isBlockhashValid(self, params: list) -> dict:
        self._cfg(params, 1)
        return self._ctx(self.chain.is_blockhash_valid(str(param(params, 0, "blockhash"))))

    def m_getMinimumBalanceForRentExemption(self, params: list) -> int:
        size = int_param(params, 0, "data length", hi=10 * 1024 * 1024)
        return self.chain.svm.minimum_balance_for_rent_exemption(size)

    def m_getFeeForMessage(self, params: list) -> dict:
        msg = decode_message(str(param(params, 0, "message")))
        self._cfg(params, 1)
        return self._ctx(self.chain.fee_for(msg) if self.chain.is_blockhash_valid(str(msg.recent_blockhash))
                         else None)

    # ---- accounts -----------------------------------------------------------------------------------
    def m_getBalance(self, params: list) -> dict:
        self._cfg(params, 1)
        acc = self.chain.get_account(parse_pubkey(param(params, 0, "pubkey")))
        return self._ctx(acc.lamports if acc else 0)

    def m_getAccountInfo(self, params: list) -> dict:
        cfg = self._cfg(params, 1)
        acc = self.chain.get_account(parse_pubkey(param(params, 0, "pubkey")))
        return self._ctx(None if acc is None else account_json(acc, cfg.get("encoding", "base64"),
                                                               cfg.get("dataSlice"), chain=self.chain))

    def m_getMultipleAccounts(self, params: list) -> dict:
        keys = param(params, 0, "pubkeys")
        if not isinstance(keys, list) or len(keys) > 100:
            raise RpcError(-32602, "Invalid params: pubkeys must be an array of at most 100 keys")
        cfg = self._cfg(params, 1)
        out = []
        for k in keys:
            acc = self.chain.get_account(parse_pubkey(k))
            out.append(None if acc is None else account_json(acc, cfg.get("encoding", "base64"), cfg.get("dataSlice"),
                                                             chain=self.chain))
        return self._ctx(out)

    def m_getProgramAccounts(self, params: list) -> object:
        owner = parse_pubkey(param(params, 0, "program id"), "program id")
        cfg = self._cfg(params, 1)
        filters = cfg.get("filters") or []
        if not isinstance(filters, list):
            raise RpcError(-32602, "Invalid params: filters must be an array")
        found = [{"pubkey": str(k), "account": account_json(a, cfg.get("encoding", "base64"), cfg.get("dataSlice"),
                                                            chain=self.chain)}
                 for k, a in self.chain.program_accounts(owner) if matches_filters(a, filters)]
        return self._ctx(found) if cfg.get("withContext") else found

    def m_requestAirdrop(self, params: list) -> str:
        key = parse_pubkey(param(params, 0, "pubkey"))
        lamports = param(params, 1, "lamports")
        if isinstance(lamports, bool) or not isinstance(lamports, int) or not 0 < lamports <= 1_000_000 * 10**9:
            raise RpcError(-32602, f"Invalid param: airdrop of {lamports!r} lamports (allowed: 1 ..= 1e15)")
        return self.chain.airdrop(key, lamports)

    # ---- transactions -------------------------------------------------------------------------------
    def m_sendTransaction(self, params: list) -> str:
        cfg = self._cfg(params, 1)
        tx = decode_transaction(str(param(params, 0, "transaction")), cfg.get("encoding", "base58"))
        skip = bool(cfg.get("skipPreflight", False))
        if self.drop_tx_rate and self._drops.random() < self.drop_tx_rate:
            # a congested leader: the transaction passes preflight, its signature comes back, it never lands
            if not skip:
                sim = self.chain.simulate(tx, sig_verify=True)
                if sim["err"] is not None:
                    raise RpcError(-32002, f"Transaction simulation failed: {sim['err']}", sim)
            return str(tx.signatures[0])
        return self.chain.send(tx, skip_preflight=skip)

    def m_simulateTransaction(self, params: list) -> dict:
        cfg = self._cfg(params, 1)
        tx = decode_transaction(str(param(params, 0, "transaction")), cfg.get("encoding", "base58"))
        if cfg.get("sigVerify") and cfg.get("replaceRecentBlockhash"):
            raise RpcError(-32602, "Invalid params: sigVerify may not be used with replaceRecentBlockhash")
        want = cfg.get("accounts")
        keys = None
        if want is not None:
            if not isinstance(want, dict) or not isinstance(want.get("addresses"), list):
                raise RpcError(-32602, "Invalid params: accounts must be {\"addresses\": [...], \"encoding\"}")
            keys = [parse_pubkey(a, "accounts address") for a in want["addresses"]]
            if len(keys) > len(tx.message.account_keys) + 256:
                raise RpcError(-32602, "Invalid params: too many accounts provided")
        sim = self.chain.simulate(tx, replace_blockhash=bool(cfg.get("replaceRecentBlockhash")), accounts=keys,
                                  sig_verify=bool(cfg.get("sigVerify")))
        if keys is not None:
            enc = want.get("encoding") or "base64"
            if enc not in ("base64", "base64+zstd", "jsonParsed"):
                raise RpcError(-32602, f"Invalid params: simulateTransaction accounts encoding {enc!r} unsupported")
            sim["accounts"] = [None if a is None or (a.lamports == 0 and not a.executable)
                               else account_json(a, enc, chain=self.chain) for a in sim["accounts"]]
        if cfg.get("replaceRecentBlockhash"):
            h, last_valid = self.chain.latest_blockhash()
            sim["replacementBlockhash"] = {"blockhash": h, "lastValidBlockHeight": last_valid}
        return self._ctx(sim)

    def m_getSignatureStatuses(self, params: list) -> dict:
        sigs = param(params, 0, "signatures")
        if not isinstance(sigs, list) or len(sigs) > 256:
            raise RpcError(-32602, "Invalid params: signatures must be an array of at most 256")
        self._cfg(params, 1)
        out = []
        for s in sigs:
            rec = self.chain.status(str(s))
            out.append(None if rec is None else {
                "slot": rec["slot"], "confirmations": None, "err": rec["err"],
                "status": {"Err": rec["err"]} if rec["err"] is not None else {"Ok": None},
                "confirmationStatus": "finalized"})
        return self._ctx(out)

    def m_getTransaction(self, params: list) -> dict | None:
        rec = self.chain.status(str(param(params, 0, "signature")))
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        encoding = cfg.get("encoding") or (params[1] if len(params) > 1 and isinstance(params[1], str) else "json")
        if rec is None:
            return None
        return transaction_result(rec, encoding, cfg.get("maxSupportedTransactionVersion"))

    def m_getSignaturesForAddress(self, params: list) -> list:
        key = parse_pubkey(param(params, 0, "address"), "address")
        cfg = self._cfg(params, 1)
        limit = cfg.get("limit")
        if limit is None:  # solana-py sends "limit": null by default; a validator reads it as the default
            limit = 1000
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise RpcError(-32602, "Invalid limit; max 1000")
        bounds = []
        for name in ("before", "until"):
            sig = cfg.get(name)
            seq = None
            if sig is not None:
                seq = self.chain.ledger.seq_of(str(sig))
                if seq is None and name == "before":
                    return []  # a validator finds nothing older than an unknown signature
            bounds.append(seq)
        return [{"signature": sig, "slot": slot, "err": rec["err"], "memo": rec.get("memo"),
                 "blockTime": rec["blockTime"], "confirmationStatus": "finalized"}
                for sig, slot, rec in self.chain.ledger.signatures_for(key, bounds[0], bounds[1], limit)]
