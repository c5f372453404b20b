"""Every check of participant_claim / participant_create fails with its named error and leaves every
account byte-identical (the treasurer, the coordinator and SPL Token 3.5.0 on LiteSVM)."""
from __future__ import annotations

import pytest
from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from treasurer_helpers import POINTS, fails_with, replace_account, world

from coordinator_sdk import spl_token as spl

TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
# participant_claim accounts: user, run, participant, coordinator_account, run_collateral, user_collateral,
# collateral_mint, token_program


@pytest.fixture
def w():
    return world()


def claim_ix(w, user=None, points=POINTS, **kw):
    user = user or w.users[0]
    return w.h.tcodec.participant_claim(user.pubkey(), w.tr.run, w.tr.account, w.tr.mint, points, **kw)


def set_data(h, key: Pubkey, data: bytes, owner: Pubkey | None = None) -> None:
    a = h.svm.get_account(key)
    h.svm.set_account(key, Account(max(a.lamports, h.svm.minimum_balance_for_rent_exemption(len(data))), data,
                                   owner or a.owner, a.executable, a.rent_epoch))


def test_double_claim(w) -> None:
    assert w.h.claim(w.tr, w.users[0], POINTS).ok
    fails_with(w.h, claim_ix(w), [w.users[0]], "ClaimExceedsEarned")


def test_over_claim(w) -> None:
    fails_with(w.h, claim_ix(w, points=POINTS + 1), [w.users[0]], "ClaimExceedsEarned")


def test_zero_points(w) -> None:
    fails_with(w.h, claim_ix(w, points=0), [w.users[0]], "NothingToClaim")


def test_user_must_sign(w) -> None:
    ix = replace_account(claim_ix(w), 0, signer=False)
    fails_with(w.h, ix, [], "MissingSigner")


def test_claiming_with_another_users_participant_record(w) -> None:
    thief = w.users[1]
    ix = replace_account(claim_ix(w, user=thief), 2, key=w.h.tcodec.participant_pda(w.tr.run, w.users[0].pubkey()))
    fails_with(w.h, ix, [thief], "InvalidPda")


def test_someone_without_points_claims(w) -> None:
    stranger = w.h.fund(Keypair())
    assert w.h.participant(w.tr, stranger).ok
    w.h.token_account(stranger.pubkey(), w.tr.mint)
    fails_with(w.h, claim_ix(w, user=stranger, points=1), [stranger], "NotAClient")


def test_paying_into_another_users_token_account(w) -> None:
    fails_with(w.h, claim_ix(w, user_collateral=w.atas[1]), [w.users[0]], "TokenAccountWrongOwner")


def test_user_token_account_with_a_delegate(w) -> None:
    u = w.users[0]
    assert w.h.send(spl.approve_ix(w.atas[0], Keypair().pubkey(), u.pubkey(), 1), [u]).ok
    fails_with(w.h, claim_ix(w), [u], "TokenAccountDelegated")


def test_frozen_user_token_account(w) -> None:
    assert w.h.send(spl.freeze_ix(w.atas[0], w.tr.mint, w.tr.mint_authority.pubkey()), [w.tr.mint_authority]).ok
    fails_with(w.h, claim_ix(w), [w.users[0]], "TokenAccountFrozen")


def test_user_token_account_of_another_mint(w) -> None:
    other, _ = w.h.create_mint()
    ata = w.h.token_account(w.users[0].pubkey(), other)
    fails_with(w.h, claim_ix(w, user_collateral=ata), [w.users[0]], "WrongMint")


def test_wrong_mint_account(w) -> None:
    other, _ = w.h.create_mint()
    fails_with(w.h, replace_account(claim_ix(w), 6, key=other), [w.users[0]], "WrongMint")


def test_wrong_token_program(w) -> None:
    fails_with(w.h, replace_account(claim_ix(w), 7, key=TOKEN_2022), [w.users[0]], "WrongTokenProgram")


def test_user_collateral_not_a_token_account(w) -> None:
    fails_with(w.h, claim_ix(w, user_collateral=w.users[0].pubkey()), [w.users[0]], "TokenAccountInvalid")


def test_vault_swapped_for_another_token_account(w) -> None:
    fails_with(w.h, replace_account(claim_ix(w), 4, key=w.atas[1]), [w.users[0]], "AccountMismatch")


def test_underfunded_vault() -> None:
    w = world(funded=POINTS - 1)
    res = fails_with(w.h, claim_ix(w), [w.users[0]], "VaultUnderfunded")
    assert any(f"0x{POINTS - 1:x}, 0x{POINTS:x}" in line for line in res.logs)  # vault amount and claim, logged
    assert w.h.claim(w.tr, w.users[0], POINTS - 1).ok


def test_forged_coordinator_account_other_owner(w) -> None:
    """A byte-for-byte copy of the run's coordinator account with inflated points, owned by another program."""
    h = w.h
    forged = Keypair().pubkey()
    h.svm.set_account(forged, Account(10**9, bytes(h.svm.get_account(w.tr.account).data), h.tcodec.program_id,
                                      False, 0))
    fails_with(h, replace_account(claim_ix(w), 3, key=forged), [w.users[0]], "WrongOwner")


def test_foreign_coordinator_account(w) -> None:
    """A genuine coordinator account, of another run."""
    other = w.h.treasury_run("another-run")
    fails_with(w.h, replace_account(claim_ix(w), 3, key=other.account), [w.users[0]], "AccountMismatch")


def test_coordinator_account_wrong_discriminator_version_size(w) -> None:
    h = w.h
    good = bytes(h.svm.get_account(w.tr.account).data)
    set_data(h, w.tr.account, b"\x01" + good[1:])
    fails_with(h, claim_ix(w), [w.users[0]], "WrongDiscriminator")
    set_data(h, w.tr.account, good[:8] + (2).to_bytes(8, "little") + good[16:])
    fails_with(h, claim_ix(w), [w.users[0]], "CoordinatorAccountInvalid")
    set_data(h, w.tr.account, good + b"\x00")
    fails_with(h, claim_ix(w), [w.users[0]], "WrongAccountSize")


def test_run_account_checks(w) -> None:
    h = w.h
    part = h.tcodec.participant_pda(w.tr.run, w.users[0].pubkey())
    fails_with(h, replace_account(claim_ix(w), 1, key=part), [w.users[0]], "WrongAccountSize")
    copy = Keypair().pubkey()  # a copy of the Run at an address that is not its PDA
    h.svm.set_account(copy, Account(10**9, bytes(h.svm.get_account(w.tr.run).data), h.tcodec.program_id, False, 0))
    fails_with(h, replace_account(claim_ix(w), 1, key=copy), [w.users[0]], "InvalidPda")
    h.svm.set_account(copy, Account(10**9, bytes(h.svm.get_account(w.tr.run).data), Keypair().pubkey(), False, 0))
    fails_with(h, replace_account(claim_ix(w), 1, key=copy), [w.users[0]], "WrongOwner")


def test_participant_record_missing(w) -> None:
    u = w.h.fund(Keypair())
    fails_with(w.h, claim_ix(w, user=u, points=1), [u], "WrongOwner")


def test_accounts_must_be_writable(w) -> None:
    fails_with(w.h, replace_account(claim_ix(w), 5, writable=False), [w.users[0]], "NotWritable")


def test_malformed_arguments(w) -> None:
    from solders.instruction import Instruction

    ix = claim_ix(w)
    fails_with(w.h, Instruction(ix.program_id, bytes(ix.data) + b"\x00", ix.accounts), [w.users[0]],
               "InvalidInstruction")
    fails_with(w.h, Instruction(ix.program_id, b"\x00" * 16, ix.accounts), [w.users[0]], "InvalidInstruction")


def test_amount_overflows_u64() -> None:
    w = world(rate=2**63, funded=0)
    fails_with(w.h, claim_ix(w, points=2), [w.users[0]], "ArithmeticOverflow")


def test_run_totals_at_u64_limit(w) -> None:
    h = w.h
    raw = bytearray(h.svm.get_account(w.tr.run).data)
    off = 8 + 8 + 8 + 6 * 32 + 8 + 8  # Run.total_claimed_earned_points
    raw[off:off + 8] = (2**64 - 10).to_bytes(8, "little")
    set_data(h, w.tr.run, bytes(raw))
    fails_with(h, claim_ix(w, points=10), [w.users[0]], "ArithmeticOverflow")
    assert h.claim(w.tr, w.users[0], 9).ok


def test_participant_create_checks(w) -> None:
    h, u = w.h, w.users[0]
    fails_with(h, h.tcodec.participant_create(u.pubkey(), w.tr.run), [u], "AlreadyInitialized")
    v = h.fund(Keypair())
    ix = h.tcodec.participant_create(v.pubkey(), w.tr.run)
    fails_with(h, replace_account(ix, 2, key=h.tcodec.participant_pda(w.tr.run, u.pubkey())), [v], "InvalidPda")
    fails_with(h, replace_account(ix, 3, key=spl.TOKEN_PROGRAM), [v], "NotSystemProgram")
    fails_with(h, replace_account(ix, 0, signer=False), [], "MissingSigner")
    fails_with(h, replace_account(ix, 1, key=w.tr.account), [v], "WrongOwner")


def test_forged_coordinator_account_owned_by_the_coordinator(w) -> None:
    """Even a coordinator-owned copy with the same instance and inflated points is not the run's account."""
    h = w.h
    data = bytearray(h.svm.get_account(w.tr.account).data)
    data[57792 + 136:57792 + 144] = (10**9).to_bytes(8, "little")  # client 0's earned
    forged = Keypair().pubkey()
    h.svm.set_account(forged, Account(10**10, bytes(data), h.codec.program_id, False, 0))
    fails_with(h, replace_account(claim_ix(w, points=POINTS + 1), 3, key=forged), [w.users[0]], "AccountMismatch")


def test_frozen_vault(w) -> None:
    """The mint's freeze authority froze the run's vault: claims fail by name, nothing moves."""
    h = w.h
    assert h.send(spl.freeze_ix(w.tr.vault, w.tr.mint, w.tr.mint_authority.pubkey()), [w.tr.mint_authority]).ok
    fails_with(h, claim_ix(w), [w.users[0]], "TokenAccountFrozen")


def test_pda_checks_hash_the_stored_seeds(w) -> None:
    """The Run and Participant addresses are re-derived from their stored seeds (sha256, sol_pda_matches):
    a program-owned copy of a user's record at another address, or a record whose stored bump was changed,
    is not at its PDA."""
    h, u = w.h, w.users[0]
    part = h.tcodec.participant_pda(w.tr.run, u.pubkey())
    copy = Keypair().pubkey()
    h.svm.set_account(copy, Account(10**9, bytes(h.svm.get_account(part).data), h.tcodec.program_id, False, 0))
    fails_with(h, replace_account(claim_ix(w), 2, key=copy), [u], "InvalidPda")
    for key, bump_offset in ((part, 8), (w.tr.run, 8)):  # Participant.bump, Run.bump
        raw = bytearray(h.svm.get_account(key).data)
        raw[bump_offset] ^= 1
        set_data(h, key, bytes(raw))
        fails_with(h, claim_ix(w), [u], "InvalidPda")
        raw[bump_offset] ^= 1
        set_data(h, key, bytes(raw))
    assert h.claim(w.tr, u, POINTS).ok
