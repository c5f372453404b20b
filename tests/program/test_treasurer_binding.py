"""The treasurer administers whichever coordinator its Run was created with (Run.coordinator_program, bound
at run_create) and refuses every other one: both programs deployed at fresh ids run a whole epoch and pay a
claim; a second copy of the coordinator at another id (a "fake coordinator": same code, another owner of
accounts, so it can mint any points it likes) is refused by run_update and participant_claim with named errors,
every account unchanged. LiteSVM, both programs through the upgradeable loader."""
from __future__ import annotations

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from treasurer_helpers import POINTS, fails_with, replace_account, world

from devtools.treasurer_svm import TreasurerSvm
from programs.deploy import deploy_via_loader, program_id_for, so_path


def test_programs_at_fresh_ids_play_an_epoch_and_pay() -> None:
    cid, tid = Keypair().pubkey(), Keypair().pubkey()
    assert cid != program_id_for("coordinator") and tid != program_id_for("treasurer")
    h = TreasurerSvm(coordinator_id=cid, treasurer_id=tid)
    tr = h.treasury_run()
    run = h.tcodec.decode_run(bytes(h.svm.get_account(tr.run).data))
    assert run.coordinator_program == cid
    assert h.svm.get_account(tr.account).owner == cid and h.svm.get_account(tr.run).owner == tid
    users = [h.fund(Keypair()) for _ in range(3)]
    h.play_epoch(tr, users)
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**6)
    ata = h.token_account(users[0].pubkey(), tr.mint)
    assert h.participant(tr, users[0]).ok
    res = h.claim(tr, users[0], POINTS)
    assert res.ok, res.error + "\n".join(res.logs)
    assert h.token(ata).amount == POINTS


def _fake_coordinator(h: TreasurerSvm) -> Pubkey:
    """The coordinator's own code deployed at another id: a program an attacker controls."""
    fake = Keypair().pubkey()
    deploy_via_loader(h.svm, so_path("coordinator").read_bytes(), fake, h.payer)
    return fake


def test_run_update_refuses_another_coordinator_program() -> None:
    w = world()
    fake = _fake_coordinator(w.h)
    ix = w.h.tcodec.run_update(w.tr.authority.pubkey(), w.tr.run, w.tr.instance, w.tr.account, paused=True)
    fails_with(w.h, replace_account(ix, 4, key=fake), [w.tr.authority], "WrongCoordinatorProgram")


def _copy_owned_by(h: TreasurerSvm, key: Pubkey, owner: Pubkey) -> Pubkey:
    a = h.svm.get_account(key)
    copy = Keypair().pubkey()
    h.svm.set_account(copy, Account(a.lamports, bytes(a.data), owner, False, 0))
    return copy


def test_claim_refuses_a_coordinator_account_of_another_program() -> None:
    """The same bytes (the user's points) in an account the fake coordinator owns are not the run's points."""
    w = world()
    fake = _fake_coordinator(w.h)
    forged = _copy_owned_by(w.h, w.tr.account, fake)
    ix = w.h.tcodec.participant_claim(w.users[0].pubkey(), w.tr.run, w.tr.account, w.tr.mint, POINTS)
    fails_with(w.h, replace_account(ix, 3, key=forged), [w.users[0]], "WrongOwner")
    assert w.h.claim(w.tr, w.users[0], POINTS).ok  # the real account still pays


def test_claim_refuses_banked_points_of_another_program() -> None:
    w = world()
    fake = _fake_coordinator(w.h)
    points = Keypair().pubkey()  # whatever it holds: the owner is checked first
    w.h.svm.set_account(points, Account(10**7, bytes(120), fake, False, 0))
    ix = w.h.tcodec.participant_claim(w.users[0].pubkey(), w.tr.run, w.tr.account, w.tr.mint, POINTS,
                                      banked=points)
    fails_with(w.h, ix, [w.users[0]], "WrongOwner")


def test_run_create_refuses_a_non_executable_coordinator_or_itself() -> None:
    h = TreasurerSvm()
    authority, account = h.fund(Keypair()), Keypair()
    mint = h.create_mint()[0]
    ix = h.tcodec.run_create(authority.pubkey(), "bind-run", account.pubkey(), mint, authority.pubkey(),
                             authority.pubkey(), 1)
    create = h.create_account_ix(authority, account)
    fails_with(h, [create, replace_account(ix, 6, key=Keypair().pubkey())], [authority, account],
               "CoordinatorNotExecutable")
    fails_with(h, [create, replace_account(ix, 6, key=h.tcodec.program_id)], [authority, account],
               "WrongCoordinatorProgram")


def test_a_run_bound_to_a_fake_coordinator_only_reaches_its_own_vault() -> None:
    """Anyone may create a Run bound to a coordinator of their own (the threat-model row in the README): the
    Run records it, so every reader can see which coordinator a run trusts, and its claims drain only that
    Run's own vault, never another run's."""
    w = world()
    fake = _fake_coordinator(w.h)
    h = w.h
    authority, account = h.fund(Keypair()), Keypair()
    from coordinator_sdk.codec import CoordinatorCodec
    from coordinator_sdk.treasurer_codec import TreasurerCodec

    fake_t = TreasurerCodec(h.tcodec.program_id, coordinator=CoordinatorCodec(fake))
    from solders.system_program import CreateAccountParams, create_account

    size = h.codec.account_size
    res = h.send([create_account(CreateAccountParams(from_pubkey=authority.pubkey(), to_pubkey=account.pubkey(),
                                                     lamports=h.svm.minimum_balance_for_rent_exemption(size),
                                                     space=size, owner=fake)),
                  fake_t.run_create(authority.pubkey(), "fake-run", account.pubkey(), w.tr.mint, authority.pubkey(),
                                    authority.pubkey(), 1)], [authority, account])
    assert res.ok, res.error + "\n".join(res.logs)
    fake_run = fake_t.run_for("fake-run")
    assert h.tcodec.decode_run(bytes(h.svm.get_account(fake_run).data)).coordinator_program == fake
    # The fake run's coordinator account cannot stand in for the real run's (owner differs).
    ix = h.tcodec.participant_claim(w.users[0].pubkey(), w.tr.run, account.pubkey(), w.tr.mint, POINTS)
    fails_with(h, ix, [w.users[0]], "WrongOwner")
