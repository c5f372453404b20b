"""anchorpy against the localnet: accounts written by a real program are fetched and decoded through
getAccountInfo, batched getMultipleAccounts (anchorpy's gzip-labelled batch) and getProgramAccounts with
a base58 memcmp on the account discriminator."""
from __future__ import annotations

import asyncio
import hashlib
import json
import struct

import pytest
from anchorpy import Idl, Program, Provider, Wallet
from localnet_harness import Localnet
from solana.rpc.async_api import AsyncClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction

from programs.deploy import program_id_for

HELLO = program_id_for("hello")
IDL = {"version": "0.1.0", "name": "hello", "instructions": [],
       "accounts": [{"name": "Greeting", "type": {"kind": "struct", "fields": [
           {"name": "count", "type": "u64"}, {"name": "author", "type": "publicKey"}]}}],
       "metadata": {"address": str(HELLO)}}
DISC = hashlib.sha256(b"account:Greeting").digest()[:8]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("anchor") / "ledger")
    yield ln
    ln.stop()


def test_anchorpy_fetch_fetch_multiple_and_all(net: Localnet) -> None:
    async def main():
        client = AsyncClient(net.url)
        payer = Keypair()
        await client.confirm_transaction((await client.request_airdrop(payer.pubkey(), 10**10)).value)
        provider = Provider(client, Wallet(payer))
        program = Program(Idl.from_json(json.dumps(IDL)), HELLO, provider)
        made = []
        for count in (7, 8, 9):
            acc = Keypair()
            rent = (await client.get_minimum_balance_for_rent_exemption(48)).value
            payload = DISC + struct.pack("<Q", count) + bytes(payer.pubkey())
            bh = (await client.get_latest_blockhash()).value.blockhash
            tx = Transaction.new_signed_with_payer([
                create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=acc.pubkey(),
                                                   lamports=rent, space=48, owner=HELLO)),
                Instruction(HELLO, b"\x00" + payload, [AccountMeta(acc.pubkey(), False, True)])],
                payer.pubkey(), [payer, acc], bh)
            await provider.send(tx)  # anchorpy's own send + confirm path
            made.append((acc.pubkey(), count))
        one = await program.account["Greeting"].fetch(made[0][0])
        assert one.count == 7 and one.author == payer.pubkey()
        many = await program.account["Greeting"].fetch_multiple([k for k, _ in made])
        assert [g.count for g in many] == [7, 8, 9]
        every = await program.account["Greeting"].all()
        assert sorted(r.account.count for r in every) == [7, 8, 9]
        await client.close()
    asyncio.run(main())
