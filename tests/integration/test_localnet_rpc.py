"""solana-py and raw JSON-RPC against a real localnet subprocess: shapes, errors, programs, websockets."""
from __future__ import annotations

import asyncio
import json
import struct
import urllib.request

import pytest
from localnet_harness import Localnet, rpc
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.types import TxOpts
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.rpc.responses import IsBlockhashValidResp
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction

from programs.deploy import program_id_for

HELLO = program_id_for("hello")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("ledger") / "ledger")
    yield ln
    ln.stop()


def run(coro):
    return asyncio.run(coro)


async def funded(client: AsyncClient, sol: float = 10) -> Keypair:
    kp = Keypair()
    sig = (await client.request_airdrop(kp.pubkey(), int(sol * 10**9))).value
    await client.confirm_transaction(sig)
    return kp


async def send(client: AsyncClient, payer: Keypair, ixs: list[Instruction], extra: list[Keypair] = (),
               skip_preflight: bool = False):
    bh = (await client.get_latest_blockhash()).value.blockhash
    tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), [payer, *extra], bh)
    return await client.send_transaction(tx, opts=TxOpts(skip_preflight=skip_preflight, skip_confirmation=False))


def test_airdrop_transfer_and_fees(net: Localnet) -> None:
    async def main():
        async with AsyncClient(net.url) as c:
            a, b = await funded(c, 5), Keypair()
            resp = await send(c, a, [transfer(TransferParams(from_pubkey=a.pubkey(), to_pubkey=b.pubkey(),
                                                             lamports=1_234_567))])
            status = (await c.get_signature_statuses([resp.value])).value[0]
            assert status.err is None
            assert (await c.get_balance(b.pubkey())).value == 1_234_567
            assert (await c.get_balance(a.pubkey())).value == 5 * 10**9 - 1_234_567 - 5000
            tx = (await c.get_transaction(resp.value)).value
            assert tx.transaction.meta.fee == 5000 and tx.slot > 0
    run(main())


def test_program_call_writes_account_and_returns_data(net: Localnet) -> None:
    async def main():
        async with AsyncClient(net.url) as c:
            payer, acc = await funded(c), Keypair()
            rent = (await c.get_minimum_balance_for_rent_exemption(64)).value
            await send(c, payer, [create_account(CreateAccountParams(
                from_pubkey=payer.pubkey(), to_pubkey=acc.pubkey(), lamports=rent, space=64, owner=HELLO)),
                Instruction(HELLO, b"\x00greetings", [AccountMeta(acc.pubkey(), False, True)])], [acc])
            info = (await c.get_account_info(acc.pubkey())).value
            assert info.owner == HELLO and bytes(info.data)[:9] == b"greetings"
            sim = (await c.simulate_transaction(Transaction.new_signed_with_payer(
                [Instruction(HELLO, b"\x01abc", [])], payer.pubkey(), [payer],
                (await c.get_latest_blockhash()).value.blockhash))).value
            assert sim.err is None and "Program log: hash" in sim.logs
            gpa = (await c.get_program_accounts(HELLO, filters=[64])).value
            assert acc.pubkey() in [k.pubkey for k in gpa]
    run(main())


def test_preflight_failure_carries_logs_and_changes_nothing(net: Localnet) -> None:
    async def main():
        async with AsyncClient(net.url) as c:
            payer = await funded(c)
            before = (await c.get_balance(payer.pubkey())).value
            with pytest.raises(RPCException) as info:
                await send(c, payer, [Instruction(HELLO, b"\x04", [])])
            text = str(info.value)
            assert "custom program error: 0x1234" in text and "Custom" in text
            assert (await c.get_balance(payer.pubkey())).value == before  # preflight failure: nothing charged
            # skip_preflight: the failing transaction lands, is charged, and its status carries the error
            resp = await send(c, payer, [Instruction(HELLO, b"\x04", [])], skip_preflight=True)
            status = (await c.get_signature_statuses([resp.value])).value[0]
            assert status.err is not None
            assert (await c.get_balance(payer.pubkey())).value == before - 5000
    run(main())


def test_unknown_and_expired_blockhash_is_rejected(net: Localnet) -> None:
    async def main():
        async with AsyncClient(net.url) as c:
            payer = await funded(c)
            tx = Transaction.new_signed_with_payer([transfer(TransferParams(
                from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))], payer.pubkey(), [payer],
                Hash.new_unique())
            with pytest.raises(RPCException, match="BlockhashNotFound"):
                await c.send_transaction(tx)
            bh = (await c.get_latest_blockhash()).value
            for h, want in ((Hash.new_unique(), False), (bh.blockhash, True)):  # solana-py 0.36 has no wrapper
                raw = json.dumps(rpc(net.url, "isBlockhashValid", [str(h), {"commitment": "confirmed"}]))
                assert IsBlockhashValidResp.from_json(raw).value is want
            assert bh.last_valid_block_height > (await c.get_block_height()).value
            fee = (await c.get_fee_for_message(Message.new_with_blockhash(
                [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=1))],
                payer.pubkey(), bh.blockhash))).value
            assert fee == 5000
    run(main())


def test_clock_follows_wall_time(net: Localnet) -> None:
    async def main():
        async with AsyncClient(net.url) as c:
            s1 = (await c.get_slot()).value
            await asyncio.sleep(2.0)
            s2 = (await c.get_slot()).value
            assert 3 <= s2 - s1 <= 10  # ~400 ms slots; loose bounds for a loaded 2-core CI machine
            clock = (await c.get_account_info(Pubkey.from_string("SysvarC1ock11111111111111111111111111111111"))).value
            import time
            ts = struct.unpack_from("<q", bytes(clock.data), 32)[0]
            assert abs(ts - time.time()) < 5
    run(main())


def _post(url: str, body: bytes, headers: dict | None = None) -> object:
    req = urllib.request.Request(url, body, {"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_batches_and_malformed_requests(net: Localnet) -> None:
    out = _post(net.url, json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(
        [("getSlot", []), ("getVersion", []), ("getBalance", ["not-a-key"]), ("noSuchMethod", []),
         ("getAccountInfo", [])])]).encode())
    assert [r["id"] for r in out] == [0, 1, 2, 3, 4]
    assert isinstance(out[0]["result"], int) and "solana-core" in out[1]["result"]
    assert out[2]["error"]["code"] == -32602 and "not-a-key" in out[2]["error"]["message"]
    assert out[3]["error"]["code"] == -32601
    assert out[4]["error"]["code"] == -32602
    assert _post(net.url, b"{not json")["error"]["code"] == -32700
    assert _post(net.url, b"[]")["error"]["code"] == -32600
    assert _post(net.url, b'{"jsonrpc":"2.0","id":1,"method":"sendTransaction","params":["@@@"]}')["error"][
        "code"] == -32602
    # anchorpy labels plain bodies as gzip: they must still be understood
    assert "result" in _post(net.url, b'{"jsonrpc":"2.0","id":1,"method":"getSlot"}', {"content-encoding": "gzip"})
    assert rpc(net.url, "getHealth")["result"] == "ok"  # still serving after all of the above


def test_websocket_account_signature_and_slot_notifications(net: Localnet) -> None:
    from solana.rpc.websocket_api import connect

    async def main():
        async with AsyncClient(net.url) as c:
            payer, dest = await funded(c), Keypair()
            async with connect(net.ws_url) as ws:
                await ws.account_subscribe(dest.pubkey(), encoding="base64")
                acc_sub = (await ws.recv())[0].result
                await ws.slot_subscribe()
                slot_sub = (await ws.recv())[0].result
                bh = (await c.get_latest_blockhash()).value.blockhash
                tx = Transaction.new_signed_with_payer([transfer(TransferParams(
                    from_pubkey=payer.pubkey(), to_pubkey=dest.pubkey(), lamports=777_000))], payer.pubkey(),
                    [payer], bh)
                await ws.signature_subscribe(tx.signatures[0])
                sig_sub = (await ws.recv())[0].result
                await c.send_transaction(tx)
                seen = {}
                for _ in range(20):
                    msg = (await asyncio.wait_for(ws.recv(), 5))[0]
                    seen.setdefault(type(msg).__name__, msg)
                    if {"AccountNotification", "SignatureNotification", "SlotNotification"} <= set(seen):
                        break
                assert seen["AccountNotification"].result.value.lamports == 777_000
                assert seen["AccountNotification"].subscription == acc_sub
                assert seen["SignatureNotification"].result.value.err is None
                assert seen["SignatureNotification"].subscription == sig_sub
                assert seen["SlotNotification"].subscription == slot_sub
                await ws.account_unsubscribe(acc_sub)
    run(main())


def test_websocket_survives_garbage_and_bad_subscriptions(net: Localnet) -> None:
    import websockets

    async def main():
        async with websockets.connect(net.ws_url) as ws:
            await ws.send("{garbage")
            assert json.loads(await ws.recv())["error"]["code"] == -32700
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "accountSubscribe", "params": ["bad"]}))
            assert "not a base-58" in json.loads(await ws.recv())["error"]["message"]
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "slotUnsubscribe", "params": [999]}))
            assert "Invalid subscription" in json.loads(await ws.recv())["error"]["message"]
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "slotSubscribe"}))
            sub = json.loads(await ws.recv())["result"]
            note = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert note["method"] == "slotNotification" and note["params"]["subscription"] == sub
    run(main())
