"""Nothing confirmed is lost: kill -9 and restart with the same ledger; and concurrent senders each see
every confirmed transfer applied exactly once."""
from __future__ import annotations

import asyncio

import pytest
from localnet_harness import Localnet
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from programs.deploy import program_id_for


async def _funded(c: AsyncClient, lamports: int) -> Keypair:
    kp = Keypair()
    await c.confirm_transaction((await c.request_airdrop(kp.pubkey(), lamports)).value)
    return kp


def test_kill_9_then_restart_keeps_every_confirmed_transaction(tmp_path) -> None:
    ledger = tmp_path / "ledger"
    net = Localnet(ledger)
    receivers = [Keypair().pubkey() for _ in range(5)]

    async def before():
        async with AsyncClient(net.url) as c:
            payer = await _funded(c, 10**9)
            sigs = []
            for i, r in enumerate(receivers):
                bh = (await c.get_latest_blockhash()).value.blockhash
                tx = Transaction.new_signed_with_payer(
                    [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=r, lamports=1000 * (i + 1)))],
                    payer.pubkey(), [payer], bh)
                sigs.append((await c.send_transaction(tx, opts=TxOpts(skip_confirmation=False))).value)
            return payer, sigs, tx, (await c.get_balance(payer.pubkey())).value

    payer, sigs, last_tx, payer_balance = asyncio.run(before())
    net.stop(hard=True)  # SIGKILL: no chance to flush anything

    net = Localnet(ledger, reset=False, port=net.port)
    try:
        async def after():
            async with AsyncClient(net.url) as c:
                for i, r in enumerate(receivers):
                    assert (await c.get_balance(r)).value == 1000 * (i + 1)
                assert (await c.get_balance(payer.pubkey())).value == payer_balance
                statuses = (await c.get_signature_statuses(sigs)).value
                assert all(s is not None and s.err is None for s in statuses)
                # The program is still deployed and callable after the restart.
                info = (await c.get_account_info(program_id_for("hello"))).value
                assert info is not None and info.executable
                # Replaying a confirmed transaction must not apply it twice.
                with pytest.raises(RPCException):
                    await c.send_transaction(last_tx)
                assert (await c.get_balance(receivers[-1])).value == 5000
        asyncio.run(after())
    finally:
        net.stop()

    fresh = Localnet(ledger, reset=True)
    try:
        async def wiped():
            async with AsyncClient(fresh.url) as c:
                assert (await c.get_balance(receivers[0])).value == 0
        asyncio.run(wiped())
    finally:
        fresh.stop()


def test_eight_concurrent_senders_hundred_transfers_each(tmp_path) -> None:
    net = Localnet(tmp_path / "ledger")
    senders, per_sender, start = 8, 100, 10**9

    async def sender(c: AsyncClient, payer: Keypair, dest) -> tuple[int, int]:
        sent = confirmed = 0
        for i in range(per_sender):
            bh = (await c.get_latest_blockhash()).value.blockhash
            amount = 1000 + i  # distinct amounts: distinct signatures even with the same blockhash
            tx = Transaction.new_signed_with_payer(
                [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=amount))],
                payer.pubkey(), [payer], bh)
            sent += amount
            resp = await c.send_transaction(tx, opts=TxOpts(skip_confirmation=False))
            st = (await c.get_signature_statuses([resp.value])).value[0]
            confirmed += st is not None and st.err is None
        return sent, confirmed

    async def main():
        async with AsyncClient(net.url) as c:
            payers = [await _funded(c, start) for _ in range(senders)]
            dests = [Keypair().pubkey() for _ in range(senders)]
            results = await asyncio.gather(*(sender(c, p, d) for p, d in zip(payers, dests, strict=True)))
            for (sent, confirmed), p, d in zip(results, payers, dests, strict=True):
                assert confirmed == per_sender
                assert (await c.get_balance(d)).value == sent
                assert (await c.get_balance(p.pubkey())).value == start - sent - 5000 * per_sender
    try:
        asyncio.run(main())
    finally:
        net.stop()


def test_a_restart_never_hands_out_a_blockhash_again(tmp_path) -> None:
    """LiteSVM's blockhashes follow a fixed sequence that genesis deploys also step through; a restart that
    handed out an old blockhash again made a client's next `tick` byte-identical to one that had landed
    before (AlreadyProcessed: the run stalled ~20 s after every localnet restart)."""
    from localnet.chain import Chain

    chain = Chain(tmp_path / "ledger")
    for _ in range(5):
        chain.advance()
    before = {h for _, h in chain.ledger.recent_blocks(10_000)}
    chain.close()
    again = Chain(tmp_path / "ledger")
    try:
        fresh = []
        for _ in range(200):
            again.advance()
            fresh.append(again.latest_blockhash()[0])
        assert not set(fresh) & before, "a blockhash was handed out twice across a restart"
        assert len(set(fresh)) == len(fresh)
    finally:
        again.close()
