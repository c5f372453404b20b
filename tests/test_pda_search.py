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
from solders.instruction import AccountMeta
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM

from tests.test_hello_program import ERR, Hello

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


def _lower_off_curve_bump(pid: Pubkey, user: Keypair, below: int) -> tuple[Pubkey, int]:
    for b in range(below - 1, 0, -1):
        try:
            return Pubkey.create_program_address([b"hello", bytes(user.pubkey()), bytes([b])], pid), b
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
    lower, _ = _lower_off_curve_bump(hello.pid, user, canonical)
    on_curve = Pubkey(hashlib.sha256(b"hello" + bytes(user.pubkey()) + bytes([255]) + bytes(hello.pid)
                                     + MARKER).digest())
    assert on_curve.is_on_curve()  # the 255 hash is a curve point: that is why the bump is lower
    for pda in (lower, on_curve):
        res = _create(hello, user, pda)
        assert hello.custom_error(res) == ERR["wrong_pda"]
        assert hello.svm.get_account(pda) is None
        assert hello.svm.get_balance(user.pubkey()) == 10**9
