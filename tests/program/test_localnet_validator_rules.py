"""In-process chain behaviour a validator has and LiteSVM alone lacks: zero-lamport accounts are deleted
after each transaction (so a closed address can be created afresh), durable-nonce transactions land at
any age, and a ledger that cannot be written leaves memory as it was (refused, not half-applied)."""
from __future__ import annotations

import sqlite3

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction, VersionedTransaction
from spl.token import instructions as spl

from localnet.chain import Chain, RpcError
from localnet.ledger import LedgerWriteError
from localnet.rpc import RpcMethods

TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")


@pytest.fixture
def chain(tmp_path) -> Chain:
    c = Chain(tmp_path / "ledger", deploy_programs=False)
    yield c
    c.close()


def _send(chain: Chain, payer: Keypair, ixs, signers=()) -> str:
    chain.advance()  # a fresh blockhash: the same instruction sent twice is two transactions
    h = Hash.from_string(chain.latest_blockhash()[0])
    tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), [payer, *signers], h)
    return chain.send(VersionedTransaction.from_legacy(tx))


def _funded(chain: Chain, lamports: int = 10**9) -> Keypair:
    kp = Keypair()
    chain.airdrop(kp.pubkey(), lamports)
    return kp


def _ledger_row(chain: Chain, key: Pubkey):
    db = sqlite3.connect(chain.ledger.path)
    try:
        return db.execute("SELECT lamports FROM accounts WHERE pubkey = ?", (bytes(key),)).fetchone()
    finally:
        db.close()


def test_drained_account_reads_as_null_and_is_not_persisted(chain: Chain) -> None:
    payer, drained = _funded(chain), _funded(chain, 10_000)
    assert _ledger_row(chain, drained.pubkey()) == (10_000,)
    _send(chain, payer, [transfer(TransferParams(from_pubkey=drained.pubkey(), to_pubkey=payer.pubkey(),
                                                  lamports=10_000))], [drained])
    m = RpcMethods(chain)
    assert m.call("getAccountInfo", [str(drained.pubkey())])["value"] is None
    assert m.call("getBalance", [str(drained.pubkey())])["value"] == 0
    assert _ledger_row(chain, drained.pubkey()) is None


def test_closed_token_account_is_deleted_so_its_address_can_be_created_again(chain: Chain) -> None:
    payer, mint, acc = _funded(chain), Keypair(), Keypair()
    rent = chain.svm.minimum_balance_for_rent_exemption(165)

    def create_token_account():
        return [create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=acc.pubkey(), lamports=rent,
                                                   space=165, owner=TOKEN)),
                spl.initialize_account(spl.InitializeAccountParams(program_id=TOKEN, account=acc.pubkey(),
                                                                   mint=mint.pubkey(), owner=payer.pubkey()))]

    _send(chain, payer, [
        create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=mint.pubkey(),
                                           lamports=chain.svm.minimum_balance_for_rent_exemption(82), space=82,
                                           owner=TOKEN)),
        spl.initialize_mint(spl.InitializeMintParams(decimals=0, freeze_authority=None, mint=mint.pubkey(),
                                                     mint_authority=payer.pubkey(), program_id=TOKEN)),
        *create_token_account()], [mint, acc])
    _send(chain, payer, [spl.close_account(spl.CloseAccountParams(program_id=TOKEN, account=acc.pubkey(),
                                                                   dest=payer.pubkey(), owner=payer.pubkey()))])
    gone = chain.svm.get_account(acc.pubkey())
    assert gone is None or (gone.lamports == 0 and bytes(gone.data) == b"" and gone.owner == Pubkey.default())
    assert chain.program_accounts(TOKEN) == [(mint.pubkey(), chain.get_account(mint.pubkey()))]
    # On a cluster the address is free again: create_account must succeed (it refuses data or a foreign owner).
    _send(chain, payer, create_token_account(), [acc])
    assert chain.get_account(acc.pubkey()).owner == TOKEN


def test_failed_ledger_write_leaves_memory_unchanged(chain: Chain, monkeypatch) -> None:
    payer, to = _funded(chain), Pubkey.new_unique()
    before = chain.get_account(payer.pubkey())

    def disk_full(*args, **kwargs):
        raise LedgerWriteError("cannot write the ledger: database or disk is full")

    monkeypatch.setattr(chain.ledger, "commit", disk_full)
    h = Hash.from_string(chain.latest_blockhash()[0])
    tx = VersionedTransaction.from_legacy(Transaction.new_signed_with_payer(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=777))], payer.pubkey(), [payer], h))
    with pytest.raises(RpcError, match="disk is full: the transaction was not applied") as info:
        chain.send(tx)
    assert info.value.code == -32603
    assert chain.get_account(payer.pubkey()) == before and chain.get_account(to) is None
    assert chain.status(str(tx.signatures[0])) is None
    monkeypatch.undo()
    chain.send(tx)  # once the disk has room, the same transaction lands exactly once
    assert chain.get_account(to).lamports == 777


def test_revoke_then_reauthorize_works_as_on_a_cluster(tmp_path) -> None:
    """The coordinator's revoke drains the authorization PDA but leaves its data; a validator deletes the
    account, so authorizing the same grantee again creates it afresh. Without the purge the stale data made
    the program answer AlreadyInitialized."""
    from coordinator_sdk.client import default_codec

    chain = Chain(tmp_path / "ledger")
    try:
        codec = default_codec()
        owner, account, grantee = _funded(chain, 10 * 10**9), Keypair(), Pubkey.new_unique()
        instance = codec.instance_pda("purge-run")
        rent = chain.svm.minimum_balance_for_rent_exemption(codec.account_size)
        _send(chain, owner, [
            create_account(CreateAccountParams(from_pubkey=owner.pubkey(), to_pubkey=account.pubkey(), lamports=rent,
                                               space=codec.account_size, owner=codec.program_id)),
            codec.init_run(owner.pubkey(), "purge-run", account.pubkey(), owner.pubkey(), owner.pubkey())], [account])
        pda = codec.authorization_pda(instance, grantee, account.pubkey())
        _send(chain, owner, [codec.authorize("authorize", owner.pubkey(), instance, grantee, account.pubkey())])
        assert chain.get_account(pda) is not None
        _send(chain, owner, [codec.authorize("revoke", owner.pubkey(), instance, grantee, account.pubkey())])
        assert chain.get_account(pda) is None and _ledger_row(chain, pda) is None
        raw = chain.svm.get_account(pda)
        assert raw is None or (bytes(raw.data) == b"" and raw.owner == Pubkey.default())
        _send(chain, owner, [codec.authorize("authorize", owner.pubkey(), instance, grantee, account.pubkey())])
        assert chain.get_account(pda).owner == codec.program_id
    finally:
        chain.close()


def test_durable_nonce_transaction_lands_and_advances_the_nonce(chain: Chain) -> None:
    """A transaction whose blockhash is a nonce account's stored nonce is accepted at any age, once."""
    from solders.system_program import AdvanceNonceAccountParams, advance_nonce_account, create_nonce_account

    payer, nonce = _funded(chain), Keypair()
    _send(chain, payer, list(create_nonce_account(payer.pubkey(), nonce.pubkey(), payer.pubkey(),
                                                  chain.svm.minimum_balance_for_rent_exemption(80))), [nonce])
    for _ in range(200):  # far beyond the 150-slot blockhash window
        chain.advance()
    stored = Hash(bytes(chain.get_account(nonce.pubkey()).data)[40:72])
    to = Pubkey.new_unique()
    tx = VersionedTransaction.from_legacy(Transaction.new_signed_with_payer([
        advance_nonce_account(AdvanceNonceAccountParams(nonce_pubkey=nonce.pubkey(), authorized_pubkey=payer.pubkey())),
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=4242))],
        payer.pubkey(), [payer], stored))
    chain.send(tx)
    assert chain.get_account(to).lamports == 4242
    assert bytes(chain.get_account(nonce.pubkey()).data)[40:72] != bytes(stored)
    advance = advance_nonce_account(AdvanceNonceAccountParams(nonce_pubkey=nonce.pubkey(),
                                                              authorized_pubkey=payer.pubkey()))
    again = VersionedTransaction.from_legacy(Transaction.new_signed_with_payer([
        advance, transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=1))],
        payer.pubkey(), [payer], stored))
    with pytest.raises(RpcError, match="Blockhash not found"):  # the nonce moved on: the old value is spent
        chain.send(again)
