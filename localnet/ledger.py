"""On-disk ledger of the localnet: every account a landed transaction touched, every transaction record
(looked up here, never all held in memory), the blocks (one per slot produced) and the slot.

SQLite in WAL mode, one commit per transaction, written *before* the transaction is reported confirmed,
so a `kill -9` never loses a confirmed transaction (the OS holds the written pages even when the process
dies). A failed commit raises LedgerWriteError and leaves the database as it was, so the caller can undo
the transaction in memory too."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from solders.account import Account
from solders.pubkey import Pubkey

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (pubkey BLOB PRIMARY KEY, lamports INTEGER, data BLOB, owner BLOB,
                                     executable INTEGER, rent_epoch TEXT);
CREATE TABLE IF NOT EXISTS signatures (sig TEXT PRIMARY KEY, slot INTEGER, record TEXT);
CREATE INDEX IF NOT EXISTS signatures_by_slot ON signatures (slot);
CREATE TABLE IF NOT EXISTS address_signatures (pubkey BLOB, seq INTEGER, PRIMARY KEY (pubkey, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (slot INTEGER PRIMARY KEY, blockhash TEXT, parent INTEGER, time INTEGER);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class LedgerError(Exception):
    """The ledger cannot be opened or read; the message names the file and what is wrong."""


class LedgerWriteError(Exception):
    """A commit failed (disk full, I/O error): nothing of it reached the ledger."""


class Ledger:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "ledger.sqlite"
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise LedgerError(f"{self.path}: not a usable localnet ledger ({e}); move it away or use --reset") from None

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._atomic(lambda cur: cur.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value)))

    def accounts(self) -> list[tuple[Pubkey, Account]]:
        try:
            rows = self.db.execute("SELECT pubkey, lamports, data, owner, executable, rent_epoch FROM accounts")
            return [(Pubkey.from_bytes(pk), Account(lam, data, Pubkey.from_bytes(owner), bool(ex), int(rent)))
                    for pk, lam, data, owner, ex, rent in rows]
        except (sqlite3.Error, ValueError, TypeError) as e:
            raise LedgerError(f"{self.path}: corrupt account table ({e}); move it away or use --reset") from None

    # ---- transactions and blocks --------------------------------------------------------------------
    def record(self, sig: str) -> dict | None:
        row = self.db.execute("SELECT record FROM signatures WHERE sig = ?", (sig,)).fetchone()
        return json.loads(row[0]) if row else None

    def has_signature(self, sig: str) -> bool:
        return self.db.execute("SELECT 1 FROM signatures WHERE sig = ?", (sig,)).fetchone() is not None

    def signatures_for(self, key: Pubkey, before_seq: int | None, until_seq: int | None,
                       limit: int) -> list[tuple[str, int, dict]]:
        """Newest first: (signature, slot, record) of transactions that listed `key`."""
        rows = self.db.execute(
            "SELECT s.sig, s.slot, s.record FROM address_signatures a JOIN signatures s ON s.rowid = a.seq "
            "WHERE a.pubkey = ? AND a.seq < ? AND a.seq > ? ORDER BY a.seq DESC LIMIT ?",
            (bytes(key), before_seq if before_seq is not None else 2**62, until_seq or 0, limit))
        return [(sig, slot, json.loads(rec)) for sig, slot, rec in rows]

    def seq_of(self, sig: str) -> int | None:
        row = self.db.execute("SELECT rowid FROM signatures WHERE sig = ?", (sig,)).fetchone()
        return row[0] if row else None

    def block(self, slot: int) -> tuple[str, int, int] | None:
        """(blockhash, parent slot, unix time) of a produced slot."""
        return self.db.execute("SELECT blockhash, parent, time FROM blocks WHERE slot = ?", (slot,)).fetchone()

    def block_transactions(self, slot: int) -> list[tuple[str, dict]]:
        rows = self.db.execute("SELECT sig, record FROM signatures WHERE slot = ? ORDER BY rowid", (slot,))
        return [(sig, json.loads(rec)) for sig, rec in rows]

    def block_slots(self, start: int, end: int, limit: int) -> list[int]:
        rows = self.db.execute("SELECT slot FROM blocks WHERE slot >= ? AND slot <= ? ORDER BY slot LIMIT ?",
                               (start, end, limit))
        return [r[0] for r in rows]

    def block_times(self, first: int) -> list[tuple[int, int]]:
        """(slot, unix time) of every block from `first` on."""
        return self.db.execute("SELECT slot, time FROM blocks WHERE slot >= ? ORDER BY slot", (first,)).fetchall()

    def first_block(self) -> int:
        row = self.db.execute("SELECT MIN(slot) FROM blocks").fetchone()
        return row[0] if row and row[0] is not None else 0

    def recent_blocks(self, n: int) -> list[tuple[int, str]]:
        """(slot, blockhash) of the last n blocks, oldest first."""
        rows = self.db.execute("SELECT slot, blockhash FROM blocks ORDER BY slot DESC LIMIT ?", (n,)).fetchall()
        return rows[::-1]

    def block_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0]

    def transaction_count(self) -> int:
        row = self.db.execute("SELECT MAX(rowid) FROM signatures").fetchone()
        return row[0] or 0

    def recent_slot_counts(self, since_slot: int) -> dict[int, int]:
        rows = self.db.execute("SELECT slot, COUNT(*) FROM signatures WHERE slot >= ? GROUP BY slot", (since_slot,))
        return dict(rows.fetchall())

    # ---- writes -------------------------------------------------------------------------------------
    def _atomic(self, work) -> None:
        cur = self.db.cursor()
        try:
            cur.execute("BEGIN")
            work(cur)
            cur.execute("COMMIT")
        except sqlite3.Error as e:
            if self.db.in_transaction:  # SQLite may already have rolled back (e.g. SQLITE_FULL)
                try:
                    cur.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise LedgerWriteError(f"cannot write the ledger {self.path}: {e}") from None

    def add_block(self, slot: int, blockhash: str, parent: int, unix_time: int) -> None:
        """A produced slot: its block row and the persisted slot, so the slot never goes back on restart."""
        def work(cur: sqlite3.Cursor) -> None:
            cur.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)", (slot, blockhash, parent, unix_time))
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('slot', ?)", (str(slot),))
        self._atomic(work)

    def commit(self, accounts: list[tuple[Pubkey, Account | None]], slot: int,
               signature: str | None = None, record: dict | None = None,
               addresses: list[Pubkey] | None = None) -> None:
        """Persist account states (None = the account is gone) and a transaction record atomically."""
        def work(cur: sqlite3.Cursor) -> None:
            for key, acc in accounts:
                if acc is None:
                    cur.execute("DELETE FROM accounts WHERE pubkey = ?", (bytes(key),))
                else:
                    cur.execute("INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                                (bytes(key), acc.lamports, bytes(acc.data), bytes(acc.owner), int(acc.executable),
                                 str(acc.rent_epoch)))  # may be u64::MAX: beyond SQLite's INTEGER
            if signature is not None:
                cur.execute("INSERT INTO signatures VALUES (?, ?, ?)", (signature, slot, json.dumps(record)))
                seq = cur.lastrowid
                cur.executemany("INSERT OR IGNORE INTO address_signatures VALUES (?, ?)",
                                [(bytes(k), seq) for k in dict.fromkeys(addresses or [])])
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('slot', ?)", (str(slot),))
        self._atomic(work)
