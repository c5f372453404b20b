"""Confirmed transactions per second through the localnet's JSON-RPC (solana-py AsyncClient, each
transfer sent and confirmed) versus signed transfers executed in-process by LiteSVM, same machine, same run.

    .venv/bin/python -m bench.localnet_tps [--transfers 400] [--senders 8]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from solana.rpc.async_api import AsyncClient
from solana.rpc.types import TxOpts
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from localnet_harness import Localnet  # noqa: E402


def in_process(n: int) -> float:
    svm = LiteSVM()
    payer, dest = Keypair(), Keypair().pubkey()
    svm.airdrop(payer.pubkey(), 10**12)
    t0 = time.perf_counter()
    for i in range(n):
        tx = Transaction.new_signed_with_payer(
            [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=1000 + i))],
            payer.pubkey(), [payer], svm.latest_blockhash())
        res = svm.send_transaction(tx)
        assert type(res).__name__ == "TransactionMetadata"
    return n / (time.perf_counter() - t0)


async def over_rpc(url: str, n: int, senders: int) -> float:
    async with AsyncClient(url) as c:
        payers = []
        for _ in range(senders):
            kp = Keypair()
            await c.confirm_transaction((await c.request_airdrop(kp.pubkey(), 10**11)).value)
            payers.append(kp)
        dest = Keypair().pubkey()

        async def one_sender(payer: Keypair, count: int) -> None:
            for i in range(count):
                bh = (await c.get_latest_blockhash()).value.blockhash
                tx = Transaction.new_signed_with_payer(
                    [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=dest, lamports=1000 + i))],
                    payer.pubkey(), [payer], bh)
                await c.send_transaction(tx, opts=TxOpts(skip_confirmation=False))

        per = n // senders
        t0 = time.perf_counter()
        await asyncio.gather(*(one_sender(p, per) for p in payers))
        return per * senders / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transfers", type=int, default=400)
    ap.add_argument("--senders", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        net = Localnet(Path(tmp) / "ledger")
        try:
            rpc_seq = asyncio.run(over_rpc(net.url, args.transfers // 4, 1))
            rpc_conc = asyncio.run(over_rpc(net.url, args.transfers, args.senders))
        finally:
            net.stop()
    local = in_process(args.transfers)
    print(f"in-process LiteSVM (sign + execute):                {local:8.0f} tx/s")
    print(f"localnet JSON-RPC, 1 sender (send + confirm):        {rpc_seq:8.0f} tx/s  ratio {rpc_seq / local:.3f}")
    print(f"localnet JSON-RPC, {args.senders} senders (send + confirm):      "
          f"{rpc_conc:8.0f} tx/s  ratio {rpc_conc / local:.3f}")


if __name__ == "__main__":
    main()
