"""The on-chain canonical-bump search (sol_find_pda in programs/include/sol_sdk.h: sol_sha256 + the
edwards25519 sol_curve_validate_point syscall, instead of sol_try_find_program_address's 1,500 CU per bump)
must pick exactly the bump solders' Pubkey.find_program_address picks, or SDK lookups would stop finding the
accounts the programs create. Driven through the hello program's create_pda (PDA ["hello", payer]), which
returns the bump it chose as return data."""
from __future__ import annotations

import hashlib
import random
import struct

import pytest
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from test_hello_program import ERR, Hello
from treasurer_helpers import fails_with

from coordinator_sdk.points import evictee
from devtools.treasurer_svm import EPOCH_CONFIG, TreasurerSvm

MARKER = b"ProgramDerivedAddress"


@pytest.fixture
def hello() -> Hello:
    return Hello()


def _bump(pid: Pubkey, user: Keypair) -> int:
    return Pubkey.find_program_address([b"hello", bytes(user.pubkey())], pid)[1]


def _users(pid: Pubkey, seed: int) -> list[Keypair]:
    """40 random payers plus payers whose canonical bump is below 255, below 251 and below 246 (found by
    search: about 1 key in 2, 32 and 1,024), so the search has to walk past on-curve hashes."""
    rng = random.Random(seed)
    users = [Keypair.from_seed(rng.randbytes(32)) for _ in range(40)]
    wanted = {254: 6, 250: 4, 245: 2}
    for _ in range(20_000):
        if not any(wanted.values()):
            break
        kp = Keypair.from_seed(rng.randbytes(32))
        b = _bump(pid, kp)
        for limit in sorted(wanted):
            if b <= limit and wanted[limit]:
                wanted[limit] -= 1
                users.append(kp)
                break
    assert not any(wanted.values()), wanted
    return users


def _create(hello: Hello, user: Keypair, pda: Pubkey):
    return hello.send(b"\x03" + struct.pack("<QQ", 10**7, 8), [
        AccountMeta(user.pubkey(), True, True), AccountMeta(pda, False, True),
        AccountMeta(SYSTEM_PROGRAM, False, False)], [user])


@pytest.mark.parametrize("seed", [1, 2])
def test_on_chain_bump_is_solders_canonical_bump(hello: Hello, seed: int) -> None:
    cu: dict[int, int] = {}
    users = _users(hello.pid, seed)
    assert min(_bump(hello.pid, u) for u in users) <= 245
    for user in users:
        hello.svm.airdrop(user.pubkey(), 10**9)
        pda, bump = Pubkey.find_program_address([b"hello", bytes(user.pubkey())], hello.pid)
        res = _create(hello, user, pda)
        assert type(res).__name__ == "TransactionMetadata", res
        assert bytes(res.return_data().data) == bytes([bump])
        assert hello.svm.get_account(pda).owner == hello.pid
        cu.setdefault(bump, res.compute_units_consumed())
    # each bump tried costs a sha256 and a curve check (~350 CU), not create_program_address's 1,500
    low = min(cu)
    assert 0 < cu[low] - cu[255] <= 450 * (255 - low), cu


def _lower_off_curve_bump(pid: Pubkey, seeds: list[bytes], below: int) -> Pubkey:
    """A valid program address of `seeds` at a bump lower than the canonical `below`."""
    for b in range(below - 1, 0, -1):
        try:
            return Pubkey.create_program_address([*seeds, bytes([b])], pid)
        except Exception:  # on the curve: not a program address, try the next bump
            continue
    raise AssertionError("no lower bump")


def test_non_canonical_bumps_are_refused(hello: Hello) -> None:
    """Both ways the rule can be bent: a valid program address at a lower bump than the canonical one, and
    the raw hash at a bump above it (an ed25519 point, which sol_find_pda must skip). Nothing changes."""
    rng = random.Random(7)
    user = next(kp for kp in (Keypair.from_seed(rng.randbytes(32)) for _ in range(5_000))
                if _bump(hello.pid, kp) <= 252)
    hello.svm.airdrop(user.pubkey(), 10**9)
    canonical = _bump(hello.pid, user)
    lower = _lower_off_curve_bump(hello.pid, [b"hello", bytes(user.pubkey())], canonical)
    on_curve = Pubkey(hashlib.sha256(b"hello" + bytes(user.pubkey()) + bytes([255]) + bytes(hello.pid)
                                     + MARKER).digest())
    assert on_curve.is_on_curve()  # the 255 hash is a curve point: that is why the bump is lower
    for pda in (lower, on_curve):
        res = _create(hello, user, pda)
        assert hello.custom_error(res) == ERR["wrong_pda"]
        assert hello.svm.get_account(pda) is None
        assert hello.svm.get_balance(user.pubkey()) == 10**9


def test_banking_creates_the_points_pda_only_at_its_canonical_bump() -> None:
    """join_run's bank_points (programs/coordinator/points.c): every wallet's points PDA has a bump below 255,
    so the search walks past an on-curve hash; the address at a lower valid bump is WrongPointsAccount
    (a second record would split the wallet's points), the canonical one is created with solders' bump."""
    h = TreasurerSvm()
    cfg = {**EPOCH_CONFIG, "global_batch_size_start": 4, "global_batch_size_end": 4, "witness_nodes": 1,
           "min_clients": 1}
    tr = h.treasury_run("pda-bank", config=cfg, rates=(3_600, 0))
    pid = h.codec.program_id

    def bump(kp: Keypair) -> int:
        return Pubkey.find_program_address([b"points", bytes(tr.account), bytes(kp.pubkey())], pid)[1]

    users = []
    while len(users) < 4:
        kp = Keypair()
        if bump(kp) < 255:
            users.append(h.fund(kp, 10**9))
    h.play_epoch(tr, users)
    newcomer = h.fund(Keypair(), 10**9)
    out = evictee(h.state(tr), newcomer.pubkey())
    victim = next(u for u in users if u.pubkey() == out)
    canonical = bump(victim)
    ix = h.codec.join_run(newcomer.pubkey(), tr.instance, tr.account, newcomer.pubkey(), "127.0.0.1:4000",
                          evictee=out)
    metas = list(ix.accounts)
    lower = _lower_off_curve_bump(pid, [b"points", bytes(tr.account), bytes(out)], canonical)
    metas[6] = AccountMeta(lower, False, True)
    fails_with(h, Instruction(ix.program_id, ix.data, metas), [newcomer], "WrongPointsAccount")
    assert h.send(ix, [newcomer]).ok
    raw = bytes(h.svm.get_account(h.codec.points_pda(tr.account, out)).data)
    assert raw[88] == canonical and h.banked(tr, out)[0] > 0


def test_participant_pda_only_at_its_canonical_bump() -> None:
    """participant_create (programs/treasurer/participant_ix.c): a Participant address at a lower valid bump
    than the canonical one is InvalidPda, accounts unchanged; the canonical one is created."""
    h = TreasurerSvm()
    tr = h.treasury_run("pda-participant")
    pid = h.tcodec.program_id
    while True:
        user = Keypair()
        pda, canonical = Pubkey.find_program_address([b"Participant", bytes(tr.run), bytes(user.pubkey())], pid)
        if canonical < 255:
            break
    h.fund(user, 10**9)
    ix = h.tcodec.participant_create(user.pubkey(), tr.run)
    metas = list(ix.accounts)
    metas[2] = AccountMeta(_lower_off_curve_bump(pid, [b"Participant", bytes(tr.run), bytes(user.pubkey())],
                                                 canonical), False, True)
    fails_with(h, Instruction(ix.program_id, ix.data, metas), [user], "InvalidPda")
    assert h.participant(tr, user).ok and h.svm.get_account(pda).owner == pid
