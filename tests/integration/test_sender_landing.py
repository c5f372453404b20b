"""Landing transactions like a production client, against a real localnet: the compute-unit limit from a
simulation (or the caller's bound, measured again when too small), a fixed or automatic priority fee charged
as a validator charges it, HTTP 429 waited out per Retry-After, reads that wait for our write's slot
(minContextSlot), and a re-signed transaction's refusal checked against the earlier copies."""
from __future__ import annotations

import asyncio
import base64

import pytest
from localnet_harness import Localnet
from solders.keypair import Keypair
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from coordinator_sdk.rpc_pool import RpcCallError, RpcPool, retry_after_seconds
from coordinator_sdk.sender import MAX_CU, TransactionSender, parse_unit_price, percentile


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    ln = Localnet(tmp_path_factory.mktemp("landing") / "ledger")
    yield ln
    ln.stop()


async def _funded(pool: RpcPool, sol: int = 10) -> Keypair:
    kp = Keypair()
    sig = (await pool.call(lambda c: c.request_airdrop(kp.pubkey(), sol * 10**9))).value
    await pool.call(lambda c: c.confirm_transaction(sig))
    return kp


def _pay(payer: Keypair, to: Keypair | None = None, lamports: int = 1_000_000):
    return transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=(to or Keypair()).pubkey(),
                                   lamports=lamports))


async def _landed_tx(pool: RpcPool, sig: str) -> dict:
    return await pool.raw("getTransaction", [sig, {"encoding": "base64", "maxSupportedTransactionVersion": 0}])


def _budget(tx_b64: str) -> dict[int, int]:
    """{instruction tag: value} of the ComputeBudget instructions (2: unit limit, 3: unit price)."""
    tx = VersionedTransaction.from_bytes(base64.b64decode(tx_b64))
    keys = list(tx.message.account_keys)
    out = {}
    for ix in tx.message.instructions:
        if str(keys[ix.program_id_index]) == "ComputeBudget111111111111111111111111111111":
            out[ix.data[0]] = int.from_bytes(bytes(ix.data[1:]), "little")
    return out


def test_limit_from_simulation_with_margin(net: Localnet) -> None:
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer = await _funded(pool)
            sender = TransactionSender(pool)
            sig = await sender.send([_pay(payer)], [payer])
            tx = await _landed_tx(pool, sig)
            used = tx["meta"]["computeUnitsConsumed"]
            limit = _budget(tx["transaction"][0])[2]
            assert limit == sender.last["cu_limit"] and used <= limit <= int(used * 1.15) + 1_000
            assert 3 not in _budget(tx["transaction"][0]) and tx["meta"]["fee"] == 5_000  # no price: no fee
            assert pool.min_context_slot == tx["slot"] == sender.last["slot"]
    asyncio.run(body())


def test_a_callers_bound_skips_the_simulation_and_a_too_small_one_is_measured(net: Localnet) -> None:
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer = await _funded(pool)
            sender = TransactionSender(pool)
            tx = await _landed_tx(pool, await sender.send([_pay(payer)], [payer], cu_limit=5_000))
            assert _budget(tx["transaction"][0])[2] == 5_000
            tx = await _landed_tx(pool, await sender.send([_pay(payer)], [payer], cu_limit=100))
            assert _budget(tx["transaction"][0])[2] > 100 and tx["meta"]["err"] is None
    asyncio.run(body())


def test_fixed_unit_price_is_set_and_charged_as_a_validator_does(net: Localnet) -> None:
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer = await _funded(pool)
            sender = TransactionSender(pool, unit_price=2_000_000)
            before = (await pool.call(lambda c: c.get_balance(payer.pubkey()))).value
            sig = await sender.send([_pay(payer, lamports=1_000)], [payer], cu_limit=10_000)
            tx = await _landed_tx(pool, sig)
            assert _budget(tx["transaction"][0]) == {2: 10_000, 3: 2_000_000}
            assert tx["meta"]["fee"] == 5_000 + 20_000  # 2 lamports per CU x 10k CU
            after = (await pool.call(lambda c: c.get_balance(payer.pubkey()))).value
            assert before - after == 1_000 + 25_000
    asyncio.run(body())


def test_auto_unit_price_is_a_percentile_of_recent_fees_for_the_written_accounts(net: Localnet) -> None:
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer, hot = await _funded(pool), Keypair()
            await asyncio.sleep(0.5)  # the next slot: its fee minimum is not the (free) airdrop's
            busy = TransactionSender(pool, unit_price=7_000)
            await busy.send([_pay(payer, hot)], [payer], cu_limit=5_000)
            auto = TransactionSender(pool, unit_price="auto", fee_percentile=100.0)
            await auto.send([_pay(payer, hot)], [payer], cu_limit=5_000)
            assert auto.last["unit_price"] == 7_000  # the highest recent fee paid to write `hot` (or payer)
            rows = await pool.raw("getRecentPrioritizationFees", [[str(payer.pubkey()), str(hot.pubkey())]])
            median = TransactionSender(pool, unit_price="auto", fee_percentile=50.0)
            await median.send([_pay(payer, Keypair())], [payer], cu_limit=5_000)
            assert median.last["unit_price"] <= percentile([r["prioritizationFee"] for r in rows], 50) + 7_000
    asyncio.run(body())


def test_reads_wait_for_the_slot_of_our_write(net: Localnet) -> None:
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer = await _funded(pool)
            slot = (await pool.call(lambda c: c.get_slot())).value
            pool.note_write(slot + 4)  # as if a node ahead of this one confirmed our write 4 slots later
            t0 = asyncio.get_running_loop().time()
            assert await pool.read_account(payer.pubkey()) is not None
            assert asyncio.get_running_loop().time() - t0 >= 0.8  # waited ~4 slots of 0.4 s
            pool.note_write(slot + 10_000)
            with pytest.raises(RpcCallError) as e:
                await pool.read_account(payer.pubkey(), wait=0.5)
            assert e.value.code == -32016
    asyncio.run(body())


def test_an_earlier_copy_that_landed_is_the_answer(net: Localnet) -> None:
    """The case a re-sign guards against: copy 1 landed but a lagging node said it had not, so copy 2 was
    signed; when copy 2 is refused (our program would say DuplicateWitness), the sender looks copy 1 up."""
    async def body() -> None:
        async with RpcPool([net.url]) as pool:
            payer = await _funded(pool)
            sender = TransactionSender(pool)
            first = await TransactionSender(pool).send([_pay(payer)], [payer])
            assert await sender._earlier_outcome([Signature.from_string(first)], {"label": "", "sent": 1}) == first
            assert await sender._earlier_outcome([Signature.default()], {}) is None
            assert pool.min_context_slot > 0
    asyncio.run(body())


def test_429s_are_waited_out_and_every_transaction_lands(tmp_path) -> None:
    ln = Localnet(tmp_path / "ledger", extra=("--rate-limit", "8"))
    try:
        async def body() -> tuple[int, int]:
            async with RpcPool([ln.url]) as pool:
                payer = await _funded(pool, 50)
                senders = [TransactionSender(pool) for _ in range(6)]
                sigs = await asyncio.gather(*(s.send([_pay(payer)], [payer]) for s in senders))
                statuses = (await pool.call(lambda c: c.get_signature_statuses(
                    [Signature.from_string(x) for x in sigs]))).value
                assert all(st is not None and st.err is None for st in statuses)
                return pool.throttled, len(set(sigs))
        throttled, distinct = asyncio.run(body())
        assert throttled > 0 and distinct == 6
    finally:
        ln.stop()


def test_helpers() -> None:
    assert retry_after_seconds("3", 0.2) == 3.0 and retry_after_seconds(None, 0.2) == 0.2
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 0.5) == 0.0  # a date in the past: now
    assert parse_unit_price("auto") == "auto" and parse_unit_price("15") == 15 and parse_unit_price(None) is None
    with pytest.raises(ValueError, match="neither 'auto'"):
        parse_unit_price("-3")
    assert percentile([0, 0, 0, 10], 75) == 0 and percentile([0, 0, 10, 10], 75) == 10 and percentile([], 50) == 0
    assert MAX_CU == 1_400_000


@pytest.mark.parametrize("argv", [["run", "tick", "r1", "--with-compute-unit-price", "cheap"],
                                  ["run-client", "--run-id", "r1", "--with-compute-unit-price", "-1"]])
def test_a_bad_unit_price_is_a_usage_error(argv: list[str]) -> None:
    from click.testing import CliRunner

    from client.cli import main

    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 2 and "--with-compute-unit-price" in res.output and "neither 'auto'" in res.output
