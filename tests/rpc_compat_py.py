"""Drives the localnet with solana-py, whose solders response parsers reject any shape a validator would not
send. Runs under the project venv (the pinned solana-py) and under .venv-rpccheck (the newest release), so
it imports nothing from the project. Prints one JSON object {call: "ok" | error}.

Usage: python rpc_compat_py.py RPC_URL WS_URL FIXTURE.json"""
from __future__ import annotations

import asyncio
import json
import sys

from solana.rpc import websocket_api
from solana.rpc.async_api import AsyncClient
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

try:  # solana-py >= 0.40 moved its option models
    from solana.rpc.models import TokenAccountOpts
except ImportError:
    from solana.rpc.types import TokenAccountOpts

TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")


async def main(url: str, ws_url: str, fx: dict) -> dict:
    results: dict[str, str] = {}
    c = AsyncClient(url, timeout=30)
    payer = Keypair.from_bytes(bytes(fx["payerSecret"]))
    P = Pubkey.from_string
    v0 = Signature.from_string(fx["v0Signature"])

    async def check(name: str, call, ok) -> None:
        """`call(c)` returns the awaitable; `ok(value)` judges the parsed answer's `.value`."""
        try:
            value = (await call(c)).value
            results[name] = "ok" if ok(value) else f"unexpected answer: {value}"[:300]
        except AttributeError as e:
            if "object has no attribute 'get_" in str(e):  # this solana-py release lacks the method
                return
            results[name] = f"{type(e).__name__}: {e}"[:300]
        except Exception as e:  # any client-side parse failure or RPC error is this call's result
            results[name] = f"{type(e).__name__}: {e}"[:300]

    await check("get_epoch_info", lambda c: c.get_epoch_info(), lambda v: v.absolute_slot > 0)
    await check("get_epoch_schedule", lambda c: c.get_epoch_schedule(), lambda v: v.slots_per_epoch > 0)
    await check("get_genesis_hash", lambda c: c.get_genesis_hash(), lambda v: v is not None)
    await check("get_identity", lambda c: c.get_identity(), lambda v: v.identity is not None)
    await check("get_cluster_nodes", lambda c: c.get_cluster_nodes(), lambda v: len(v) == 1)
    await check("get_slot_leader", lambda c: c.get_slot_leader(), lambda v: v is not None)
    await check("get_slot_leaders", lambda c: c.get_slot_leaders(1, 3), lambda v: len(v) == 3)
    await check("get_leader_schedule", lambda c: c.get_leader_schedule(), lambda v: len(v) == 1)
    await check("get_vote_accounts", lambda c: c.get_vote_accounts(), lambda v: v.current == [])
    await check("get_recent_performance_samples", lambda c: c.get_recent_performance_samples(3),
                lambda v: len(v) >= 1)
    await check("get_recent_prioritization_fees", lambda c: c.get_recent_prioritization_fees(), lambda v: len(v) >= 1)
    await check("get_signatures_for_address", lambda c: c.get_signatures_for_address(P(fx["altRecipient"]), limit=5),
                lambda v: str(v[0].signature) == fx["v0Signature"])
    tx = (await c.get_transaction(v0, max_supported_transaction_version=0)).value
    slot = tx.slot if tx is not None else 0
    await check("get_transaction(v0)", lambda c: c.get_transaction(v0, max_supported_transaction_version=0),
                lambda v: len(v.transaction.meta.post_balances) == 3
                and str(v.transaction.meta.loaded_addresses.writable[0]) == fx["altRecipient"])
    await check("get_transaction(jsonParsed)", lambda c: c.get_transaction(
        v0, encoding="jsonParsed", max_supported_transaction_version=0), lambda v: v.transaction.meta.log_messages)
    await check("get_transaction(token balances)", lambda c: c.get_transaction(
        Signature.from_string(fx["mintToSignature"]), max_supported_transaction_version=0),
        lambda v: sorted(b.ui_token_amount.amount for b in v.transaction.meta.post_token_balances)
        == ["1500000", "250000"])
    await check("get_transaction(inner instructions)", lambda c: c.get_transaction(
        Signature.from_string(fx["ataSignature"]), max_supported_transaction_version=0),
        lambda v: len(v.transaction.meta.inner_instructions[0].instructions) >= 2)
    await check("get_block", lambda c: c.get_block(slot, max_supported_transaction_version=0),
                lambda v: str(v.transactions[0].transaction.signatures[0]) == fx["v0Signature"])
    await check("get_blocks", lambda c: c.get_blocks(max(0, slot - 2), slot), lambda v: slot in v)
    await check("get_block_time", lambda c: c.get_block_time(slot), lambda v: v > 1_600_000_000)
    await check("get_first_available_block", lambda c: c.get_first_available_block(), lambda v: v >= 0)
    await check("get_minimum_ledger_slot", lambda c: c.get_minimum_ledger_slot(), lambda v: v >= 0)
    await check("get_supply", lambda c: c.get_supply(), lambda v: v.total > 0)
    await check("get_transaction_count", lambda c: c.get_transaction_count(), lambda v: v >= 5)
    await check("get_inflation_governor", lambda c: c.get_inflation_governor(), lambda v: v.initial == 0)
    await check("get_inflation_rate", lambda c: c.get_inflation_rate(), lambda v: v.total == 0)
    await check("get_largest_accounts", lambda c: c.get_largest_accounts(), lambda v: len(v) > 0)
    await check("get_account_info_json_parsed", lambda c: c.get_account_info_json_parsed(P(fx["mint"])),
                lambda v: v.data.parsed["type"] == "mint")
    await check("get_multiple_accounts_json_parsed", lambda c: c.get_multiple_accounts_json_parsed(
        [P(fx["tokenAccountA"])]), lambda v: v[0].data.parsed["info"]["tokenAmount"]["amount"] == "1500000")
    await check("get_token_account_balance", lambda c: c.get_token_account_balance(P(fx["tokenAccountA"])),
                lambda v: v.ui_amount_string == "1.5")
    await check("get_token_accounts_by_owner(mint)", lambda c: c.get_token_accounts_by_owner(
        payer.pubkey(), TokenAccountOpts(mint=P(fx["mint"]))), lambda v: len(v) == 1)
    await check("get_token_accounts_by_owner_json_parsed", lambda c: c.get_token_accounts_by_owner_json_parsed(
        P(fx["ownerB"]), TokenAccountOpts(program_id=TOKEN)),
        lambda v: v[0].account.data.parsed["info"]["delegate"] == fx["payer"])
    await check("get_token_accounts_by_delegate", lambda c: c.get_token_accounts_by_delegate(
        payer.pubkey(), TokenAccountOpts(program_id=TOKEN)), lambda v: str(v[0].pubkey) == fx["tokenAccountB"])
    await check("get_token_supply", lambda c: c.get_token_supply(P(fx["mint"])), lambda v: v.amount == "1750000")
    await check("get_token_largest_accounts", lambda c: c.get_token_largest_accounts(P(fx["mint"])),
                lambda v: str(v[0].address) == fx["tokenAccountA"])
    await _subscriptions(c, ws_url, payer, fx, results)
    await c.close()
    return results


async def _subscriptions(c: AsyncClient, ws_url: str, payer: Keypair, fx: dict, results: dict) -> None:
    """logs (mentions), program and signature (already confirmed) subscriptions, then a transfer that must
    produce the first two notifications."""
    dest = Keypair().pubkey()
    got: set[str] = set()
    new_api = hasattr(websocket_api, "SolanaWsClient")
    try:
        ws = websocket_api.SolanaWsClient(ws_url) if new_api else websocket_api.connect(ws_url)
        async with ws as ws:
            if new_api:
                await ws.logs_subscribe(filter_=RpcTransactionLogsFilterMentions(dest))
                await ws.program_subscribe(program_id=SYSTEM)
                await ws.signature_subscribe(signature=Signature.from_string(fx["legacySignature"]))
            else:
                for sub in (ws.logs_subscribe(RpcTransactionLogsFilterMentions(dest)), ws.program_subscribe(SYSTEM),
                            ws.signature_subscribe(Signature.from_string(fx["legacySignature"]))):
                    await sub
                    await ws.recv()  # the subscription id
            bh = (await c.get_latest_blockhash()).value.blockhash
            tx = Transaction.new_signed_with_payer(
                [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=5_000_000))],
                payer.pubkey(), [payer], bh)
            await c.send_raw_transaction(bytes(tx))
            deadline = asyncio.get_running_loop().time() + 10
            while len(got) < 3 and asyncio.get_running_loop().time() < deadline:
                msg = await asyncio.wait_for(ws.recv(), timeout=5)
                for m in msg if isinstance(msg, list) else [msg]:
                    name = type(m).__name__
                    if name == "ProgramNotification" and m.result.value.pubkey != dest:
                        continue
                    got.add(name)
    except Exception as e:
        results["subscriptions"] = f"{type(e).__name__}: {e}"[:300]
    for name in ("LogsNotification", "ProgramNotification", "SignatureNotification"):
        results[name] = "ok" if name in got else "no notification within 10 s"


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())))))
