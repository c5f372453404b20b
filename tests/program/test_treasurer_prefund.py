"""Anyone can send lamports to any address, and System CreateAccount refuses an address that holds some:
pre-funding a user's Participant PDA (or a run id's Run PDA) must not block participant_create (so the
user could never claim) or run_create. The treasurer takes such an address over as the System program
allows (transfer the shortfall, allocate, assign); an address that already has data or another owner is
still refused with AlreadyInitialized, accounts unchanged."""
from __future__ import annotations

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import TransferParams, transfer
from treasurer_helpers import POINTS, fails_with, world

from devtools.treasurer_svm import TreasurerSvm, TreasuryRun

PARTICIPANT_SIZE, RUN_SIZE = 128, 336
DUST = 890_880  # ~0.00089 SOL: the rent-exempt minimum of an empty account, all a squatter has to pay


def prefund(h: TreasurerSvm, target: Pubkey, lamports: int = DUST) -> None:
    """A plain System transfer from a stranger's wallet: the whole attack."""
    attacker = h.fund(Keypair())
    res = h.send(transfer(TransferParams(from_pubkey=attacker.pubkey(), to_pubkey=target, lamports=lamports)),
                 [attacker])
    assert res.ok, res.error
    acc = h.svm.get_account(target)
    assert acc.owner == SYSTEM_PROGRAM and len(acc.data) == 0 and acc.lamports == lamports


def rent(h: TreasurerSvm, size: int) -> int:
    return h.svm.minimum_balance_for_rent_exemption(size)


def played() -> tuple[TreasurerSvm, TreasuryRun, list[Keypair]]:
    """A treasurer run whose three clients each earned POINTS, the vault funded; no participant records."""
    h = TreasurerSvm()
    tr = h.treasury_run()
    users = [h.fund(Keypair()) for _ in range(3)]
    h.play_epoch(tr, users)
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**6)
    return h, tr, users


def test_prefunded_participant_is_created_and_its_user_claims() -> None:
    h, tr, users = played()
    user = users[0]
    part = h.tcodec.participant_pda(tr.run, user.pubkey())
    prefund(h, part)
    res = h.participant(tr, user)
    assert res.ok, res.error
    acc = h.svm.get_account(part)
    assert acc.owner == h.tcodec.program_id and acc.lamports == rent(h, PARTICIPANT_SIZE)  # topped up exactly
    record = h.tcodec.decode_participant(bytes(acc.data))
    assert record.run == tr.run and record.user == user.pubkey() and record.claimed_earned_points == 0
    ata = h.token_account(user.pubkey(), tr.mint)
    res = h.claim(tr, user, POINTS)
    assert res.ok, res.error
    assert h.token(ata).amount == POINTS


def test_participant_prefunded_beyond_rent_keeps_its_lamports() -> None:
    """More than the rent-exempt minimum already there: no transfer, the payer pays nothing."""
    w = world()
    h, tr = w.h, w.tr
    user = h.fund(Keypair())
    part = h.tcodec.participant_pda(tr.run, user.pubkey())
    prefund(h, part, 10**9)
    before = h.svm.get_account(user.pubkey()).lamports
    assert h.participant(tr, user).ok
    acc = h.svm.get_account(part)
    assert acc.owner == h.tcodec.program_id and len(acc.data) == PARTICIPANT_SIZE and acc.lamports == 10**9
    assert h.svm.get_account(user.pubkey()).lamports == before


def test_prefunded_run_pda_does_not_block_run_create() -> None:
    h = TreasurerSvm()
    run = h.tcodec.run_for("squatted")
    prefund(h, run)
    prefund(h, h.codec.instance_pda("squatted"))  # the coordinator's own PDA of the run too (its create_pda)
    tr = h.treasury_run("squatted")  # run_create, then configured through run_update
    acc = h.svm.get_account(run)
    assert tr.run == run and acc.owner == h.tcodec.program_id and acc.lamports == rent(h, RUN_SIZE)
    assert h.tcodec.decode_run(bytes(acc.data)).coordinator_account == tr.account
    users = [h.fund(Keypair()) for _ in range(3)]
    h.play_epoch(tr, users)
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**6)
    assert h.participant(tr, users[0]).ok
    ata = h.token_account(users[0].pubkey(), tr.mint)
    assert h.claim(tr, users[0], POINTS).ok and h.token(ata).amount == POINTS


def test_initialized_participant_is_still_refused() -> None:
    w = world()
    u = w.users[0]
    fails_with(w.h, w.h.tcodec.participant_create(u.pubkey(), w.tr.run), [u], "AlreadyInitialized")


def test_address_owned_by_another_program_or_holding_data_is_refused() -> None:
    """Only an empty System account is taken over: lamports at the address under another owner (here the
    treasurer itself, with no data), or data under the System program, are AlreadyInitialized."""
    w = world()
    h, tr = w.h, w.tr
    for owner, data in ((h.tcodec.program_id, b""), (SYSTEM_PROGRAM, bytes(PARTICIPANT_SIZE))):
        user = h.fund(Keypair())
        part = h.tcodec.participant_pda(tr.run, user.pubkey())
        h.svm.set_account(part, Account(rent(h, len(data)), data, owner, False, 0))
        fails_with(h, h.tcodec.participant_create(user.pubkey(), tr.run), [user], "AlreadyInitialized")


def test_initialized_run_is_still_refused() -> None:
    h = TreasurerSvm()
    tr = h.treasury_run("twice")
    authority, account = h.fund(Keypair()), Keypair()
    ix = h.tcodec.run_create(authority.pubkey(), "twice", account.pubkey(), tr.mint, authority.pubkey(),
                             authority.pubkey())
    fails_with(h, [h.create_account_ix(authority, account), ix], [authority, account], "AlreadyInitialized")
