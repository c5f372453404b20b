"""coordinator_sdk transport against a live localnet: failover, named program errors with logs, and the
nonce-filtered account stream over websockets, over polling, and across a validator restart."""
from __future__ import annotations

import asyncio
import struct

import pytest
from localnet_harness import Localnet, free_port_pair
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer

from coordinator_sdk.account_stream import AccountStream, ws_url_for
from coordinator_sdk.program_errors import ErrorMap, ProgramError, TransactionFailed
from coordinator_sdk.rpc_pool import AllEndpointsFailed, RpcPool
from coordinator_sdk.sender import TransactionSender
from programs.deploy import program_id_for

HELLO = program_id_for("hello")
ERRORS = ErrorMap([{"code": 0x1234, "name": "Deliberate", "msg": "hello fails on purpose"},
                   {"code": 6005, "name": "PayloadTooBig", "msg": "payload larger than the account"}])


@pytest.fixture
def net(tmp_path):
    ln = Localnet(tmp_path / "ledger")
    yield ln
    ln.stop()


async def _funded(pool: RpcPool) -> Keypair:
    kp = Keypair()
    sig = (await pool.call(lambda c: c.request_airdrop(kp.pubkey(), 10**10))).value
    await pool.call(lambda c: c.confirm_transaction(sig))
    return kp


async def _hello_account(sender: TransactionSender, payer: Keypair, size: int = 16) -> Pubkey:
    acc = Keypair()
    rent = (await sender.pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(size))).value
    await sender.send([create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=acc.pubkey(),
                                                          lamports=rent, space=size, owner=HELLO))], [payer, acc])
    return acc.pubkey()


def _write(acc: Pubkey, nonce: int, tail: bytes = b"") -> Instruction:
    return Instruction(HELLO, b"\x00" + struct.pack("<Q", nonce) + tail, [AccountMeta(acc, False, True)])


def test_pool_fails_over_and_names_every_dead_endpoint(net: Localnet) -> None:
    dead = f"http://127.0.0.1:{free_port_pair()}"

    async def main():
        async with RpcPool([dead, net.url], backoff=0.01) as pool:
            assert (await pool.call(lambda c: c.get_slot())).value > 0
            assert pool.url == net.url
        dead2 = dead.replace("127.0.0.1", "localhost")
        async with RpcPool([dead, dead2], attempts=2, backoff=0.01) as pool:
            with pytest.raises(AllEndpointsFailed) as info:
                await pool.call(lambda c: c.get_slot())
            assert dead in str(info.value) and dead2 in str(info.value)
    asyncio.run(main())


def test_sender_confirms_and_raises_named_program_errors(net: Localnet) -> None:
    async def main():
        async with RpcPool([net.url]) as pool:
            sender = TransactionSender(pool, ERRORS)
            payer, dest = await _funded(pool), Keypair().pubkey()
            await sender.send([transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=42))],
                              [payer])
            assert (await pool.call(lambda c: c.get_balance(dest))).value == 42
            with pytest.raises(ERRORS["Deliberate"]) as info:
                await sender.send([Instruction(HELLO, b"\x04", [])], [payer])
            assert isinstance(info.value, ProgramError) and type(info.value).__name__ == "Deliberate"
            assert any("custom program error: 0x1234" in line for line in info.value.logs)
            acc = await _hello_account(sender, payer, size=4)
            with pytest.raises(ERRORS["PayloadTooBig"]):
                await sender.send([_write(acc, 1)], [payer])
            with pytest.raises(TransactionFailed, match="6001"):  # not in the map: still an error, with the code
                await sender.send([Instruction(HELLO, b"\x09", [])], [payer])
    asyncio.run(main())


def _decode(data: bytes) -> int:
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, need 8")
    return struct.unpack_from("<Q", data)[0]


def test_stream_delivers_only_newer_nonces_over_websocket_and_after_restart(net: Localnet) -> None:
    async def phase1():
        async with RpcPool([net.url]) as pool:
            sender = TransactionSender(pool)
            payer = await _funded(pool)
            acc = await _hello_account(sender, payer)
            async with AccountStream(pool, acc, _decode, lambda n: n, poll_interval=0.3) as stream:
                await asyncio.wait_for(stream.ws_live.wait(), 10)
                assert await stream.next(timeout=10) == 0  # the current state comes first
                got = []
                for n, tail in ((1, b""), (2, b""), (3, b""), (2, b"!"), (5, b"")):  # the 2 after 3 is stale
                    await sender.send([_write(acc, n, tail)], [payer])
                while len(got) < 4:
                    got.append(await stream.next(timeout=10))
                assert got == [1, 2, 3, 5]
                assert stream.stats["ws"] >= 1 and stream.stats["stale"] >= 1
            return payer, acc

    payer, acc = asyncio.run(phase1())
    net.stop(hard=True)
    net2 = Localnet(net.ledger, reset=False, port=net.port)
    try:
        async def phase2():
            async with RpcPool([net2.url]) as pool:
                sender = TransactionSender(pool)
                async with AccountStream(pool, acc, _decode, lambda n: n, poll_interval=0.3) as stream:
                    assert await stream.next(timeout=10) == 5  # state survived the kill -9
                    await sender.send([_write(acc, 9)], [payer])
                    assert await stream.next(timeout=10) == 9
        asyncio.run(phase2())
    finally:
        net2.stop()


def test_stream_falls_back_to_polling_when_websocket_is_unreachable(net: Localnet) -> None:
    async def main():
        async with RpcPool([net.url]) as pool:
            sender = TransactionSender(pool)
            payer = await _funded(pool)
            acc = await _hello_account(sender, payer)
            dead_ws = f"ws://127.0.0.1:{free_port_pair()}"
            async with AccountStream(pool, acc, _decode, lambda n: n, ws_url=dead_ws, poll_interval=0.2) as stream:
                assert await stream.next(timeout=10) == 0  # fresh zeroed account
                await sender.send([_write(acc, 7)], [payer])
                assert await stream.next(timeout=10) == 7
                assert stream.stats["ws"] == 0 and stream.stats["poll"] >= 2 and stream.stats["reconnects"] >= 1
    asyncio.run(main())


def test_ws_url_convention() -> None:
    assert ws_url_for("http://127.0.0.1:8899") == "ws://127.0.0.1:8900"
    assert ws_url_for("https://api.devnet.solana.com") == "wss://api.devnet.solana.com:444"
