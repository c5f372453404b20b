"""On-disk ledger of the localnet: every account a landed transaction touched, every signature status,
and the slot. SQLite in WAL mode, one commit per transaction, written *before* the transaction is
reported confirmed, so a `kill -9` never loses a confirmed transaction (the OS holds the written pages
even when the process dies)."""
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class Ledger:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "ledger.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def accounts(self) -> list[tuple[Pubkey, Account]]:
        rows = self.db.execute("SELECT pubkey, lamports, data, owner, executable, rent_epoch FROM accounts")
        return [(Pubkey.from_bytes(pk), Account(lam, data, Pubkey.from_bytes(owner), bool(ex), int(rent)))
                for pk, lam, data, owner, ex, rent in rows]

    def signatures(self) -> dict[str, dict]:
        return {sig: json.loads(rec) for sig, rec in self.db.execute("SELECT sig, record FROM signatures")}

    def commit(self, accounts: list[tuple[Pubkey, Account | None]], slot: int,
               signature: str | None = None, record: dict | None = None) -> None:
        """Persist account states (None = the account is gone) and a signature record atomically."""
        cur = self.db.cursor()
        cur.execute("BEGIN")
        try:
            for key, acc in accounts:
                if acc is None:
                    cur.execute("DELETE FROM accounts WHERE pubkey = ?", (bytes(key),))
                else:
                    cur.execute("INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                                (bytes(key), acc.lamports, bytes(acc.data), bytes(acc.owner), int(acc.executable),
                                 str(acc.rent_epoch)))  # may be u64::MAX: beyond SQLite's INTEGER
            if signature is not None:
                cur.execute("INSERT OR REPLACE INTO signatures VALUES (?, ?, ?)",
                            (signature, slot, json.dumps(record)))
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('slot', ?)", (str(slot),))
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
