"""Cluster, epoch and block RPC methods, answered from the localnet's real state: blocks are the slots it
produced (with their transactions, from the ledger), the node is its one identity, epochs follow LiteSVM's
epoch schedule. What a single node cannot have (votes, inflation, snapshots) is answered as empty or zero,
or with the validator's own error, never invented."""
from __future__ import annotations

import hashlib

from solders.hash import Hash

from localnet.chain import RpcError, unit_price_of
from localnet.encoding import decode_transaction, transaction_result
from localnet.rpc_params import API_VERSION, Params, int_param, param

MAX_BLOCK_RANGE = 500_000
SAMPLE_PERIOD_SECS = 60
TRANSACTION_DETAILS = ("full", "signatures", "none", "accounts")


def _unit_price(rec: dict) -> int:
    """The compute-unit price a landed transaction set (recorded at landing; older ledgers: decoded)."""
    if "unitPrice" in rec:
        return rec["unitPrice"]
    return unit_price_of(decode_transaction(rec["transaction"][0], "base64").message)


class ClusterMethods(Params):
    rpc_address: str

    # ---- node and cluster ---------------------------------------------------------------------------
    @property
    def _identity(self) -> str:
        return str(self.chain.identity.pubkey())

    def m_getIdentity(self, params: list) -> dict:
        return {"identity": self._identity}

    def m_getGenesisHash(self, params: list) -> str:
        seed = f"{self.chain.ledger.get_meta('genesis')}:{self.chain.faucet.pubkey()}".encode()
        return str(Hash(hashlib.sha256(seed).digest()))

    def m_getClusterNodes(self, params: list) -> list:
        return [{"pubkey": self._identity, "gossip": None, "tpu": None, "tpuQuic": None, "rpc": self.rpc_address,
                 "pubsub": self.rpc_address.rsplit(":", 1)[0] + f":{int(self.rpc_address.rsplit(':', 1)[1]) + 1}",
                 "version": API_VERSION, "featureSet": 0, "shredVersion": 0}]

    def m_getSlotLeader(self, params: list) -> str:
        self._cfg(params, 0)
        return self._identity

    def m_getSlotLeaders(self, params: list) -> list:
        int_param(params, 0, "start slot")
        limit = int_param(params, 1, "limit", lo=1, hi=5000)
        return [self._identity] * limit

    def m_getLeaderSchedule(self, params: list) -> dict | None:
        sched = self.chain.svm.get_epoch_schedule()
        slot = params[0] if params and isinstance(params[0], int) else self.chain.slot
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else (
            params[0] if params and isinstance(params[0], dict) else {})
        if cfg.get("identity") not in (None, self._identity):
            return {}
        epoch = sched.get_epoch(slot)
        if epoch > sched.get_epoch(self.chain.slot) + 1:
            return None
        return {self._identity: list(range(sched.get_slots_in_epoch(epoch)))}

    def m_getVoteAccounts(self, params: list) -> dict:
        return {"current": [], "delinquent": []}  # the localnet does not vote

    def m_getEpochInfo(self, params: list) -> dict:
        self._cfg(params, 0)
        sched = self.chain.svm.get_epoch_schedule()
        epoch, index = sched.get_epoch_and_slot_index(self.chain.slot)
        return {"absoluteSlot": self.chain.slot, "blockHeight": self.chain.block_height, "epoch": epoch,
                "slotIndex": index, "slotsInEpoch": sched.get_slots_in_epoch(epoch),
                "transactionCount": self.chain.ledger.transaction_count()}

    def m_getEpochSchedule(self, params: list) -> dict:
        s = self.chain.svm.get_epoch_schedule()
        return {"firstNormalEpoch": s.first_normal_epoch, "firstNormalSlot": s.first_normal_slot,
                "leaderScheduleSlotOffset": s.leader_schedule_slot_offset, "slotsPerEpoch": s.slots_per_epoch,
                "warmup": s.warmup}

    def m_getTransactionCount(self, params: list) -> int:
        self._cfg(params, 0)
        return self.chain.ledger.transaction_count()

    def m_getSupply(self, params: list) -> dict:
        cfg = self._cfg(params, 0)
        total = sum(lamports for _, lamports in self._balances())
        return self._ctx({"total": total, "circulating": total, "nonCirculating": 0,
                          "nonCirculatingAccounts": [] if not cfg.get("excludeNonCirculatingAccountsList") else []})

    def _balances(self) -> list[tuple[str, int]]:
        seen = {k for keys in self.chain.owners.values() for k in keys}
        out = []
        for key in seen:
            acc = self.chain.get_account(key)
            if acc is not None:
                out.append((str(key), acc.lamports))
        return out

    def m_getLargestAccounts(self, params: list) -> dict:
        cfg = self._cfg(params, 0)
        if cfg.get("filter") not in (None, "circulating", "nonCirculating"):
            raise RpcError(-32602, "Invalid params: filter must be circulating or nonCirculating")
        rows = [] if cfg.get("filter") == "nonCirculating" else self._balances()
        rows.sort(key=lambda r: (-r[1], r[0]))
        return self._ctx([{"address": a, "lamports": lam} for a, lam in rows[:20]])

    def m_getInflationGovernor(self, params: list) -> dict:
        return {"foundation": 0.0, "foundationTerm": 0.0, "initial": 0.0, "taper": 0.0, "terminal": 0.0}

    def m_getInflationRate(self, params: list) -> dict:
        epoch = self.chain.svm.get_epoch_schedule().get_epoch(self.chain.slot)
        return {"epoch": epoch, "foundation": 0.0, "total": 0.0, "validator": 0.0}

    def m_getStakeMinimumDelegation(self, params: list) -> dict:
        self._cfg(params, 0)
        return self._ctx(1)  # the stake program's minimum without the raise-to-1-SOL feature

    def m_getMaxRetransmitSlot(self, params: list) -> int:
        return self.chain.slot

    def m_getMaxShredInsertSlot(self, params: list) -> int:
        return self.chain.slot

    def m_getInflationReward(self, params: list) -> list:
        addresses = param(params, 0, "addresses")
        if not isinstance(addresses, list):
            raise RpcError(-32602, "Invalid params: addresses must be an array")
        return [None for _ in addresses]  # no inflation, so no epoch rewards

    def m_getBlockCommitment(self, params: list) -> dict:
        slot = int_param(params, 0, "slot")
        # One node holds all the stake there is (none): a produced block is as committed as it gets.
        return {"commitment": None if self.chain.ledger.block(slot) is None else [0] * 32, "totalStake": 0}

    def m_getHighestSnapshotSlot(self, params: list) -> dict:
        raise RpcError(-32008, "No snapshot")  # the localnet persists a ledger, not snapshots

    def m_getRecentPrioritizationFees(self, params: list) -> list:
        addresses = param(params, 0, "addresses", [])
        if not isinstance(addresses, list) or len(addresses) > 128:
            raise RpcError(-32602, "Invalid params: addresses must be an array of at most 128 pubkeys")
        wanted = {str(a) for a in addresses}
        out = []
        for slot in self.chain.ledger.block_slots(max(0, self.chain.slot - 150), self.chain.slot, 151):
            prices = [_unit_price(rec) for _, rec in self.chain.ledger.block_transactions(slot)
                      if not wanted or wanted & set(self._keys_of(rec))]
            out.append({"slot": slot, "prioritizationFee": min(prices) if prices else 0})
        return out

    @staticmethod
    def _keys_of(rec: dict) -> list[str]:
        msg = decode_transaction(rec["transaction"][0], "base64").message
        loaded = rec["meta"]["loadedAddresses"]
        return [str(k) for k in msg.account_keys] + loaded["writable"] + loaded["readonly"]

    def m_getRecentPerformanceSamples(self, params: list) -> list:
        limit = int_param(params, 0, "limit", 720, lo=1, hi=720)
        first = max(self.chain.ledger.first_block(), self.chain.slot - limit * 150)
        counts = self.chain.ledger.recent_slot_counts(first)
        samples: dict[int, list[int]] = {}
        for slot, t in self.chain.ledger.block_times(first):
            s = samples.setdefault(t // SAMPLE_PERIOD_SECS, [slot, 0, 0])
            s[0], s[1], s[2] = max(s[0], slot), s[1] + 1, s[2] + counts.get(slot, 0)
        rows = sorted(samples.values(), reverse=True)[:limit]
        return [{"slot": last, "numSlots": n, "numTransactions": tx, "numNonVoteTransactions": tx,
                 "samplePeriodSecs": SAMPLE_PERIOD_SECS} for last, n, tx in rows]

    # ---- blocks -------------------------------------------------------------------------------------
    def m_getBlockProduction(self, params: list) -> dict:
        cfg = self._cfg(params, 0)
        rng = cfg.get("range") or {}
        first = int(rng.get("firstSlot", self.chain.ledger.first_block()))
        last = int(rng.get("lastSlot", self.chain.slot))
        if last < first:
            raise RpcError(-32602, "Invalid params: lastSlot must be >= firstSlot")
        blocks = len(self.chain.ledger.block_slots(first, last, MAX_BLOCK_RANGE * 10))
        by_identity = {} if cfg.get("identity") not in (None, self._identity) else {
            self._identity: [last - first + 1, blocks]}
        return self._ctx({"byIdentity": by_identity, "range": {"firstSlot": first, "lastSlot": last}})

    def m_getFirstAvailableBlock(self, params: list) -> int:
        return self.chain.ledger.first_block()

    def m_minimumLedgerSlot(self, params: list) -> int:
        return self.chain.ledger.first_block()

    def m_getBlocks(self, params: list) -> list:
        start = int_param(params, 0, "start slot")
        end = params[1] if len(params) > 1 and isinstance(params[1], int) else self.chain.slot
        if end - start > MAX_BLOCK_RANGE:
            raise RpcError(-32602, f"Slot range too large; max {MAX_BLOCK_RANGE}")
        return self.chain.ledger.block_slots(start, min(end, self.chain.slot), MAX_BLOCK_RANGE + 1)

    def m_getBlocksWithLimit(self, params: list) -> list:
        start = int_param(params, 0, "start slot")
        limit = int_param(params, 1, "limit", hi=MAX_BLOCK_RANGE)
        return self.chain.ledger.block_slots(start, self.chain.slot, limit)

    def _block_row(self, slot: int) -> tuple[str, int, int]:
        row = self.chain.ledger.block(slot)
        if row is None:
            if slot > self.chain.slot:
                raise RpcError(-32004, f"Block not available for slot {slot}")
            raise RpcError(-32009, f"Slot {slot} was skipped, or missing in long-term storage")
        return row

    def m_getBlockTime(self, params: list) -> int:
        return self._block_row(int_param(params, 0, "slot"))[2]

    def m_getBlock(self, params: list) -> dict:
        slot = int_param(params, 0, "slot")
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        encoding = cfg.get("encoding") or (params[1] if len(params) > 1 and isinstance(params[1], str) else "json")
        details = cfg.get("transactionDetails") or "full"
        if details not in TRANSACTION_DETAILS:
            raise RpcError(-32602, f"Invalid params: transactionDetails must be one of {TRANSACTION_DETAILS}")
        blockhash, parent, t = self._block_row(slot)
        prev = self.chain.ledger.block(parent)
        out = {"blockHeight": slot, "blockTime": t, "blockhash": blockhash, "parentSlot": parent,
               "previousBlockhash": prev[0] if prev else str(Hash.default())}
        records = self.chain.ledger.block_transactions(slot) if details != "none" else []
        max_version = cfg.get("maxSupportedTransactionVersion")
        if details == "full":
            out["transactions"] = [transaction_result(rec, encoding, max_version, with_slot=False)
                                   for _, rec in records]
        elif details == "signatures":
            out["signatures"] = [sig for sig, _ in records]
        elif details == "accounts":
            out["transactions"] = [self._accounts_entry(rec, max_version) for _, rec in records]
        if cfg.get("rewards", True):
            out["rewards"] = []
        return out

    def _accounts_entry(self, rec: dict, max_version: object) -> dict:
        tx = transaction_result(rec, "jsonParsed", max_version, with_slot=False)
        msg = tx["transaction"]["message"]
        meta = {k: rec["meta"][k] for k in ("err", "status", "fee", "preBalances", "postBalances",
                                             "preTokenBalances", "postTokenBalances")}
        out = {"transaction": {"signatures": tx["transaction"]["signatures"], "accountKeys": msg["accountKeys"]},
               "meta": meta}
        if "version" in tx:
            out["version"] = tx["version"]
        return out


