"""run_create and run_update: every check named, accounts unchanged on failure; coordinator errors raised
inside the CPI keep their coordinator names (6000+) next to the treasurer's own (7000+)."""
from __future__ import annotations

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from treasurer_helpers import fails_with, replace_account

from coordinator_sdk.treasurer_codec import run_index
from devtools.treasurer_svm import EPOCH_CONFIG, TreasurerSvm

TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
# run_create accounts: payer, run, run_collateral, collateral_mint, coordinator_instance, coordinator_account,
# coordinator_program, token_program, associated_token_program, system_program


def _create(h: TreasurerSvm, run_id: str = "admin-run", rate: int = 1, mint: Pubkey | None = None, **kw):
    authority, account = h.fund(Keypair()), Keypair()
    mint = mint or h.create_mint()[0]
    ix = h.tcodec.run_create(authority.pubkey(), run_id, account.pubkey(), mint, authority.pubkey(),
                             authority.pubkey(), rate, **kw)
    return authority, account, ix


def _fails(h, authority, account, ix, name):
    return fails_with(h, [h.create_account_ix(authority, account), ix], [authority, account], name)


def test_run_create_checks() -> None:
    h = TreasurerSvm()
    a, acc, ix = _create(h)
    assert h.send(h.create_account_ix(a, acc), [a, acc]).ok  # payer unsigned: the account exists already
    fails_with(h, replace_account(ix, 0, signer=False), [], "MissingSigner")
    a, acc, ix = _create(h)
    _fails(h, *_create(h, rate=0), "InvalidRate")
    other_index_pda = h.tcodec.run_pda(run_index("admin-run") + 1)  # the Run PDA of another index
    _fails(h, a, acc, replace_account(ix, 1, key=other_index_pda), "InvalidPda")
    _fails(h, a, acc, replace_account(ix, 3, key=Keypair().pubkey()), "InvalidMint")
    _fails(h, a, acc, replace_account(ix, 7, key=TOKEN_2022), "WrongTokenProgram")
    _fails(h, a, acc, replace_account(ix, 8, key=SYSTEM_PROGRAM), "WrongAssociatedTokenProgram")
    _fails(h, a, acc, replace_account(ix, 2, key=Keypair().pubkey()), "InvalidPda")
    _fails(h, a, acc, replace_account(ix, 6, key=h.tcodec.program_id), "WrongCoordinatorProgram")
    _fails(h, a, acc, replace_account(ix, 9, key=h.codec.program_id), "NotSystemProgram")
    _fails(h, a, acc, replace_account(ix, 1, writable=False), "NotWritable")


def test_run_id_length_is_checked() -> None:
    h = TreasurerSvm()
    a, acc, ix = _create(h, run_id="x" * 32, index=1)
    data = bytes(ix.data)  # discriminator, index u64, then the string: make it 33 bytes long on the wire
    long_id = data[:16] + (33).to_bytes(4, "little") + b"x" * 33 + data[16 + 4 + 32:]
    from solders.instruction import Instruction

    _fails(h, a, acc, Instruction(ix.program_id, long_id, ix.accounts), "RunIdInvalidLength")
    empty = data[:16] + (0).to_bytes(4, "little") + data[16 + 4 + 32:]
    _fails(h, a, acc, Instruction(ix.program_id, empty, ix.accounts), "RunIdInvalidLength")


def test_run_create_binds_the_index_to_the_run_id() -> None:
    """A run whose index is not run_index(run_id) would sit at another run id's Run address, where every
    lookup by run id (the SDK's run_for, the CLI) finds it: refused, whichever address it names."""
    h = TreasurerSvm()
    victim = run_index("victim-run")
    for run_id, index in (("junk", victim), ("admin-run", run_index("admin-run") + 1), ("admin-run", 0)):
        a, acc, ix = _create(h, run_id=run_id, index=index)
        _fails(h, a, acc, ix, "RunIndexMismatch")
    assert h.svm.get_account(h.tcodec.run_pda(victim)) is None
    a, acc, ix = _create(h, run_id="victim-run")
    assert h.send([h.create_account_ix(a, acc), ix], [a, acc]).ok


def test_run_create_refuses_a_second_run_at_the_same_pda() -> None:
    h = TreasurerSvm()
    tr = h.treasury_run("twice")
    a, acc, ix = _create(h, run_id="twice", mint=tr.mint)
    _fails(h, a, acc, ix, "AlreadyInitialized")


def test_coordinator_refusal_inside_the_cpi_keeps_its_name() -> None:
    """The coordinator account created too small: init_run (inside run_create) fails with the coordinator's
    WrongAccountSize (6005), and run_create's own Run PDA and vault are rolled back."""
    from solders.system_program import CreateAccountParams, create_account

    h = TreasurerSvm()
    a, acc, ix = _create(h)
    small = create_account(CreateAccountParams(from_pubkey=a.pubkey(), to_pubkey=acc.pubkey(), lamports=10**9,
                                               space=100, owner=h.codec.program_id))
    res = fails_with(h, [small, ix], [a, acc], "WrongAccountSize")
    assert res.error_code == 6005
    assert h.svm.get_account(h.tcodec.run_for("admin-run")) is None


def test_run_update_checks() -> None:
    h = TreasurerSvm()
    tr = h.treasury_run()
    other = h.treasury_run("other-run")
    mallory = h.fund(Keypair())
    fails_with(h, h.tcodec.run_update(mallory.pubkey(), tr.run, tr.instance, tr.account, paused=False), [mallory],
               "Unauthorized")
    ix = h.tcodec.run_update(tr.authority.pubkey(), tr.run, tr.instance, tr.account, paused=False)
    fails_with(h, replace_account(ix, 0, signer=False), [], "MissingSigner")
    fails_with(h, replace_account(ix, 3, key=other.account), [tr.authority], "AccountMismatch")
    fails_with(h, replace_account(ix, 2, key=other.instance), [tr.authority], "AccountMismatch")
    fails_with(h, replace_account(ix, 4, key=h.tcodec.program_id), [tr.authority], "WrongCoordinatorProgram")
    fails_with(h, replace_account(ix, 1, key=other.run), [tr.authority], "Unauthorized")
    fails_with(h, h.tcodec.run_update(tr.authority.pubkey(), tr.run, tr.instance, tr.account), [tr.authority],
               "NothingToUpdate")
    from solders.instruction import Instruction

    bad_tag = Instruction(ix.program_id, bytes(ix.data[:8]) + b"\x02" + bytes(5), ix.accounts)
    fails_with(h, bad_tag, [tr.authority], "InvalidInstruction")


def test_run_update_coordinator_refusals_pass_through() -> None:
    h = TreasurerSvm()
    tr = h.treasury_run()
    res = fails_with(h, h.tcodec.run_update(tr.authority.pubkey(), tr.run, tr.instance, tr.account,
                                            config={**EPOCH_CONFIG, "epoch_time": 0}), [tr.authority], "InvalidConfig")
    assert res.error_code == 6014
    assert h.update(tr, paused=False).ok
    fails_with(h, h.tcodec.run_update(tr.authority.pubkey(), tr.run, tr.instance, tr.account, config=EPOCH_CONFIG),
               [tr.authority], "NotHalted")


def test_the_coordinator_account_signature_is_passed_through_to_init_run() -> None:
    """The coordinator refuses to initialise an account whose key holder did not sign; the treasurer passes
    the transaction's signature on, and without it init_run's MissingSigner (6002) comes back through."""
    h = TreasurerSvm()
    a, acc, ix = _create(h)
    assert h.send(h.create_account_ix(a, acc), [a, acc]).ok  # created earlier: the account does not sign now
    res = fails_with(h, ix, [a], "MissingSigner")
    assert res.error_code == 6002
    signed = replace_account(ix, 5, signer=True)
    assert h.send(signed, [a, acc]).ok
