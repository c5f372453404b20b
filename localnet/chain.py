"""The localnet's chain: LiteSVM plus what a validator adds around it.

LiteSVM executes transactions; this class adds a slot clock that follows wall time (with SlotHashes kept
current), a window of recent blockhashes (150 slots, as on a cluster), transaction records and blocks in
the ledger, an index of accounts by owner (solders 0.26's LiteSVM has no getProgramAccounts), a faucet,
programs deployed through the loader, the purge of zero-lamport accounts a validator does, and a ledger
written before anything is reported confirmed (a failed write undoes the transaction in memory).
"""
from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import based58
from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.litesvm import LiteSVM
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from coordinator_sdk import keypair_file as keys
from localnet import loader
from localnet.fees import COMPUTE_BUDGET, priority_fee_of, unit_price_of  # noqa: F401 (re-exported)
from localnet.ledger import Ledger, LedgerWriteError
from localnet.spl_token import token_balances
from programs.deploy import DEPLOY_DIR, LOADER_V3, deploy_via_loader, program_id_for

SLOT_SECONDS = 0.4
BLOCKHASH_WINDOW = 150          # slots a blockhash stays valid, as on mainnet
MAX_BLOCKHASH_CATCH_UP = 1_000_000  # sequence steps a restart may walk to reach the last persisted blockhash
LAMPORTS_PER_SIGNATURE = 5000   # LiteSVM's default fee
SLOT_HASHES_MAX = 512           # entries in the SlotHashes sysvar, as on a cluster
LOOKUP_TABLE_META_SIZE = 56     # address lookup table header; 32-byte addresses follow
FAUCET_LAMPORTS = 500_000_000 * 10**9
_NOT_PERSISTED_OWNERS = {Pubkey.from_string(s) for s in (
    "Sysvar1111111111111111111111111111111111111", "NativeLoader1111111111111111111111111111111",
    "BPFLoader2111111111111111111111111111111111")}
_GONE = Account(0, b"", Pubkey.default(), False, 0)
MEMO_PROGRAMS = {Pubkey.from_string("MemoSq4gqABAXKb96qnH8TctzXVSRvF7AFSpfNJSVWe"),
                 Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")}

Listener = Callable[[str, object], None]


class RpcError(Exception):
    """An error the RPC layer returns as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def error_json(err: object) -> object:
    """A solders TransactionError as the JSON an RPC node sends (e.g. {"InstructionError":[0,{"Custom":1}]})."""
    return json.loads(RpcSimulateTransactionResult(err=err).to_json())["err"]


def inner_instructions_json(meta) -> list[dict]:
    """CPIs a transaction made, in the "json" encoding (indexes into the account keys, base58 data)."""
    out = []
    for index, inner in enumerate(meta.inner_instructions()):
        if inner:
            out.append({"index": index, "instructions": [
                {"programIdIndex": ci.program_id_index, "accounts": list(ci.accounts),
                 "data": based58.b58encode(bytes(ci.data)).decode(), "stackHeight": x.stack_height()}
                for x in inner for ci in [x.instruction()]]})
    return out


def is_writable_static(msg: Message | MessageV0, i: int) -> bool:
    """Whether static account key i is writable, from the message header (as signed)."""
    h, n = msg.header, len(msg.account_keys)
    if i < h.num_required_signatures:
        return i < h.num_required_signatures - h.num_readonly_signed_accounts
    return i < n - h.num_readonly_unsigned_accounts


def memo_of(message: Message | MessageV0) -> str | None:
    """The memo a validator's getSignaturesForAddress shows: "[len] text" per Memo instruction, "; "-joined."""
    keys = list(message.account_keys)
    memos = [bytes(ix.data) for ix in message.instructions
             if ix.program_id_index < len(keys) and keys[ix.program_id_index] in MEMO_PROGRAMS]
    return "; ".join(f"[{len(m)}] {m.decode(errors='replace')}" for m in memos) or None


def simulation_json(meta, err: object = None) -> dict:
    rd = meta.return_data()
    return_data = None
    if rd is not None and bytes(rd.data):
        return_data = {"programId": str(rd.program_id), "data": [base64.b64encode(bytes(rd.data)).decode(), "base64"]}
    return {"err": None if err is None else error_json(err), "logs": list(meta.logs()), "accounts": None,
            "unitsConsumed": meta.compute_units_consumed(), "returnData": return_data, "innerInstructions": None,
            "replacementBlockhash": None}


class Chain:
    def __init__(self, ledger_dir: Path, reset: bool = False, deploy_programs: bool = True) -> None:
        if reset and ledger_dir.exists():
            for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
                (ledger_dir / name).unlink(missing_ok=True)
        self.ledger_dir = ledger_dir
        ledger_dir.mkdir(parents=True, exist_ok=True)
        self.faucet = keys.load_or_create(ledger_dir / "faucet.json")  # a corrupt one stops us before the ledger
        self.deployer = keys.load_or_create(ledger_dir / "deployer.json")
        self.identity = keys.load_or_create(ledger_dir / "identity.json")  # the node (slot leader) identity
        self.ledger = Ledger(ledger_dir)
        self.svm = LiteSVM().with_sigverify(True).with_blockhash_check(False).with_transaction_history(0)
        self.blockhashes: OrderedDict[str, int] = OrderedDict()
        self.owners: dict[Pubkey, set[Pubkey]] = {}
        self.listeners: list[Listener] = []
        self.programs: dict[str, Pubkey] = {}
        self.genesis = self.ledger.get_meta("genesis") is None
        self._restore()
        if deploy_programs:
            self._deploy_programs()
        self.advance()

    # ---- startup ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        if self.genesis:
            self.slot = 1
            self.svm.set_account(self.faucet.pubkey(), Account(FAUCET_LAMPORTS, b"", Pubkey.default(), False, 0))
            self.svm.set_account(self.deployer.pubkey(), Account(1_000 * 10**9, b"", Pubkey.default(), False, 0))
            self._persist([self.faucet.pubkey(), self.deployer.pubkey()])
            self.ledger.set_meta("genesis", str(int(time.time())))
        else:
            accounts = self.ledger.accounts()
            # Program accounts load their ProgramData when set: restore plain accounts first.
            for key, acc in sorted(accounts, key=lambda ka: ka[1].executable):
                loader.restore_account(self.svm, key, acc)
                self.owners.setdefault(acc.owner, set()).add(key)
            self.slot = int(self.ledger.get_meta("slot") or "1")
            # LiteSVM's blockhashes follow a fixed sequence: move past every one already handed out, and keep
            # the recent ones valid, so a transaction signed just before a restart still lands after it.
            # Blocks are not the only steps of that sequence (each loader deploy at genesis takes some), so
            # walk on until the last persisted block's hash: handing out an older one again would make a new
            # transaction byte-identical to one that already landed (a client's repeated `tick`), and the
            # validator would answer AlreadyProcessed instead of running it.
            for _ in range(self.ledger.block_count()):
                self.svm.expire_blockhash()
            recent = self.ledger.recent_blocks(BLOCKHASH_WINDOW)
            if recent:
                last = recent[-1][1]
                for _ in range(MAX_BLOCKHASH_CATCH_UP):
                    if str(self.svm.latest_blockhash()) == last:
                        break
                    self.svm.expire_blockhash()
            for slot, h in recent:
                self.blockhashes[h] = slot

    def _deploy_programs(self) -> None:
        for so in sorted(DEPLOY_DIR.glob("*.so")):
            pid = program_id_for(so.stem)
            self.programs[so.stem] = pid
            elf = so.read_bytes()
            pd = Pubkey.find_program_address([bytes(pid)], LOADER_V3)[0]
            current = self.svm.get_account(pd)
            if current is not None and bytes(current.data)[45:45 + len(elf)] == elf:
                continue  # restored from the ledger, already the committed build
            self.svm.warp_to_slot(max(self.slot, self.svm.get_clock().slot))
            deployed = deploy_via_loader(self.svm, elf, pid, self.deployer)
            self.slot = self.svm.get_clock().slot
            self._persist([pid, deployed.programdata, self.deployer.pubkey()])

    # ---- clock --------------------------------------------------------------------------------------
    def advance(self) -> None:
        """One slot: the clock follows wall time, a new blockhash becomes the latest and enters SlotHashes
        (the slot enters SlotHistory), and the block is persisted before anyone hears of the slot (so the
        slot never goes back). A ledger that cannot be written stops the clock rather than hand out slots
        it would forget."""
        slot, now = self.slot + 1, int(time.time())
        parent = self.slot
        self.svm.warp_to_slot(slot)
        c = self.svm.get_clock()
        self.svm.set_clock(Clock(slot=slot, epoch_start_timestamp=c.epoch_start_timestamp, epoch=c.epoch,
                                 leader_schedule_epoch=c.leader_schedule_epoch, unix_timestamp=now))
        self.svm.expire_blockhash()
        latest = self.svm.latest_blockhash()
        self.ledger.add_block(slot, str(latest), parent, now)  # LedgerWriteError: the ticker logs and retries
        self.slot = slot
        hashes = [(slot, latest)] + [(s, h) for s, h in self.svm.get_slot_hashes() if s < slot]
        self.svm.set_slot_hashes(hashes[:SLOT_HASHES_MAX])
        history = self.svm.get_slot_history()
        history.add(slot)
        history.next_slot = slot + 1
        self.svm.set_slot_history(history)
        self.blockhashes[str(latest)] = slot
        while len(self.blockhashes) > BLOCKHASH_WINDOW + 1:
            self.blockhashes.popitem(last=False)
        for listener in self.listeners:
            listener("slot", slot)

    @property
    def block_height(self) -> int:
        return self.slot

    def latest_blockhash(self) -> tuple[str, int]:
        h, slot = next(reversed(self.blockhashes.items()))
        return h, slot + BLOCKHASH_WINDOW

    def is_blockhash_valid(self, h: str) -> bool:
        slot = self.blockhashes.get(h)
        return slot is not None and self.slot - slot <= BLOCKHASH_WINDOW

    # ---- reads --------------------------------------------------------------------------------------
    def get_account(self, key: Pubkey) -> Account | None:
        acc = self.svm.get_account(key)
        return acc if acc is not None and (acc.lamports > 0 or acc.executable) else None

    def program_accounts(self, owner: Pubkey) -> list[tuple[Pubkey, Account]]:
        out = []
        for key in sorted(self.owners.get(owner, ()), key=bytes):
            acc = self.get_account(key)
            if acc is not None and acc.owner == owner:
                out.append((key, acc))
        return out

    def fee_for(self, message: Message) -> int:
        return LAMPORTS_PER_SIGNATURE * message.header.num_required_signatures + priority_fee_of(message)

    def status(self, sig: str) -> dict | None:
        """The transaction record of a landed signature, from the ledger."""
        return self.ledger.record(sig)

    def loaded_addresses(self, message: Message | MessageV0) -> tuple[list[Pubkey], list[Pubkey]]:
        """(writable, readonly) addresses a v0 message loads through its address lookup tables."""
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lookup in getattr(message, "address_table_lookups", None) or []:
            table = self.svm.get_account(lookup.account_key)
            data = bytes(table.data) if table is not None else b""
            addrs = [Pubkey.from_bytes(data[i:i + 32]) for i in range(LOOKUP_TABLE_META_SIZE, len(data) - 31, 32)]
            writable += [addrs[i] for i in lookup.writable_indexes if i < len(addrs)]
            readonly += [addrs[i] for i in lookup.readonly_indexes if i < len(addrs)]
        return writable, readonly

    # ---- writes -------------------------------------------------------------------------------------
    def _persist(self, keys_: list[Pubkey], signature: str | None = None, record: dict | None = None,
                 written: set[Pubkey] | None = None) -> None:
        """Commit the accounts' states (and the transaction record), then tell listeners about the accounts
        the transaction could write (`written`; all when None): read-only ones are not stored, as on a
        validator, so their subscribers hear nothing."""
        states = []
        for key in dict.fromkeys(keys_):
            acc = self.svm.get_account(key)
            if acc is not None and acc.owner in _NOT_PERSISTED_OWNERS:
                continue
            states.append((key, acc if acc is not None and (acc.lamports > 0 or acc.executable) else None))
            if acc is not None:
                self.owners.setdefault(acc.owner, set()).add(key)
        self.ledger.commit(states, self.slot, signature, record, addresses=list(keys_))
        for key, acc in states:
            if written is not None and key not in written:
                continue
            for listener in self.listeners:
                listener("account", (key, acc))

    def _charge_priority_fee(self, message: Message | MessageV0) -> None:
        """LiteSVM charges only the signature fee; a validator also takes the priority fee from the payer."""
        fee = priority_fee_of(message)
        payer = self.svm.get_account(message.account_keys[0]) if fee else None
        if payer is not None:
            self.svm.set_account(message.account_keys[0], Account(max(0, payer.lamports - fee), payer.data,
                                                                    payer.owner, payer.executable, payer.rent_epoch))

    def _purge_zero_lamport(self, keys_: list[Pubkey]) -> None:
        """A validator deletes an account that ends a transaction with 0 lamports: its data and owner go,
        so the address can be created afresh (LiteSVM alone would keep them)."""
        for key in keys_:
            acc = self.svm.get_account(key)
            if acc is not None and acc.lamports == 0 and not acc.executable and acc != _GONE:
                self.owners.get(acc.owner, set()).discard(key)
                self.svm.set_account(key, _GONE)

    def _check_tx(self, tx: VersionedTransaction) -> None:
        sig = str(tx.signatures[0])
        if self.ledger.has_signature(sig):
            raise RpcError(-32002, "Transaction simulation failed: This transaction has already been processed",
                           {"err": "AlreadyProcessed", "logs": [], "accounts": None, "unitsConsumed": 0,
                            "returnData": None, "innerInstructions": None, "replacementBlockhash": None})
        if not self.is_blockhash_valid(str(tx.message.recent_blockhash)) and not self._uses_durable_nonce(tx):
            raise RpcError(-32002, "Transaction simulation failed: Blockhash not found",
                           {"err": "BlockhashNotFound", "logs": [], "accounts": None, "unitsConsumed": 0,
                            "returnData": None, "innerInstructions": None, "replacementBlockhash": None})

    def _uses_durable_nonce(self, tx: VersionedTransaction) -> bool:
        """A durable-nonce transaction: its first instruction advances a nonce account (System instruction 4)
        whose stored nonce is the transaction's blockhash. Validators accept it at any age."""
        msg = tx.message
        if not msg.instructions:
            return False
        ix, keys = msg.instructions[0], list(msg.account_keys)
        if keys[ix.program_id_index] != Pubkey.default() or bytes(ix.data)[:4] != b"\x04\0\0\0" or not ix.accounts:
            return False
        nonce = self.svm.get_account(keys[ix.accounts[0]]) if ix.accounts[0] < len(keys) else None
        data = bytes(nonce.data) if nonce is not None and nonce.owner == Pubkey.default() else b""
        return len(data) >= 72 and data[4:8] == b"\x01\0\0\0" and data[40:72] == bytes(msg.recent_blockhash)

    def simulate(self, tx: VersionedTransaction, replace_blockhash: bool = False,
                 accounts: list[Pubkey] | None = None, sig_verify: bool = False) -> dict:
        """Run without committing; `accounts` asks for their post-simulation states (None if absent).
        Signatures are checked only when asked (sendTransaction's preflight does), as on a validator, so
        unsigned transactions can be simulated to estimate compute units."""
        if not replace_blockhash and not self.is_blockhash_valid(str(tx.message.recent_blockhash)) \
                and not self._uses_durable_nonce(tx):
            return {"err": "BlockhashNotFound", "logs": [], "accounts": None, "unitsConsumed": 0,
                    "returnData": None, "innerInstructions": None, "replacementBlockhash": None}
        if loader.needs_emulation(self.svm, tx):  # what LiteSVM 0.26 gets wrong: see localnet/loader
            res = loader.execute(self.svm, tx, self.slot, commit=False, sig_verify=sig_verify)
        else:
            self.svm.with_sigverify(sig_verify)
            try:
                res = self.svm.simulate_transaction(tx)
            finally:
                self.svm.with_sigverify(True)
        failed = loader.failed(res)
        out = simulation_json(res.meta(), res.err() if failed else None)
        if accounts is not None:
            post = {} if failed else dict(res.post_accounts())
            out["accounts"] = [post.get(k, self.get_account(k)) for k in accounts]
        return out

    def send(self, tx: VersionedTransaction, skip_preflight: bool = False) -> str:
        """Execute, persist, then record the status: only then is the signature reported confirmed. If the
        ledger cannot be written, every account the transaction loaded is put back as it was."""
        self._check_tx(tx)
        if not skip_preflight:
            sim = self.simulate(tx, sig_verify=True)
            if sim["err"] is not None:
                raise RpcError(-32002, f"Transaction simulation failed: {sim['err']}", sim)
        loaded_w, loaded_r = self.loaded_addresses(tx.message)
        account_keys = list(tx.message.account_keys) + loaded_w + loaded_r
        before = {k: self.svm.get_account(k) for k in account_keys}
        pre = [self.svm.get_balance(k) or 0 for k in account_keys]
        pre_tokens = token_balances(account_keys, [before[k] for k in account_keys], self.svm.get_account)
        res = loader.execute(self.svm, tx, self.slot, commit=True) if loader.needs_emulation(self.svm, tx) \
            else self.svm.send_transaction(tx)
        failed = loader.failed(res)
        meta = res.meta() if failed else res
        err = error_json(res.err()) if failed else None
        if failed and not (isinstance(err, dict) and "InstructionError" in err):
            raise RpcError(-32002, f"Transaction failed before execution: {err}", simulation_json(meta, res.err()))
        self._charge_priority_fee(tx.message)
        self._purge_zero_lamport(account_keys)
        sig = str(tx.signatures[0])
        post_accounts = [self.svm.get_account(k) for k in account_keys]
        record = {
            "slot": self.slot, "blockTime": int(time.time()), "err": err, "memo": memo_of(tx.message),
            "unitPrice": unit_price_of(tx.message),
            "transaction": [base64.b64encode(bytes(tx)).decode(), "base64"],
            "version": "legacy" if isinstance(tx.message, Message) else 0,
            "meta": {"err": err, "status": {"Err": err} if failed else {"Ok": None}, "fee": self.fee_for(tx.message),
                     "preBalances": pre, "postBalances": [a.lamports if a else 0 for a in post_accounts],
                     "innerInstructions": inner_instructions_json(meta), "logMessages": list(meta.logs()),
                     "preTokenBalances": pre_tokens,
                     "postTokenBalances": token_balances(account_keys, post_accounts, self.svm.get_account),
                     "rewards": [],
                     "loadedAddresses": {"writable": [str(k) for k in loaded_w],
                                         "readonly": [str(k) for k in loaded_r]},
                     "computeUnitsConsumed": meta.compute_units_consumed()},
        }
        written = {k for i, k in enumerate(tx.message.account_keys) if is_writable_static(tx.message, i)}
        try:
            self._persist(account_keys, sig, record, written=written | set(loaded_w))
        except LedgerWriteError as e:
            for key, acc in before.items():
                self.svm.set_account(key, acc if acc is not None else _GONE)
            raise RpcError(-32603, f"{e}: the transaction was not applied (nothing changed); free space and "
                                   "resend it") from None
        for listener in self.listeners:
            listener("signature", (sig, err))
            listener("logs", (sig, err, record["meta"]["logMessages"], account_keys))
        return sig

    def airdrop(self, key: Pubkey, lamports: int) -> str:
        h = Hash.from_string(self.latest_blockhash()[0])
        tx = Transaction.new_signed_with_payer(
            [transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=key, lamports=lamports))],
            self.faucet.pubkey(), [self.faucet], h)
        return self.send(VersionedTransaction.from_legacy(tx))

    def close(self) -> None:
        self.ledger.close()
