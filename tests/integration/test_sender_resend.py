"""The transaction sender against a localnet that drops half of the transactions it accepts (a congested
leader: the signature comes back, the transaction never lands). Waiting out the blockhash (~60 s) for each
would make a witness miss its round; the sender resends the same signed transaction until it lands."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer

from coordinator_sdk.keypair_file import read_keypair
from coordinator_sdk.rpc_pool import RpcPool
from coordinator_sdk.sender import TransactionSender
from devtools.local_cluster import LocalCluster

pytestmark = pytest.mark.slow


def test_dropped_transactions_land_by_resending_the_same_signature(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, localnet_args=("--drop-tx-rate", "0.5")) as net:
        payer = read_keypair(net.wallet("payer"))

        async def body() -> tuple[int, list[str]]:
            pool = RpcPool([net.url])
            # no re-signing: resends only; a generous wait, as a loaded machine (the full suite's 4 workers) once
            # let a transaction's 20 s pass before it landed
            sender = TransactionSender(pool, attempts=1, confirm_timeout=60.0)
            try:
                sigs = []
                for _ in range(8):
                    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Keypair().pubkey(),
                                                 lamports=1_000_000))
                    sigs.append(await sender.send([ix], [payer]))
                return sender.resent, sigs
            finally:
                await pool.close()

        resent, sigs = asyncio.run(body())
        statuses = net.rpc("getSignatureStatuses", [sigs])["value"]
        assert all(s is not None and s["err"] is None for s in statuses), statuses
        assert resent > 0, "with half of the sends dropped, some transaction must have been sent again"
