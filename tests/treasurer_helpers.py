"""Shared pieces of the treasurer program tests: a world with a played epoch, instruction surgery, and the
"a failed transaction changes no account" check."""
from __future__ import annotations

from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from devtools.litesvm_harness import TxResult
from devtools.treasurer_svm import TreasurerSvm, TreasuryRun

POINTS = 300  # each of the three clients earns 900 / 3 in the played epoch


@dataclass
class World:
    h: TreasurerSvm
    tr: TreasuryRun
    users: list[Keypair]
    atas: list[Pubkey]


def world(rate: int = 1, funded: int = 10**6, decimals: int = 6) -> World:
    """A treasurer run whose three clients each earned POINTS, a vault holding `funded`, and each user's
    participant record and associated token account created."""
    h = TreasurerSvm()
    tr = h.treasury_run(rate=rate, decimals=decimals)
    users = [h.fund(Keypair()) for _ in range(3)]
    h.play_epoch(tr, users)
    if funded:
        h.mint_to(tr.mint, tr.mint_authority, tr.vault, funded, decimals)
    atas = []
    for u in users:
        assert h.participant(tr, u).ok
        atas.append(h.token_account(u.pubkey(), tr.mint))
    return World(h, tr, users, atas)


def replace_account(ix: Instruction, index: int, key: Pubkey | None = None, signer: bool | None = None,
                    writable: bool | None = None) -> Instruction:
    metas = list(ix.accounts)
    m = metas[index]
    metas[index] = AccountMeta(key or m.pubkey, m.is_signer if signer is None else signer,
                               m.is_writable if writable is None else writable)
    return Instruction(ix.program_id, ix.data, metas)


def snapshot(h: TreasurerSvm, keys: list[Pubkey]) -> dict[Pubkey, tuple]:
    out = {}
    for k in keys:
        a = h.svm.get_account(k)
        out[k] = None if a is None else (a.lamports, bytes(a.data), a.owner)
    return out


def fails_with(h: TreasurerSvm, ixs: Instruction | list[Instruction], signers: list[Keypair], name: str) -> TxResult:
    """Send; assert it fails with the named program error and leaves every account it named untouched
    (the fee payer, the harness's own key, pays the fee and is not compared)."""
    ixs = [ixs] if isinstance(ixs, Instruction) else ixs
    keys = list(dict.fromkeys(m.pubkey for ix in ixs for m in ix.accounts if m.pubkey != h.payer.pubkey()))
    before = snapshot(h, keys)
    res = h.send(ixs, signers)
    assert not res.ok, f"expected {name}, the transaction succeeded"
    assert h.error_name(res) == name, f"expected {name}, got {h.error_name(res)} ({res.error})\n" + "\n".join(res.logs)
    after = snapshot(h, keys)
    assert after == before, f"accounts changed by a failed transaction: {[k for k in keys if before[k] != after[k]]}"
    return res
