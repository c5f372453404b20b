"""The runner against an in-process chain (the reference model behind the Backend interface): several real
clients (own wallet, own iroh node, own torch trainer) in this process, faults injected from the test.

Each test asserts what a fault may cost: nothing of the survivors' work (every honest result applied,
weights bit-identical), no points of honest clients, and at most one slow round."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from run_client_helpers import prepare_data

from client.cli_common import ExitCode
from coordinator_sdk.model import Config
from devtools.inproc import InProcessRun, SimClient

pytestmark = pytest.mark.slow


def config(**kw: int) -> Config:
    base = dict(warmup_time=10, cooldown_time=2, max_round_train_time=8, round_witness_time=1, epoch_time=12,
                total_steps=13, max_seq_len=32, global_batch_size_start=6, global_batch_size_end=6,
                init_min_clients=3, min_clients=2, witness_nodes=0, waiting_for_members_extra_time=1)
    return Config(**{**base, **kw})


def weights(c: SimClient) -> str:
    done = c.of_kind("finished")
    assert done, (c.name, c.out.events[-10:])
    return done[-1]["weights_sha256"]


def round_times(c: SimClient) -> list[tuple[int, float]]:
    return [(e["step"], e["t"]) for e in c.of_kind("round")]


def run(coro) -> None:
    asyncio.run(coro)


def test_three_clients_two_epochs_bit_identical(tmp_path: Path) -> None:
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config())
        try:
            net.start()
            cs = [net.client(f"c{i}") for i in range(3)]
            codes = await net.wait(cs, 120)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            assert len({weights(c) for c in cs}) == 1
            pts = net.points()
            assert all(pts[bytes(c.wallet.pubkey())][1] == 0 for c in cs), pts
            assert len({pts[bytes(c.wallet.pubkey())][0] for c in cs}) == 1
            adopted = [e for c in cs for e in c.of_kind("checkpoint") if e["adopted"]]
            assert adopted, "no checkpoint was adopted"
        finally:
            await net.close()
    run(body())
